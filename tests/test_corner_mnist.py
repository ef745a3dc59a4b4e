"""Corner MNIST (minicap.data.corner_mnist): the generator, its held-out rule, the corner reader, and
alignDRAW trained and read back on it (`--data mnist-corners`)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minicap.data import banned_digits, load_mnist_5k, mnist_5k_split_indices
from minicap.data import corner_mnist as cm
from minicap.errors import MinicapError

ROOT = Path(__file__).resolve().parents[1]


def test_banned_pairs_are_captioned_mnists_corner_templates():
    from minicap.data import TEMPLATE_NAMES
    banned = cm.banned_corner_digits()
    for c, corner in enumerate(cm.CORNERS):
        assert banned[c] == banned_digits()[TEMPLATE_NAMES.index(corner), 0]
    np.testing.assert_array_equal(banned, [7, 1, 0, 6])          # the default seed's
    assert not np.array_equal(cm.banned_corner_digits(3), banned)


def test_deterministic_and_a_prefix_of_a_larger_set():
    a = cm.make_corner_mnist("test", n=40, seed=2)
    b = cm.make_corner_mnist("test", n=1100, seed=2)           # two chunks
    c = cm.make_corner_mnist("test", n=40, seed=3)
    np.testing.assert_array_equal(a.images, b.images[:40])
    assert a.captions == b.captions[:40] and len(b) == 1100
    assert a.captions != c.captions
    assert a.images.dtype == np.float32 and a.images.shape == (40, 60, 60)
    assert 0 <= a.images.min() and a.images.max() <= 1
    assert a.corners.shape == a.digits.shape == (40, 2) and a.boxes.shape == (40, 2, 2)
    assert len(cm.make_corner_mnist("val", n=0)) == 0


@pytest.mark.parametrize("split", ["train", "val", "test", "novel"])
def test_held_out_rule_digit_pools_and_placement(split):
    data = cm.make_corner_mnist(split, n=600)
    banned = cm.banned_corner_digits()
    has_banned = (data.digits == banned[data.corners]).any(axis=1)
    if split == "novel":
        assert has_banned.all()
    else:
        assert not has_banned.any()
    pool = mnist_5k_split_indices()[{"novel": "test"}.get(split, split)]
    assert np.isin(data.source, pool).all()
    _, labels = load_mnist_5k("all")
    np.testing.assert_array_equal(labels[data.source], data.digits)
    # two different corners per canvas, every corner and both clause orders used
    assert (data.corners[:, 0] != data.corners[:, 1]).all()
    assert set(np.unique(data.corners)) == {0, 1, 2, 3}
    assert (data.corners[:, 0] < data.corners[:, 1]).mean() == pytest.approx(0.5, abs=0.08)
    # each box inside its corner's ranges, every value of the ranges drawn
    for c, (r_name, c_name) in enumerate(cm._CORNER_RANGES):
        rows, cols = data.boxes[..., 0][data.corners == c], data.boxes[..., 1][data.corners == c]
        assert set(rows) == set(range(cm.RANGES[r_name][0], cm.RANGES[r_name][1] + 1))
        assert set(cols) == set(range(cm.RANGES[c_name][0], cm.RANGES[c_name][1] + 1))
    # the digits' pixels are on the canvas where their boxes say (max-combined: at least the digit's ink)
    images, _ = load_mnist_5k("all")
    for i in range(5):
        for k in range(2):
            r, c = data.boxes[i, k]
            assert (data.images[i, r:r + 28, c:c + 28] >= images[data.source[i, k]] / 255.0 - 1e-6).all()


def test_captions_parse_to_the_corners_and_digits():
    data = cm.make_corner_mnist("train", n=200)
    for i in range(len(data)):
        assert cm.parse_corner_caption(data.captions[i]) == tuple(zip(data.corners[i].tolist(), data.digits[i].tolist()))
        assert len(data.captions[i].split()) == 18 and " and " in data.captions[i]
    assert cm.render_corner_caption([0, 3], [3, 5]) == ("the digit three is at the top left and the digit five is "
                                                         "at the bottom right .")
    assert cm.parse_corner_caption("the digit three is at the top left and the digit five is at the top left") is None
    assert cm.parse_corner_caption("the digit three is at the middle") is None
    assert cm.parse_corner_caption("the digit 3 is at the top left") == ((0, 3),)   # numerals, as captioned MNIST


def test_sample_corner_mnist_draws_from_the_rng():
    a = cm.sample_corner_mnist(np.random.default_rng(5), 16)
    b = cm.sample_corner_mnist(np.random.default_rng(5), 16)
    rng = np.random.default_rng(5)
    cm.sample_corner_mnist(rng, 16)
    c = cm.sample_corner_mnist(rng, 16)                           # the rng moved on: new canvases
    np.testing.assert_array_equal(a.images, b.images)
    assert a.captions == b.captions and a.captions != c.captions and a.seed == -1
    novel = cm.sample_corner_mnist(np.random.default_rng(0), 64, "novel")
    assert (novel.digits == cm.banned_corner_digits()[novel.corners]).any(axis=1).all()
    three = cm.make_corner_mnist("test", n=30, n_digits=3)
    assert three.corners.shape == (30, 3) and all(c.count(" and ") == 2 for c in three.captions)


def test_bad_split_and_sizes_are_refused():
    with pytest.raises(MinicapError, match="unknown corner-MNIST split"):
        cm.make_corner_mnist("dev", n=3)
    with pytest.raises(MinicapError, match=">= 0"):
        cm.make_corner_mnist("train", n=-1)
    with pytest.raises(MinicapError, match=">= 1"):
        cm.sample_corner_mnist(np.random.default_rng(0), 0)
    with pytest.raises(MinicapError, match="2 to 4 digits"):
        cm.make_corner_mnist("train", n=3, n_digits=5)
    with pytest.raises(MinicapError, match="60x60"):
        cm.read_corners(np.zeros((2, 28, 28)))


@pytest.mark.parametrize("split", ["train", "val", "test", "novel"])
def test_reader_reads_real_canvases(split):
    """The reader on 300 real canvases per split: exact readings (named digits, empty elsewhere) >= 90%
    (measured 93.5-98.7% on 1,000 per split; docs/aligndraw_corners.md), and empty corners read empty."""
    data = cm.make_corner_mnist(split, n=300)
    read = cm.read_corners(data.images)
    assert read.shape == (300, 4) and read.dtype == np.int64
    assert cm.corner_accuracy(read, data) >= 0.90
    assert (read[data.expected_reading() < 0] == -1).all()
    assert cm.read_corners(np.zeros((1, 60, 60), np.float32)).tolist() == [[-1, -1, -1, -1]]


def test_corner_accuracy_logic():
    data = cm.make_corner_mnist("test", n=3)
    want = data.expected_reading()
    assert ((want >= 0).sum(axis=1) == 2).all()
    assert cm.corner_accuracy(want, data) == 1.0 and cm.clause_accuracy(want, data) == 1.0
    wrong_digit = want.copy()
    c = data.corners[0, 0]
    wrong_digit[0, c] = (want[0, c] + 1) % 10
    assert cm.corner_accuracy(wrong_digit, data) == pytest.approx(2 / 3)
    assert cm.clause_accuracy(wrong_digit, data) == pytest.approx(5 / 6)
    extra = want.copy()
    empty = np.flatnonzero(want[1] < 0)[0]
    extra[1, empty] = 4                                           # a digit where the caption names none
    assert cm.corner_accuracy(extra, data) == pytest.approx(2 / 3) and cm.clause_accuracy(extra, data) == 1.0
    with pytest.raises(MinicapError, match="one \\(4,\\) reading"):
        cm.corner_accuracy(want[:2], data)


# --- alignDRAW on corner MNIST ---------------------------------------------------------------------
def _cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "minicap", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


SMALL = ["--data", "mnist-corners", "--T", 2, "--enc", 8, "--dec", 8, "--z", 4, "--val-size", 8, "--eval-every", 2]


@pytest.fixture(scope="module")
def corner_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("corners") / "run"
    result = _cli("train", "aligndraw", "--out", out, "--steps", 4, *SMALL, cwd=out.parent)
    assert result.returncode == 0, result.stderr
    return out, result


def test_cli_train_records_the_data_and_reads_17_word_captions(corner_run):
    from minicap.checkpoint import load_checkpoint
    from minicap.commands.aligndraw import load_model
    from minicap.models import aligndraw as ad
    out, result = corner_run
    assert "corner MNIST: fresh training canvases" in result.stdout
    assert "test bound" in result.stdout and "novel bound" in result.stdout
    ck = load_checkpoint(out / "last.npz")
    assert ck.config["data"] == "mnist-corners" and ck.config["canvases"] == "fresh"
    params, model, vocab = load_model(out)
    assert {"and", "left", "right", "top", "bottom"} <= set(vocab.words)
    words, mask = ad.encode_words(cm.make_corner_mnist("novel", n=4).captions, vocab)
    assert words.shape == (4, 17) and mask.all()
    assert ad.generate(params, words, mask, model, np.random.default_rng(0)).shape == (4, 60, 60)
    # the validation / test bounds are on corner canvases: the val set the run used
    examples, _, _, _ = ad.held_out_set("val", 8, vocab, data="mnist-corners")
    assert isinstance(examples, cm.CornerMNIST)


def test_cli_resume_is_exact_and_keeps_the_data(tmp_path):
    from minicap.checkpoint import load_checkpoint
    assert _cli("train", "aligndraw", "--out", tmp_path / "split", "--steps", 2, *SMALL, cwd=tmp_path).returncode == 0
    result = _cli("train", "aligndraw", "--out", tmp_path / "split", "--steps", 4, "--resume", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "corner MNIST" in result.stdout
    assert _cli("train", "aligndraw", "--out", tmp_path / "straight", "--steps", 4, *SMALL, cwd=tmp_path).returncode == 0
    a, b = load_checkpoint(tmp_path / "split" / "last.npz"), load_checkpoint(tmp_path / "straight" / "last.npz")
    assert a.step == b.step == 4 and a.config["data"] == "mnist-corners"
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    result = _cli("train", "aligndraw", "--out", tmp_path / "split", "--steps", 6, "--resume", "--data",
                  "mnist-captions", cwd=tmp_path)
    assert result.returncode == 2 and "mnist-corners" in result.stderr and "Traceback" not in result.stderr


def test_cli_roundtrip_json_without_a_captioner(corner_run, tmp_path):
    out, _ = corner_run
    result = _cli("roundtrip", out, "--n", 5, "--temperature", 0, "--json", "--png", tmp_path / "rt.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["data"] == "mnist-corners" and report["temperature"] == 0
    for split in ("test", "novel"):
        assert report[f"{split}_prompts"] == 5
        assert 0 <= report[f"{split}_round_trip_accuracy"] <= report[f"{split}_clause_accuracy"] <= 1
        assert report[f"{split}_reader_accuracy_on_real_images"] >= 0.6 and report[f"{split}_bound"] > 0
    assert (tmp_path / "rt.png").stat().st_size > 0
    result = _cli("roundtrip", out, "--n", 3, "--split", "novel", "--no-bound", cwd=tmp_path)
    assert result.returncode == 0 and "novel_round_trip_accuracy" in result.stdout and "test_" not in result.stdout


def test_refusals(corner_run, tmp_path):
    out, _ = corner_run
    result = _cli("roundtrip", out, "--captioner", tmp_path / "cap", cwd=tmp_path)
    assert result.returncode == 2 and "drop --captioner" in result.stderr and "Traceback" not in result.stderr
    result = _cli("train", "aligndraw", "--out", tmp_path / "fixed", "--steps", 1, "--canvases", "fixed", *SMALL,
                  cwd=tmp_path)
    assert result.returncode == 2 and "--canvases fixed" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "fixed").exists()          # refused before the run folder was made
    result = _cli("generate", out, "the digit three is at the middle", "--out", tmp_path / "g.png", cwd=tmp_path)
    assert result.returncode == 2 and "'middle'" in result.stderr
    # a captioned-MNIST run still needs its captioner
    cap = tmp_path / "cap-run"
    assert _cli("train", "aligndraw", "--out", cap, "--steps", 1, "--T", 1, "--enc", 4, "--dec", 4, "--z", 2,
                "--val-size", 4, "--eval-every", 1, cwd=tmp_path).returncode == 0
    result = _cli("roundtrip", cap, "--n", 2, cwd=tmp_path)
    assert result.returncode == 2 and "--captioner" in result.stderr and "Traceback" not in result.stderr


def test_words_encoder_gets_a_position_for_every_corner_word(tmp_path):
    """--caption-encoder words on 17-word captions: the model is given 17 position vectors (16 stay the
    default for captioned MNIST's 12 words)."""
    from minicap.checkpoint import load_checkpoint
    result = _cli("train", "aligndraw", "--out", tmp_path / "w", "--steps", 1, "--caption-encoder", "words",
                  *SMALL, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    ck = load_checkpoint(tmp_path / "w" / "last.npz")
    assert ck.config["model"]["max_words"] == 17 and ck.params["position_W"].shape[0] == 17
