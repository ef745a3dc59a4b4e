"""Tests of the shipped MNIST subset, captioned MNIST, the vocabulary and batching."""
import gzip
from collections import Counter

import numpy as np
import pytest

from minicap.data import (DEFAULT_SIZES, DIGIT_WORDS, END, NULL, SPECIAL_TOKENS, START,
                          TEMPLATE_NAMES, UNK, CaptionMeaning, Vocabulary, banned_digits,
                          caption_accuracy, caption_is_correct, encode_captions,
                          iterate_minibatches, load_mnist_5k, load_mnist_idx,
                          make_captioned_mnist, mnist_5k_split_indices, parse_caption, read_idx,
                          render_caption, sample_minibatch)
from minicap.data.captioned_mnist import RANGES
from minicap.errors import MinicapError


# --- the shipped MNIST subset -------------------------------------------------------------------
def test_mnist_5k_contents():
    images, labels = load_mnist_5k()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == [500] * 10
    assert images.max() == 255 and images.min() == 0
    # Real digits: ink in the middle, blank border columns (MNIST centres digits in a 20x20 box).
    assert images[:, :, :2].mean() < 1.0 and images[:, 10:18, 10:18].mean() > 40


def test_mnist_5k_split_is_fixed_stratified_and_disjoint():
    splits = mnist_5k_split_indices()
    _, labels = load_mnist_5k()
    sizes = {"train": 400, "val": 50, "test": 50}
    for name, idx in splits.items():
        assert np.bincount(labels[idx], minlength=10).tolist() == [sizes[name]] * 10
    all_idx = np.concatenate(list(splits.values()))
    assert len(np.unique(all_idx)) == 5000 == len(all_idx)
    # Pinned: changing the split would silently change every model's data.
    assert splits["val"][:5].tolist() == [21, 36, 39, 40, 44]
    assert splits["test"][:5].tolist() == [11, 23, 34, 60, 68]
    assert int(splits["train"].sum()) == 10005109
    images, labels_train = load_mnist_5k("train")
    assert images.shape == (4000, 28, 28) and np.array_equal(labels_train, labels[splits["train"]])
    with pytest.raises(MinicapError, match="unknown MNIST split"):
        load_mnist_5k("training")


