"""Corner MNIST: captions that name several digits, each with its own corner (issue 21).

A 60x60 canvas holds k MNIST digits (k = 2 by default; 2-4 allowed), each in a different corner, and
the caption names every digit with its corner, one clause per digit joined by "and", the clauses in a
random order:

    "the digit three is at the top left and the digit five is at the bottom right ."

(17 words and the final "." for k = 2.) On captioned MNIST (minicap.data.captioned_mnist) a caption names
at most two digits and one relation, so the mean of the caption encoder's word states carries all of it
and alignDRAW's alignment over words barely helps. Here the generator has to keep two (digit, corner)
pairs apart, and the clause order is random, so which digit goes where is told only by which corner
words stand next to which digit word: the family where attending to the words step by step should
matter (docs/aligndraw_corners.md).

Placement: the top-left corner of each 28x28 digit box is drawn uniformly from captioned MNIST's corner
ranges (its RANGES: rows 0-2 for top, 30-32 for bottom; cols 0-4 for left, 28-32 for right). A left
and a right box in the same row band can overlap by up to 4 columns; the digits are combined with a
pixel-wise maximum (MNIST digits have ~4 blank columns at each side, so ink rarely meets).

Held-out combinations: the banned (corner, digit) pairs are those of captioned MNIST's four one-digit
corner templates, `banned_digits(banned_seed)[template "top left" .. "bottom right", 0]` (with the
default seed: seven at the top left, one at the top right, zero at the bottom left, six at the bottom
right). train / val / test never hold a banned pair; the "novel" split holds only canvases with at
least one. A rejected canvas re-draws its digits, never its corners, so corners stay uniform.

Digit instances come from the fixed MNIST split (minicap.data.mnist) as in captioned MNIST: train
canvases use train digits, val canvases val digits, test and novel canvases test digits.

Reading a canvas back (the round trip without a captioner): read_corners(images) classifies each 30x30
quadrant with the shipped MNIST classifier (minicap.models.encoder), -1 where the quadrant holds no
digit; corner_accuracy(read, data) is the share of canvases read exactly as captioned.
"""
from dataclasses import dataclass

import numpy as np

from minicap.data.captioned_mnist import (CANVAS, DIGIT, DIGIT_WORDS, RANGES, TEMPLATE_NAMES, _DIGIT_POOL, _SPLIT_CODE,
                                          _WORD_TO_DIGIT, DEFAULT_BANNED_SEED, DEFAULT_SIZES, SPLITS, banned_digits)
from minicap.data.mnist import load_mnist_5k, mnist_5k_split_indices
from minicap.errors import MinicapError
from minicap.text import tokenize

# Corner c is (row range, col range) in RANGES; its quadrant is QUADRANT x QUADRANT pixels at QUADRANT_AT[c].
CORNERS = ("top left", "top right", "bottom left", "bottom right")
_CORNER_RANGES = (("top", "left"), ("top", "right"), ("bottom", "left"), ("bottom", "right"))
QUADRANT = CANVAS // 2
QUADRANT_AT = ((0, 0), (0, QUADRANT), (QUADRANT, 0), (QUADRANT, QUADRANT))
CLAUSE = "the digit {digit} is at the {corner}"
DEFAULT_DIGITS = 2
_CHUNK = 1024
_STREAM = 4243   # keeps these streams apart from captioned MNIST's with the same seed


def banned_corner_digits(banned_seed=DEFAULT_BANNED_SEED):
    """(4,) int64: the held-out digit of each corner (CORNERS order), captioned MNIST's one-digit corner
    templates' banned X digits."""
    rows = [TEMPLATE_NAMES.index(c) for c in CORNERS]
    return banned_digits(banned_seed)[rows, 0].astype(np.int64)


