"""MNIST scenes with questions (minicap.data.vqa_scenes): answers agree with an independent reading of
the question, families and answers are balanced, splits keep their digits and held-out pairs, and
generation is deterministic."""
import collections

import numpy as np
import pytest

from minicap.data import vqa_scenes as V
from minicap.data.mnist import load_mnist_5k, mnist_5k_split_indices
from minicap.errors import MinicapError


@pytest.fixture(scope="module")
def train():
    return V.make_vqa_scenes("train", 2400)


def test_answers_match_the_question_read_independently(train):
    for i in range(len(train)):
        assert V.answer_question(train.cells[i], train.questions[i]) == V.ANSWERS[train.answers[i]]


def test_answers_are_balanced_within_each_family(train):
    for f, name in enumerate(V.FAMILIES):
        counts = collections.Counter(train.answers[train.family == f].tolist())
        assert set(counts) == set(V.FAMILY_ANSWERS[name])
        expected = (train.family == f).sum() / len(V.FAMILY_ANSWERS[name])
        for c in counts.values():   # a binomial count: within 5 standard deviations of uniform
            assert abs(c - expected) < 5 * np.sqrt(expected) + 1
    assert np.all(np.bincount(train.family, minlength=6) > 300)


def test_scenes_one_to_four_distinct_digits_drawn_where_the_truth_says(train):
    images, labels = load_mnist_5k("all")
    n_digits = (train.cells >= 0).sum(axis=1)
    assert n_digits.min() == 1 and n_digits.max() == 4
    for i in range(200):
        present = train.cells[i][train.cells[i] >= 0]
        assert len(set(present.tolist())) == len(present)
        for k in range(4):
            r0, c0 = V.CELL_ROW[k] * V.CELL, V.CELL_COL[k] * V.CELL
            ink = train.images[i, r0:r0 + V.CELL, c0:c0 + V.CELL].sum()
            assert (ink > 0) == (train.cells[i, k] >= 0)
            if train.cells[i, k] >= 0:
                assert labels[train.source[i, k]] == train.cells[i, k]


def test_splits_use_their_own_digits_and_novel_holds_the_held_out_pairs(train):
    held = V.held_out_pairs()
    assert held.sum() == 4 and np.all(held.sum(axis=1) == 1) and np.all(held.sum(axis=0) <= 1)
    pools = mnist_5k_split_indices()
    novel = V.make_vqa_scenes("novel", 300)
    val = V.make_vqa_scenes("val", 300)
    for data, pool, want_held in ((train, "train", False), (val, "val", False), (novel, "test", True)):
        used = data.source[data.source >= 0]
        assert np.isin(used, pools[pool]).all()
        has = [(held[np.arange(4)[c >= 0], c[c >= 0]]).any() for c in data.cells]
        assert all(h == want_held for h in has)


def test_deterministic_and_prefix_stable(train):
    small = V.make_vqa_scenes("train", 700)
    assert np.array_equal(small.images, train.images[:700]) and small.questions == train.questions[:700]
    other = V.make_vqa_scenes("train", 50, seed=1)
    assert other.questions != train.questions[:50]


def test_focus_is_the_answer_cell():
    data = V.make_vqa_scenes("test", 600)
    fam = np.array(V.FAMILIES)[data.family]
    for i in np.flatnonzero(np.isin(fam, ["query_digit", "relate"])):
        k = data.focus[i]
        answer = V.ANSWERS[data.answers[i]]
        assert (data.cells[i, k] == -1) if answer == "nothing" else (V.DIGIT_WORDS[data.cells[i, k]] == answer)
    assert np.all(data.focus[~np.isin(fam, ["query_digit", "relate", "query_place"])] == -1)


def test_encode_questions_refuses_unknown_words_and_empty_questions():
    ids = V.encode_questions(["is there a seven ?", "where is the two?"])
    assert ids.shape == (2, V.MAX_QUESTION_LENGTH) and ids[1, 4] == V.WORD_INDEX["?"]
    with pytest.raises(MinicapError, match="'purple'"):
        V.encode_questions(["is there a purple ?"])
    with pytest.raises(MinicapError, match="empty"):
        V.encode_questions(["  "])


def test_data_show_mnist_vqa(tmp_path, capsys):
    from minicap.cli import main
    out = tmp_path / "grid.png"
    assert main(["data", "show", "mnist-vqa", "--n", "4", "--out", str(out), "--split", "novel"]) == 0
    assert out.stat().st_size > 0 and "->" in capsys.readouterr().out