def _write_idx(path, array, compress=False):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_idx_raw_and_gzip(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28)).astype(np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    suffix = ".gz" if compress else ""
    _write_idx(tmp_path / f"imgs-idx3-ubyte{suffix}", images, compress)
    _write_idx(tmp_path / f"lbls-idx1-ubyte{suffix}", labels, compress)
    got_images, got_labels = load_mnist_idx(tmp_path / f"imgs-idx3-ubyte{suffix}",
                                            tmp_path / f"lbls-idx1-ubyte{suffix}")
    assert np.array_equal(got_images, images) and np.array_equal(got_labels, labels)
    only_images, none = load_mnist_idx(tmp_path / f"imgs-idx3-ubyte{suffix}")
    assert none is None and np.array_equal(only_images, images)


def test_load_mnist_idx_bad_files(tmp_path):
    images = np.zeros((4, 28, 28), dtype=np.uint8)
    _write_idx(tmp_path / "imgs", images)
    _write_idx(tmp_path / "lbls3", np.zeros(3, dtype=np.uint8))
    _write_idx(tmp_path / "lbls4", np.zeros(4, dtype=np.uint8))
    with pytest.raises(MinicapError, match="nope.*not found"):
        read_idx(tmp_path / "nope")
    (tmp_path / "text").write_bytes(b"hello world, not idx")
    with pytest.raises(MinicapError, match="text: not an IDX file"):
        read_idx(tmp_path / "text")
    (tmp_path / "cut").write_bytes((tmp_path / "imgs").read_bytes()[:-10])
    with pytest.raises(MinicapError, match="cut: the header promises shape \\(4, 28, 28\\)"):
        read_idx(tmp_path / "cut")
    (tmp_path / "badgz").write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\x04" + bytes(4))[:-6])  # CRC cut off
    with pytest.raises(MinicapError, match="badgz: a damaged gzip file"):
        read_idx(tmp_path / "badgz")
    with pytest.raises(MinicapError, match="lbls3: 3 labels for 4 images"):
        load_mnist_idx(tmp_path / "imgs", tmp_path / "lbls3")
    with pytest.raises(MinicapError, match="swap"):
        load_mnist_idx(tmp_path / "lbls4", tmp_path / "imgs")


def test_read_idx_checks_the_claimed_shape_before_allocating(tmp_path):
    def header(*shape):
        return bytes([0, 0, 0x08, len(shape)]) + b"".join(int(n).to_bytes(4, "big") for n in shape)
    (tmp_path / "huge").write_bytes(header(60000, 60000, 60000) + bytes(100))   # 216 TB claimed
    with pytest.raises(MinicapError, match=r"huge: the header claims shape \(60000, 60000, 60000\) .* "
                                           r"more than minicap reads"):
        read_idx(tmp_path / "huge")
    (tmp_path / "short").write_bytes(header(60000, 28, 28) + bytes(10))   # checked against the file size
    with pytest.raises(MinicapError, match=r"short: the header promises shape \(60000, 28, 28\) "
                                           r"\(47040000 bytes\) but the file holds 10 bytes"):
        read_idx(tmp_path / "short")
    (tmp_path / "long").write_bytes(header(2, 2) + bytes(5))
    with pytest.raises(MinicapError, match="long: .* holds 5 bytes of data"):
        read_idx(tmp_path / "long")
    # gzip: the data size is not known in advance; it is read in chunks, so a lying header costs nothing
    (tmp_path / "short.gz").write_bytes(gzip.compress(header(60000, 28, 28) + bytes(10)))
    with pytest.raises(MinicapError, match="short.gz: .* holds only 10 bytes of data"):
        read_idx(tmp_path / "short.gz")
    (tmp_path / "bomb.gz").write_bytes(gzip.compress(header(4) + bytes(50_000_000)))   # 50 KB -> 50 MB
    with pytest.raises(MinicapError, match="bomb.gz: .* holds more bytes than that"):
        read_idx(tmp_path / "bomb.gz")
    _write_idx(tmp_path / "empty", np.zeros((0, 28, 28), np.uint8))
    with pytest.raises(MinicapError, match="empty: the file holds no images"):
        load_mnist_idx(tmp_path / "empty")
    with pytest.raises(MinicapError, match="cannot open the IDX file"):
        read_idx(tmp_path / ("x" * 300))
    with pytest.raises(MinicapError, match="IDX file should be a file, but this is a folder"):
        read_idx(tmp_path)


# --- captioned MNIST ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def train():
    return make_captioned_mnist("train", n=6000, seed=0)


def test_captioned_mnist_is_deterministic_and_prefix_stable(train):
    again = make_captioned_mnist("train", n=6000, seed=0)
    assert again.captions == train.captions and np.array_equal(again.images, train.images)
    assert np.array_equal(again.boxes, train.boxes) and np.array_equal(again.source, train.source)
    small = make_captioned_mnist("train", n=20, seed=0)  # example i does not depend on n
    assert small.captions == train.captions[:20] and np.array_equal(small.images, train.images[:20])
    other = make_captioned_mnist("train", n=20, seed=1)
    assert other.captions != small.captions
    assert make_captioned_mnist("val", n=20, seed=0).captions != small.captions


def test_captioned_mnist_shapes_and_caption_grammar(train):
    assert train.images.shape == (6000, 60, 60) and train.images.dtype == np.float32
    assert 0.0 <= train.images.min() and train.images.max() <= 1.0
    for i in range(len(train)):
        words = train.captions[i].split()
        assert len(words) == 12 and words[-1] == "." and words[:2] == ["the", "digit"]
        assert train.captions[i] == render_caption(int(train.template[i]), *train.digits[i][:train.n_digits[i]])
    assert DEFAULT_SIZES == {"train": 10000, "val": 1000, "test": 1000, "novel": 1000}
    assert len(make_captioned_mnist("val")) == 1000


def test_templates_are_uniform(train):
    freq = np.bincount(train.template, minlength=8) / len(train)
    assert np.all(np.abs(freq - 1 / 8) < 0.02), freq  # 5 standard deviations is about 0.021


def test_truth_matches_pixels_and_labels(train):
    _, labels = load_mnist_5k()
    images, _ = load_mnist_5k()
    assert np.array_equal(train.digits[:, 0], labels[train.source[:, 0]])
    two = train.n_digits == 2
    assert np.array_equal(train.digits[two, 1], labels[train.source[two, 1]])
    assert np.all(train.digits[~two, 1] == -1) and np.all(train.boxes[~two, 1] == -1)
    for i in range(300):
        canvas = np.rint(train.images[i] * 255).astype(np.uint8)
        covered = np.zeros((60, 60), bool)
        for slot in range(train.n_digits[i]):
            r, c, h, w = train.boxes[i, slot]
            assert (h, w) == (28, 28)
            digit = images[train.source[i, slot]]
            ir, ic, ih, iw = train.ink_boxes[i, slot]
            # the ink box lies in the placement box, and its edges touch ink
            assert r <= ir and ir + ih <= r + 28 and c <= ic and ic + iw <= c + 28
            ink = canvas[ir:ir + ih, ic:ic + iw]
            assert ink[0].any() and ink[-1].any() and ink[:, 0].any() and ink[:, -1].any()
            covered[ir:ir + ih, ic:ic + iw] = True
            # the visible part of the digit is exactly the MNIST digit; in a side-by-side pair
            # the left digit is cut where the right digit's box starts (the right one overwrites)
            region = canvas[r:r + 28, c:c + 28]
            name = TEMPLATE_NAMES[train.template[i]]
            left_slot = {"left": 0, "right": 1}.get(name)
            cut = train.boxes[i, 1 - slot, 1] - c if slot == left_slot else 28
            assert np.array_equal(region[:, :cut], digit[:, :cut])
        assert not canvas[~covered].any()  # all ink is inside some ink box


def test_placement_follows_the_templates(train):
    for t, name in enumerate(TEMPLATE_NAMES):
        b = train.boxes[train.template == t]
        x_row, x_col, y_row, y_col = b[:, 0, 0], b[:, 0, 1], b[:, 1, 0], b[:, 1, 1]

        def within(v, key):
            lo, hi = RANGES[key]
            return np.all((v >= lo) & (v <= hi)) and set(np.unique(v)) == set(range(lo, hi + 1))

        if name in ("left", "right"):
            assert np.array_equal(x_row, y_row) and within(x_row, "mid")
            left, right = (x_col, y_col) if name == "left" else (y_col, x_col)
            assert within(left, "left") and within(right, "right")
        elif name in ("top", "bottom"):
            assert np.array_equal(x_col, y_col) and within(x_col, "mid")
            top, bottom = (x_row, y_row) if name == "top" else (y_row, x_row)
            assert within(top, "top") and within(bottom, "bottom")
        else:
            vertical, horizontal = name.split()
            assert within(x_row, vertical) and within(x_col, horizontal)


def test_splits_use_disjoint_digit_instances():
    splits = mnist_5k_split_indices()
    for split, pool in (("train", "train"), ("val", "val"), ("test", "test"), ("novel", "test")):
        data = make_captioned_mnist(split, n=2000, seed=5)
        used = data.source[data.source >= 0]
        assert np.isin(used, splits[pool]).all(), split
    assert not set(splits["train"]) & (set(splits["val"]) | set(splits["test"]))
    assert not set(splits["val"]) & set(splits["test"])


def _banned_hits(data, banned):
    x = data.digits[:, 0] == banned[data.template, 0]
    y = (data.n_digits == 2) & (data.digits[:, 1] == banned[data.template, 1])
    return x, y


def test_banned_combinations_never_in_train_val_test_and_only_in_novel(train):
    banned = banned_digits()
    assert banned.shape == (8, 2) and np.all(banned[4:, 1] == -1) and np.all(banned[:4] >= 0)
    assert np.array_equal(banned, banned_digits(0)) and not np.array_equal(banned, banned_digits(1))
    for data in (train, make_captioned_mnist("val"), make_captioned_mnist("test")):
        x, y = _banned_hits(data, banned)
        assert not x.any() and not y.any(), data.split
    novel = make_captioned_mnist("novel")
    x, y = _banned_hits(novel, banned)
    assert (x | y).all()
    # every one of the 12 held-out slots shows up in the novel split
    slots = {(t, 0) for t in novel.template[x]} | {(t, 1) for t in novel.template[y]}
    assert len(slots) == 12
    # a different banned seed bans different captions
    other = make_captioned_mnist("train", n=2000, seed=0, banned_seed=3)
    assert other.banned_seed == 3 and not any(np.concatenate(_banned_hits(other, banned_digits(3))))


def test_truth_dict(train):
    i = int(np.flatnonzero(train.template == TEMPLATE_NAMES.index("right"))[0])
    truth = train.truth(i)
    assert truth["template"] == "right" and len(truth["digits"]) == 2 and len(truth["boxes"]) == 2
    assert truth["caption"] == render_caption("right", *truth["digits"])
    assert truth["boxes"][0][1] > truth["boxes"][1][1]  # X is the right-hand digit
    j = int(np.flatnonzero(train.n_digits == 1)[0])
    assert len(train.truth(j)["digits"]) == 1 and len(train.truth(j)["ink_boxes"]) == 1
    sub = train.subset([i, j])
    assert sub.captions == [train.captions[i], train.captions[j]] and len(sub) == 2


def test_parse_caption():
    assert parse_caption("the digit seven is on the left of the digit one .") == CaptionMeaning("left", (7, 1))
    assert parse_caption("The digit 7 is at the bottom right of the image") == CaptionMeaning("bottom right", (7,))
    assert parse_caption(["the", "digit", "two", "is", "at", "the", "top", "of", "the", "digit",
                          "nine", "."]) == CaptionMeaning("top", (2, 9))
    for bad in ["", "the digit seven", "the digit seven is on the left of the image .",
                "the digit seventy is at the top left of the image .",
                "the digit seven is at the top left of the digit one .",
                "the digit seven is on the left of the digit one . extra"]:
        assert parse_caption(bad) is None, bad


def test_caption_is_correct_accepts_equivalent_captions():
    assert caption_is_correct("the digit seven is on the left of the digit one .", "left", (7, 1))
    assert caption_is_correct("the digit one is on the right of the digit seven .", "left", (7, 1))
    assert caption_is_correct("the digit one is at the bottom of the digit seven", 2, (7, 1))
    assert caption_is_correct("the digit seven is at the top of the digit one", "bottom", (1, 7))
    assert not caption_is_correct("the digit one is on the left of the digit seven .", "left", (7, 1))
    assert not caption_is_correct("the digit seven is at the top of the digit one .", "left", (7, 1))
    assert not caption_is_correct("the digit seven is on the left of the digit two .", "left", (7, 1))
    assert caption_is_correct("the digit three is at the top left of the image .", "top left", (3, -1))
    assert not caption_is_correct("the digit three is at the top right of the image .", "top left", (3, -1))
    assert not caption_is_correct("the digit three is", "top left", (3, -1))


def test_caption_accuracy(train):
    data = train.subset(np.arange(40))
    assert caption_accuracy(data.captions, data) == 1.0
    wrong = list(data.captions)
    for i in range(10):
        wrong[i] = "the digit " + DIGIT_WORDS[(data.digits[i, 0] + 1) % 10] + wrong[i].split(" ", 3)[3]
    assert caption_accuracy(wrong, data) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        caption_accuracy(wrong[:3], data)


def test_bad_generator_arguments():
    with pytest.raises(MinicapError, match="unknown captioned-MNIST split"):
        make_captioned_mnist("training")
    with pytest.raises(MinicapError, match=">= 0"):
        make_captioned_mnist("train", n=-1)
    assert len(make_captioned_mnist("train", n=0)) == 0


# --- vocabulary ---------------------------------------------------------------------------------
def test_vocabulary_build_order_and_min_count():
    captions = ["A dog runs.", "a dog sits", "a cat sits", "zebra!"]
    vocab = Vocabulary.build(captions, min_count=2)
    assert vocab.words == list(SPECIAL_TOKENS) + ["a", "dog", "sits"]
    assert (NULL, START, END, UNK) == (0, 1, 2, 3)
    assert vocab.counts["cat"] == 1 and "cat" not in vocab
    assert Vocabulary.build(reversed(captions), min_count=2) == vocab  # order-independent ids
    assert len(Vocabulary.build(captions, min_count=1)) == 4 + 6
    with pytest.raises(MinicapError):
        Vocabulary.build(captions, min_count=0)


def test_vocabulary_encode_decode_and_unknown_counting():
    vocab = Vocabulary.build(["a dog runs", "a dog sits"])
    unknown = Counter()
    ids = vocab.encode("A cat runs, a cat!", unknown)
    assert ids == [vocab.index["a"], UNK, vocab.index["runs"], vocab.index["a"], UNK]
    assert unknown == Counter({"cat": 2})
    assert vocab.decode(ids) == "a <UNK> runs a <UNK>"
    framed = [START] + vocab.encode("a dog sits") + [END, NULL, NULL]
    assert vocab.decode(framed) == "a dog sits"
    assert vocab.decode(np.array(framed + [vocab.index["dog"]])) == "a dog sits"  # stops at <END>
    with pytest.raises(MinicapError, match="outside this vocabulary"):
        vocab.decode([99])


def test_vocabulary_round_trips_through_npz_and_json(tmp_path):
    vocab = Vocabulary.build(make_captioned_mnist("train", n=500).captions)
    assert "." not in vocab and "seven" in vocab and len(vocab) == 4 + 10 + 11
    np.savez(tmp_path / "ckpt.npz", vocab=vocab.to_array())
    with np.load(tmp_path / "ckpt.npz", allow_pickle=False) as f:
        assert Vocabulary.from_array(f["vocab"]) == vocab
    assert Vocabulary.from_json(vocab.to_json()) == vocab
    with pytest.raises(MinicapError, match="must start with"):
        Vocabulary(["a", "b"])
    with pytest.raises(MinicapError, match="twice"):
        Vocabulary(list(SPECIAL_TOKENS) + ["a", "a"])
    for text in ("{oops", "[" * 100_000, '{"words": "abc"}', '{"words": [1, 2]}', "[1]", "9" * 5000):
        with pytest.raises(MinicapError, match="not a saved vocabulary"):
            Vocabulary.from_json(text)


# --- batching -----------------------------------------------------------------------------------
def test_encode_captions_framing_mask_and_stats():
    vocab = Vocabulary.build(["a dog runs fast", "a cat"])
    enc = encode_captions(["a dog runs fast", "a zebra", "a cat a cat a cat"], vocab, max_length=4)
    d, c = vocab.index["dog"], vocab.index["cat"]
    a, r, f = vocab.index["a"], vocab.index["runs"], vocab.index["fast"]
    assert enc.captions.dtype == np.int32 and enc.captions.shape == (3, 6)
    assert enc.captions.tolist() == [[START, a, d, r, f, END],
                                     [START, a, UNK, END, NULL, NULL],
                                     [START, a, c, a, c, END]]
    assert enc.mask.tolist() == [[True] * 6, [True] * 4 + [False] * 2, [True] * 6]
    assert enc.lengths.tolist() == [4, 2, 4]
    assert enc.unknown == Counter({"zebra": 1}) and enc.n_words == 12 and enc.n_truncated == 1
    assert enc.unk_rate == pytest.approx(1 / 12)
    # teacher forcing: targets captions[:, 1:], loss mask mask[:, 1:] ends at <END>
    assert (enc.captions[:, 1:][enc.mask[:, 1:]] != NULL).all()
    with pytest.raises(MinicapError, match="caption 1 .* has no words"):
        encode_captions(["a dog", " . "], vocab)


def test_minibatch_iterators():
    rng = np.random.default_rng(0)
    batches = list(iterate_minibatches(10, 4, rng))
    assert [len(b) for b in batches] == [4, 4, 2]
    order = np.concatenate(batches)
    assert sorted(order.tolist()) == list(range(10)) and order.tolist() != list(range(10))
    again = np.concatenate(list(iterate_minibatches(10, 4, np.random.default_rng(0))))
    assert np.array_equal(order, again)
    assert [len(b) for b in iterate_minibatches(10, 4, rng, drop_last=True)] == [4, 4]
    assert np.concatenate(list(iterate_minibatches(5, 2, shuffle=False))).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="rng"):
        list(iterate_minibatches(5, 2))
    sample = sample_minibatch(10, 6, rng)
    assert len(set(sample.tolist())) == 6 and sample.max() < 10
    assert sorted(sample_minibatch(3, 6, rng).tolist()) == [0, 1, 2]


def test_missing_shipped_mnist_file_is_a_clear_error(tmp_path, monkeypatch):
    from minicap.data import mnist
    monkeypatch.setattr(mnist, "MNIST_5K_PATH", tmp_path / "mnist_5k.npz")
    monkeypatch.setattr(mnist, "_cache", {})
    with pytest.raises(MinicapError, match="mnist_5k.npz: the shipped MNIST subset is missing"):
        load_mnist_5k()
    np.savez(tmp_path / "mnist_5k.npz", images=np.zeros((10, 28, 28), np.uint8), labels=np.zeros(10, np.uint8))
    with pytest.raises(MinicapError, match="expected images \\(5000, 28, 28\\)"):
        load_mnist_5k()