def render_corner_caption(corners, digits):
    """The caption for digits (caption order) at corners (indices into CORNERS or names).

    render_corner_caption([0, 3], [3, 5]) ->
        "the digit three is at the top left and the digit five is at the bottom right ."
    """
    names = [CORNERS[int(c)] if not isinstance(c, str) else c for c in corners]
    return " and ".join(CLAUSE.format(digit=DIGIT_WORDS[int(d)], corner=n) for n, d in zip(names, digits)) + " ."


@dataclass
class CornerMNIST:
    """Corner-MNIST canvases with their structured truth.

    images:  (N, 60, 60) float32 in [0, 1], white ink on black.
    captions: list of N strings (k clauses joined by "and", ending in " .").
    corners: (N, k) int64, index into CORNERS of each named digit, in caption order (all different).
    digits:  (N, k) int64, the digits 0-9 in caption order.
    boxes:   (N, k, 2) int64, the top-left corner (row, col) of each digit's 28x28 box.
    source:  (N, k) int64, index of each digit in data/mnist_5k.npz.
    split, seed, banned_seed: how they were made (seed -1: drawn from a Generator by sample_corner_mnist).
    """
    images: np.ndarray
    captions: list
    corners: np.ndarray
    digits: np.ndarray
    boxes: np.ndarray
    source: np.ndarray
    split: str
    seed: int
    banned_seed: int

    def __len__(self):
        return len(self.captions)

    def subset(self, idx):
        """The canvases at integer indices idx, as a new CornerMNIST."""
        idx = np.asarray(idx, dtype=np.int64)
        return CornerMNIST(self.images[idx], [self.captions[i] for i in idx], self.corners[idx], self.digits[idx],
                           self.boxes[idx], self.source[idx], self.split, self.seed, self.banned_seed)

    def expected_reading(self):
        """(N, 4) int64: the digit each corner (CORNERS order) should read, -1 for an empty corner."""
        out = np.full((len(self), len(CORNERS)), -1, dtype=np.int64)
        np.put_along_axis(out, self.corners, self.digits, axis=1)
        return out


def _check(split, n, n_digits, at_least):
    if split not in SPLITS:
        raise MinicapError(f"unknown corner-MNIST split {split!r}: choose one of {', '.join(SPLITS)}")
    if int(n) < at_least:
        raise MinicapError(f"the number of canvases must be >= {at_least}, got {n}")
    if not 2 <= int(n_digits) <= len(CORNERS):
        raise MinicapError(f"corner MNIST holds 2 to 4 digits per canvas, got {n_digits}")


def make_corner_mnist(split="train", n=None, seed=0, banned_seed=DEFAULT_BANNED_SEED, n_digits=DEFAULT_DIGITS):
    """Generate corner-MNIST canvases, deterministically.

    split: "train", "val", "test" (no banned pair) or "novel" (at least one banned pair per canvas).
    n: number of canvases (default captioned MNIST's DEFAULT_SIZES[split]: 10000 / 1000 / 1000 / 1000).
    seed: the same (split, seed, banned_seed, n_digits) always gives the same canvases, and canvas i does
        not depend on n (a smaller n is a prefix of a larger one): they are made in chunks of 1,024,
        each from its own seeded stream.
    Returns: CornerMNIST.
    """
    n = DEFAULT_SIZES.get(split, 0) if n is None else n
    _check(split, n, n_digits, 0)
    n, k = int(n), int(n_digits)
    parts = []
    for chunk in range(-(-n // _CHUNK)):
        rng = np.random.default_rng([int(seed), _SPLIT_CODE[split], int(banned_seed), chunk, _STREAM, k])
        parts.append(_generate(rng, _CHUNK, split, k, banned_seed))
    if not parts:
        empty = np.zeros((0, k), np.int64)
        return CornerMNIST(np.zeros((0, CANVAS, CANVAS), np.float32), [], empty, empty.copy(),
                           np.zeros((0, k, 2), np.int64), empty.copy(), split, int(seed), int(banned_seed))
    cat = [np.concatenate([p[i] for p in parts])[:n] for i in (0, 2, 3, 4, 5)]
    captions = [c for p in parts for c in p[1]][:n]
    return CornerMNIST(cat[0], captions, *cat[1:], split, int(seed), int(banned_seed))


def sample_corner_mnist(rng, n, split="train", banned_seed=DEFAULT_BANNED_SEED, n_digits=DEFAULT_DIGITS):
    """n fresh corner-MNIST canvases drawn from a numpy Generator `rng` (not from a seed): every random
    number comes from rng, so a training loop that draws each batch from its own saved rng resumes
    exactly. The same digit pool, placements and held-out rule as make_corner_mnist(split).
    Returns CornerMNIST (seed -1)."""
    _check(split, n, n_digits, 1)
    images, captions, corners, digits, boxes, source = _generate(rng, int(n), split, int(n_digits), banned_seed)
    return CornerMNIST(images, captions, corners, digits, boxes, source, split, -1, int(banned_seed))


def _has_banned(corners, digits, banned):
    """(N,) bool: some digit stands in its corner's held-out place."""
    return (digits == banned[corners]).any(axis=1)


def _generate(rng, n, split, k, banned_seed):
    """n canvases of k digits from one rng. Returns (images, captions, corners, digits, boxes, source)."""
    pool = mnist_5k_split_indices()[_DIGIT_POOL[split]]
    all_images, all_labels = load_mnist_5k("all")
    banned = banned_corner_digits(banned_seed)
    want_banned = split == "novel"
    # 1. k different corners in a random order (the caption order), uniform over ordered k-subsets.
    corners = np.argsort(rng.random((n, len(CORNERS))), axis=1)[:, :k].astype(np.int64)
    # 2. Digit instances, re-drawn (corners kept) until the held-out rule holds.
    source = pool[rng.integers(0, len(pool), size=(n, k))]
    redo = np.flatnonzero(_has_banned(corners, all_labels[source].astype(np.int64), banned) != want_banned)
    while redo.size:
        source[redo] = pool[rng.integers(0, len(pool), size=(redo.size, k))]
        bad = _has_banned(corners[redo], all_labels[source[redo]].astype(np.int64), banned)
        redo = redo[bad != want_banned]
    digits = all_labels[source].astype(np.int64)
    # 3. Box corners: a row from the corner's row range, a column from its column range, uniform.
    u = rng.random((n, k, 2))
    lo = np.array([[RANGES[r][0], RANGES[c][0]] for r, c in _CORNER_RANGES])     # (4, 2)
    hi = np.array([[RANGES[r][1], RANGES[c][1]] for r, c in _CORNER_RANGES])
    boxes = lo[corners] + np.floor(u * (hi[corners] - lo[corners] + 1)).astype(np.int64)
    # 4. Paint with a pixel-wise maximum (order-free where two boxes overlap).
    canvas = np.zeros((n, CANVAS, CANVAS), dtype=np.uint8)
    offsets = np.arange(DIGIT)
    ex = np.arange(n)[:, None, None]
    for slot in range(k):
        r = boxes[:, slot, 0][:, None, None] + offsets[None, :, None]
        c = boxes[:, slot, 1][:, None, None] + offsets[None, None, :]
        canvas[ex, r, c] = np.maximum(canvas[ex, r, c], all_images[source[:, slot]])
    captions = [render_corner_caption(cs, ds) for cs, ds in zip(corners.tolist(), digits.tolist())]
    return canvas.astype(np.float32) / np.float32(255.0), captions, corners, digits, boxes, source


# --- reading captions and canvases back ----------------------------------------------------------


def parse_corner_caption(caption):
    """A corner-MNIST caption (str or tokens) -> ((corner index, digit), ...) in caption order, or None
    if it is not 1-4 well-formed clauses joined by "and" naming different corners. Digits may be words
    or numerals, as in captioned MNIST."""
    tokens = tokenize(caption) if isinstance(caption, str) else [t.lower() for t in caption if t != "."]
    out, clauses = [], " ".join(tokens).split(" and ")
    for clause in clauses:
        words = clause.split()
        if len(words) != 8 or words[:2] != ["the", "digit"] or words[3:6] != ["is", "at", "the"]:
            return None
        corner = " ".join(words[6:])
        if words[2] not in _WORD_TO_DIGIT or corner not in CORNERS:
            return None
        out.append((CORNERS.index(corner), _WORD_TO_DIGIT[words[2]]))
    if len({c for c, _ in out}) != len(out) or len(out) > len(CORNERS):
        return None
    return tuple(out)


# The reader's empty-corner rule: a quadrant with fewer than INK_PIXELS pixels brighter than INK_LEVEL
# holds no digit. From real data (docs/aligndraw_corners.md, "the reader"): every one of the shipped
# 5,000 MNIST digits has at least 23 pixels above 0.5 (0.1% have fewer than 32), while on 1,000 real
# canvases of each split a quadrant without a digit had at most 2 (a neighbour's stroke crossing the
# middle); 10 sits between the two. A drawing's background (sigmoid(-6) ~ 0.0025) and faint grey haze
# stay below 0.5 and count as empty.
INK_LEVEL = 0.5
INK_PIXELS = 10
_PAD = 3   # 30x30 quadrant -> 36x36 classifier square: a digit box lands at offset 1-7, inside 0-8 (trained)


def quadrants(images):
    """(N, 60, 60) -> (N, 4, 30, 30): the four corner quadrants, CORNERS order."""
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (CANVAS, CANVAS):
        raise MinicapError(f"corner MNIST reads 60x60 canvases, got images of shape {images.shape}")
    return np.stack([images[:, r:r + QUADRANT, c:c + QUADRANT] for r, c in QUADRANT_AT], axis=1)


def read_corners(images, params=None, batch_size=500):
    """What the shipped MNIST classifier reads in each corner: (N, 4) int64 digits, CORNERS order,
    -1 where the quadrant has (almost) no ink (INK_PIXELS above).

    Each 30x30 quadrant is padded with black to the classifier's 36x36 square (its training digits
    sat at offsets 0-8 of such a square; a corner's digit box lands at 1-7) and classified with
    minicap.models.encoder.logits_forward, as encoder.classify_digits does for 28x28 digits.
    params: encoder weights (default load_encoder(), data/encoder_mnist.npz).
    """
    from minicap.models.encoder import load_encoder, logits_forward
    params = load_encoder() if params is None else params
    quads = quadrants(images).astype(np.float32)
    N = len(quads)
    flat = quads.reshape(N * len(CORNERS), QUADRANT, QUADRANT)
    padded = np.pad(flat, ((0, 0), (_PAD, _PAD), (_PAD, _PAD)))
    preds = [logits_forward(padded[i:i + batch_size], params)[0].argmax(axis=1)
             for i in range(0, len(padded), batch_size)]
    read = (np.concatenate(preds) if preds else np.zeros(0, np.int64)).astype(np.int64).reshape(N, len(CORNERS))
    inked = (quads > INK_LEVEL).sum(axis=(2, 3)) >= INK_PIXELS
    return np.where(inked, read, -1)


def corner_accuracy(read, data):
    """The share of canvases read exactly as captioned: every named corner reads its named digit and
    every other corner reads empty (-1). read: (N, 4) from read_corners; data: CornerMNIST."""
    read = np.asarray(read)
    if read.shape != (len(data), len(CORNERS)):
        raise MinicapError(f"corner_accuracy needs one (4,) reading per canvas: got {read.shape} for {len(data)} canvases")
    if len(data) == 0:
        return float("nan")
    return float((read == data.expected_reading()).all(axis=1).mean())


def clause_accuracy(read, data):
    """The share of named (corner, digit) pairs whose corner reads the named digit (empties elsewhere
    not checked): how many of the caption's clauses a drawing gets right."""
    read = np.asarray(read)
    if len(data) == 0:
        return float("nan")
    return float((np.take_along_axis(read, data.corners, axis=1) == data.digits).mean())
