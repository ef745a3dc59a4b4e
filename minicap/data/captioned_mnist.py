"""Captioned MNIST: the toy dataset of Mansimov et al. 2016, "Generating Images from Captions
with Attention", generated on the fly from the shipped MNIST digits.

Each example is a 60x60 canvas holding one or two 28x28 MNIST digits, with a 12-token caption
built from one of 8 templates, chosen uniformly (X and Y are spelled digit words, "zero" to
"nine", as in the paper's figures; the authors' own code wrote numerals "7"):

    template        caption                                              digits
    left            the digit X is on the left of the digit Y .          2
    right           the digit X is on the right of the digit Y .         2
    top             the digit X is at the top of the digit Y .           2
    bottom          the digit X is at the bottom of the digit Y .        2
    top left        the digit X is at the top left of the image .        1
    top right       the digit X is at the top right of the image .       1
    bottom left     the digit X is at the bottom left of the image .     1
    bottom right    the digit X is at the bottom right of the image .    1

"right" and "bottom" captions describe the same pictures as "left" and "top" with the digits
swapped: "the digit one is on the right of the digit seven ." and "the digit seven is on the left
of the digit one ." say the same thing, and `caption_is_correct` accepts either.

Placement (top-left corner of each 28x28 digit box, row and column, inclusive ranges, uniform),
following the authors' generator:

    side by side (left/right)  one row for both in 16-18; left digit cols 0-4, right digit cols 28-32
    stacked (top/bottom)       one col for both in 16-18; top digit rows 0-2, bottom digit rows 30-32
    corners                    rows 0-2 (top) or 30-32 (bottom), cols 0-4 (left) or 28-32 (right)

Side-by-side boxes can overlap by up to 4 columns. As in the authors' code the right digit is
pasted second and overwrites the overlap (MNIST digits have ~4 blank columns at each side, so ink
rarely collides).

Held-out combinations: `banned_digits(banned_seed)` draws one digit per template slot (12 slots:
X and Y of the 4 two-digit templates, X of the 4 one-digit ones), as the authors did. The train,
val and test splits never contain a banned (template, slot, digit) combination: val and test
measure the training distribution on unseen digit instances. The "novel" split contains ONLY
captions with at least one banned combination, for testing generation from novel captions.
Templates stay uniform in every split: a rejected example re-draws its digits, not its template.

Digit instances come from the fixed MNIST split (minicap.data.mnist): train canvases use train
digits, val canvases val digits, test and novel canvases test digits.
"""
from dataclasses import dataclass

import numpy as np

from minicap.data.mnist import load_mnist_5k, mnist_5k_split_indices
from minicap.errors import MinicapError
from minicap.text import tokenize

CANVAS = 60
DIGIT = 28
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# (name, caption with {x} and {y} for the digit words)
TEMPLATES = (
    ("left", "the digit {x} is on the left of the digit {y} ."),
    ("right", "the digit {x} is on the right of the digit {y} ."),
    ("top", "the digit {x} is at the top of the digit {y} ."),
    ("bottom", "the digit {x} is at the bottom of the digit {y} ."),
    ("top left", "the digit {x} is at the top left of the image ."),
    ("top right", "the digit {x} is at the top right of the image ."),
    ("bottom left", "the digit {x} is at the bottom left of the image ."),
    ("bottom right", "the digit {x} is at the bottom right of the image ."),
)
TEMPLATE_NAMES = tuple(name for name, _ in TEMPLATES)
N_DIGITS = np.array([2, 2, 2, 2, 1, 1, 1, 1])

# Inclusive ranges for the top-left corner of a digit box.
RANGES = {"mid": (16, 18), "top": (0, 2), "bottom": (30, 32), "left": (0, 4), "right": (28, 32)}
_RANGE_ORDER = ("mid", "top", "bottom", "left", "right")
# For each template: (X row, X col, Y row, Y col) as names of RANGES (None: no Y digit).
_PLACEMENT = (
    ("mid", "left", "mid", "right"),
    ("mid", "right", "mid", "left"),
    ("top", "mid", "bottom", "mid"),
    ("bottom", "mid", "top", "mid"),
    ("top", "left", None, None),
    ("top", "right", None, None),
    ("bottom", "left", None, None),
    ("bottom", "right", None, None),
)

SPLITS = ("train", "val", "test", "novel")
DEFAULT_SIZES = {"train": 10000, "val": 1000, "test": 1000, "novel": 1000}
_DIGIT_POOL = {"train": "train", "val": "val", "test": "test", "novel": "test"}
_SPLIT_CODE = {"train": 1, "val": 2, "test": 3, "novel": 4}
_CHUNK = 1024
DEFAULT_BANNED_SEED = 0


def banned_digits(banned_seed=DEFAULT_BANNED_SEED):
    """The held-out digit for each template slot.

    Returns: (8, 2) int64; row t is template t of TEMPLATES, column 0 the banned X digit,
    column 1 the banned Y digit (-1 for the one-digit templates, which have no Y).
    """
    rng = np.random.default_rng([banned_seed, 7919])
    banned = rng.integers(0, 10, size=(8, 2))
    banned[N_DIGITS == 1, 1] = -1
    return banned


def render_caption(template, x, y=None):
    """The caption string for a template (name or index) and digit(s) 0-9.

    render_caption("left", 7, 1) -> "the digit seven is on the left of the digit one ."
    """
    t = TEMPLATE_NAMES.index(template) if isinstance(template, str) else int(template)
    if N_DIGITS[t] == 2 and y is None:
        raise ValueError(f"template {TEMPLATE_NAMES[t]!r} needs two digits")
    return TEMPLATES[t][1].format(x=DIGIT_WORDS[int(x)], y=DIGIT_WORDS[int(y)] if y is not None else "")


@dataclass
class CaptionedMNIST:
    """A batch of captioned-MNIST examples with their structured truth.

    images:    (N, 60, 60) float32 in [0, 1], white ink on black.
    captions:  list of N strings (12 tokens each, ending in " .").
    template:  (N,) int64, index into TEMPLATES.
    digits:    (N, 2) int64, the digits in caption order (X, Y); Y = -1 for one-digit captions.
    boxes:     (N, 2, 4) int64, each digit's 28x28 placement box as (row, col, height, width) in
               canvas pixels, in caption order; -1 for a missing Y.
    ink_boxes: (N, 2, 4) int64, the bounding box of each digit's visible ink (pixels > 0 not
               overwritten by the other digit), same layout as boxes.
    source:    (N, 2) int64, index of each digit in data/mnist_5k.npz (-1 for a missing Y).
    split, seed, banned_seed: how the examples were made.
    """
    images: np.ndarray
    captions: list
    template: np.ndarray
    digits: np.ndarray
    boxes: np.ndarray
    ink_boxes: np.ndarray
    source: np.ndarray
    split: str
    seed: int
    banned_seed: int

    def __len__(self):
        return len(self.captions)

    @property
    def n_digits(self):
        """(N,) number of digits in each image (1 or 2)."""
        return N_DIGITS[self.template]

    def subset(self, idx):
        """The examples at integer indices idx, as a new CaptionedMNIST."""
        idx = np.asarray(idx)
        return CaptionedMNIST(self.images[idx], [self.captions[i] for i in idx], self.template[idx],
                              self.digits[idx], self.boxes[idx], self.ink_boxes[idx],
                              self.source[idx], self.split, self.seed, self.banned_seed)

    def truth(self, i):
        """Example i's structured truth as a plain dict (lists of ints, JSON-friendly)."""
        n = int(N_DIGITS[self.template[i]])
        return {"caption": self.captions[i], "template": TEMPLATE_NAMES[self.template[i]],
                "digits": self.digits[i, :n].tolist(), "boxes": self.boxes[i, :n].tolist(),
                "ink_boxes": self.ink_boxes[i, :n].tolist(), "source": self.source[i, :n].tolist()}

    def is_correct(self, i, caption):
        """Whether a caption (str or tokens) describes example i correctly (see caption_is_correct)."""
        return caption_is_correct(caption, self.template[i], self.digits[i])


def _violates_ban(template, digits, banned):
    """(N,) bool: the example holds at least one banned (template, slot, digit) combination."""
    bad_x = digits[:, 0] == banned[template, 0]
    bad_y = (N_DIGITS[template] == 2) & (digits[:, 1] == banned[template, 1])
    return bad_x | bad_y


def make_captioned_mnist(split="train", n=None, seed=0, banned_seed=DEFAULT_BANNED_SEED):
    """Generate captioned-MNIST examples, deterministically.

    split: "train", "val", "test" (no banned combinations) or "novel" (only banned combinations).
    n: number of examples (default DEFAULT_SIZES[split]: 10000 / 1000 / 1000 / 1000).
    seed: the same (split, seed, banned_seed) always gives the same examples, and example i does
        not depend on n (a smaller n gives a prefix of a larger one). Different splits with the
        same seed are independent streams. A new seed gives fresh canvases from the same digit
        pool (as many as a training run wants).
    Returns: CaptionedMNIST.
    """
    if split not in SPLITS:
        raise MinicapError(f"unknown captioned-MNIST split {split!r}: choose one of {', '.join(SPLITS)}")
    n = DEFAULT_SIZES[split] if n is None else int(n)
    if n < 0:
        raise MinicapError(f"the number of examples must be >= 0, got {n}")
    pool = mnist_5k_split_indices()[_DIGIT_POOL[split]]
    all_images, all_labels = load_mnist_5k("all")
    banned = banned_digits(banned_seed)
    # Examples are made in chunks of _CHUNK, each from its own seeded stream, so example i does
    # not depend on n: the first 16 of a 10,000-example set are the 16 `minicap data show` draws.
    parts = []
    for chunk in range(-(-n // _CHUNK)):
        rng = np.random.default_rng([int(seed), _SPLIT_CODE[split], int(banned_seed), chunk])
        parts.append(_generate(rng, _CHUNK, pool, all_images, all_labels, banned,
                               want_banned=split == "novel"))
    keep = slice(0, n)
    images = np.concatenate([p[0] for p in parts] or [np.zeros((0, CANVAS, CANVAS), np.float32)])[keep]
    captions = [c for p in parts for c in p[1]][keep]
    template, digits, boxes, ink_boxes, source = (
        np.concatenate([p[k] for p in parts] or [np.zeros((0,) + shape, np.int64)])[keep]
        for k, shape in ((2, ()), (3, (2,)), (4, (2, 4)), (5, (2, 4)), (6, (2,))))
    return CaptionedMNIST(images, captions, template, digits, boxes, ink_boxes, source,
                          split, int(seed), int(banned_seed))


def sample_captioned_mnist(rng, n, split="train", banned_seed=DEFAULT_BANNED_SEED):
    """n fresh captioned-MNIST examples drawn from a numpy Generator `rng` (not from a seed).

    The same generator as make_captioned_mnist (same digit pool, placements and held-out combinations
    of `split`), but every random number comes from `rng`, so a training loop can draw new canvases
    for every batch from its own saved rng state and a resumed run continues exactly. make_captioned_mnist
    stays the way to get a fixed, reproducible set. Returns CaptionedMNIST (its seed field is -1).
    """
    if split not in SPLITS:
        raise MinicapError(f"unknown captioned-MNIST split {split!r}: choose one of {', '.join(SPLITS)}")
    if int(n) < 1:
        raise MinicapError(f"the number of examples must be >= 1, got {n}")
    pool = mnist_5k_split_indices()[_DIGIT_POOL[split]]
    all_images, all_labels = load_mnist_5k("all")
    images, captions, template, digits, boxes, ink_boxes, source = _generate(
        rng, int(n), pool, all_images, all_labels, banned_digits(banned_seed), want_banned=split == "novel")
    return CaptionedMNIST(images, captions, template, digits, boxes, ink_boxes, source, split, -1, int(banned_seed))


def _generate(rng, n, pool, all_images, all_labels, banned, want_banned):
    """Make n examples from one rng. pool: indices of the digits allowed; want_banned: the
    examples must (novel split) or must not (others) hold a banned combination.
    Returns (images, captions, template, digits, boxes, ink_boxes, source)."""
    # 1. Templates, uniform; digit instances (in caption order) re-drawn until the ban rule holds.
    template = rng.integers(0, len(TEMPLATES), size=n)
    source = pool[rng.integers(0, len(pool), size=(n, 2))]
    redo = np.flatnonzero(_violates_ban(template, all_labels[source].astype(np.int64), banned) != want_banned)
    while redo.size:
        source[redo] = pool[rng.integers(0, len(pool), size=(redo.size, 2))]
        bad = _violates_ban(template[redo], all_labels[source[redo]].astype(np.int64), banned)
        redo = redo[bad != want_banned]
    two = N_DIGITS[template] == 2
    source[~two, 1] = -1
    digits = np.where(source >= 0, all_labels[np.maximum(source, 0)].astype(np.int64), -1)

    # 2. Box corners: one draw from each range per example; the template says which range each
    # coordinate uses (no template uses a range twice).
    draws = np.stack([rng.integers(RANGES[r][0], RANGES[r][1] + 1, size=n) for r in _RANGE_ORDER])
    boxes = np.full((n, 2, 4), -1, dtype=np.int64)
    for t, spec in enumerate(_PLACEMENT):
        rows = np.flatnonzero(template == t)
        for slot in range(N_DIGITS[t]):
            r_name, c_name = spec[2 * slot], spec[2 * slot + 1]
            boxes[rows, slot, 0] = draws[_RANGE_ORDER.index(r_name), rows]
            boxes[rows, slot, 1] = draws[_RANGE_ORDER.index(c_name), rows]
            boxes[rows, slot, 2:] = DIGIT

    # 3. Paint. The left/top digit goes first; the right/bottom one is pasted over it.
    right_or_bottom_first = np.isin(template, [TEMPLATE_NAMES.index("right"), TEMPLATE_NAMES.index("bottom")])
    first = np.where(right_or_bottom_first, 1, 0)   # slot painted first
    second = 1 - first                              # slot painted second (two-digit only)
    canvas = np.zeros((n, CANVAS, CANVAS), dtype=np.uint8)
    offsets = np.arange(DIGIT)
    ex = np.arange(n)

    def paste(examples, slots):
        src = source[examples, slots]
        r = boxes[examples, slots, 0][:, None, None] + offsets[None, :, None]
        c = boxes[examples, slots, 1][:, None, None] + offsets[None, None, :]
        canvas[examples[:, None, None], r, c] = all_images[src]

    paste(ex, first)
    paste(ex[two], second[two])

    # 4. Ink boxes, counting only what is still visible (the first digit may lose its last columns).
    digit_pixels = all_images[np.maximum(source, 0)]            # (n, 2, 28, 28)
    visible_cols = np.full((n, 2), DIGIT, dtype=np.int64)
    side = two & ~np.isin(template, [TEMPLATE_NAMES.index("top"), TEMPLATE_NAMES.index("bottom")])
    gap = boxes[ex, second, 1] - boxes[ex, first, 1]           # columns before the second box starts
    visible_cols[ex[side], first[side]] = np.minimum(DIGIT, gap[side])
    ink = (digit_pixels > 0) & (offsets[None, None, None, :] < visible_cols[:, :, None, None])
    ink_boxes = _bounding_boxes(ink, boxes)
    ink_boxes[~two, 1] = -1

    captions = [TEMPLATES[t][1].format(x=DIGIT_WORDS[x], y=DIGIT_WORDS[y] if y >= 0 else "")
                for t, x, y in zip(template.tolist(), digits[:, 0].tolist(), digits[:, 1].tolist())]
    images = canvas.astype(np.float32) / np.float32(255.0)
    return images, captions, template, digits, boxes, ink_boxes, source


def _bounding_boxes(mask, boxes):
    """mask: (N, 2, 28, 28) bool ink; boxes: (N, 2, 4) placement boxes.

    Returns (N, 2, 4) int64 (row, col, height, width) of the ink in canvas coordinates
    (-1s where a mask is empty).
    """
    rows_any = mask.any(axis=3)
    cols_any = mask.any(axis=2)
    top = rows_any.argmax(axis=2)
    bottom = DIGIT - rows_any[:, :, ::-1].argmax(axis=2)
    left = cols_any.argmax(axis=2)
    right = DIGIT - cols_any[:, :, ::-1].argmax(axis=2)
    out = np.stack([boxes[..., 0] + top, boxes[..., 1] + left, bottom - top, right - left], axis=-1)
    out[~rows_any.any(axis=2)] = -1
    return out


# --- reading captions back ----------------------------------------------------------------------
_WORD_TO_DIGIT = {w: d for d, w in enumerate(DIGIT_WORDS)}
_WORD_TO_DIGIT.update({str(d): d for d in range(10)})
# Each template tokenized (the tokenizer drops the final "."), with slot markers for the digits.
_PATTERNS = [tokenize(pattern.format(x="xslot", y="yslot")) for _, pattern in TEMPLATES]


@dataclass(frozen=True)
class CaptionMeaning:
    """What a captioned-MNIST caption says: a template name and the digits in caption order."""
    template: str
    digits: tuple

    def canonical(self):
        """The same meaning with "right"/"bottom" rewritten as "left"/"top" (digits swapped)."""
        if self.template == "right":
            return CaptionMeaning("left", self.digits[::-1])
        if self.template == "bottom":
            return CaptionMeaning("top", self.digits[::-1])
        return self


def parse_caption(caption):
    """Read a caption (a string, or a list of tokens) back into its meaning.

    Digits may be words ("seven") or numerals ("7"); case and the final "." do not matter.
    Returns CaptionMeaning, or None if the caption does not follow one of the 8 templates
    exactly (a model's malformed output is simply wrong, not an error).
    """
    tokens = tokenize(caption) if isinstance(caption, str) else [t.lower() for t in caption if t != "."]
    for t, pattern in enumerate(_PATTERNS):
        if len(tokens) != len(pattern):
            continue
        digits = {}
        for word, expected in zip(tokens, pattern):
            if expected in ("xslot", "yslot"):
                if word not in _WORD_TO_DIGIT:
                    break
                digits[expected] = _WORD_TO_DIGIT[word]
            elif word != expected:
                break
        else:
            found = (digits["xslot"],) if "yslot" not in digits else (digits["xslot"], digits["yslot"])
            return CaptionMeaning(TEMPLATE_NAMES[t], found)
    return None


def caption_is_correct(caption, template, digits):
    """Whether `caption` states the truth (template index or name, digits in caption order).

    Equivalent captions count as correct: "X on the left of Y" = "Y on the right of X", and
    "X at the top of Y" = "Y at the bottom of X". An unparseable caption is incorrect.
    """
    meaning = parse_caption(caption)
    if meaning is None:
        return False
    name = template if isinstance(template, str) else TEMPLATE_NAMES[int(template)]
    n = 2 if name in ("left", "right", "top", "bottom") else 1
    truth = CaptionMeaning(name, tuple(int(d) for d in list(digits)[:n]))
    return meaning.canonical() == truth.canonical()


def caption_accuracy(captions, data):
    """Fraction of `captions` (one per example of `data`, a CaptionedMNIST) that are correct."""
    if len(captions) != len(data):
        raise ValueError(f"{len(captions)} captions for {len(data)} examples")
    if len(data) == 0:
        return float("nan")
    return float(np.mean([data.is_correct(i, c) for i, c in enumerate(captions)]))


_LAYOUT = {"left": "side by side", "right": "side by side", "top": "stacked", "bottom": "stacked"}


def accuracy_by_template(captions, data):
    """The round trip's accuracy per template, and why the wrong captions are wrong.

    captions: one per example of `data` (a CaptionedMNIST), e.g. what a captioner read in drawings made
    for data.captions. Returns {template name: {"prompts": n, "correct": share caption_is_correct,
    "digits": share whose caption names the prompt's digits (in any order or places), "layout": share
    whose caption has the prompt's layout (side by side, stacked, or the same corner; any digits)}},
    templates in TEMPLATES order, those with no prompt left out. A two-digit drawing with the right
    digits and layout that is still wrong has its digits swapped.
    """
    if len(captions) != len(data):
        raise ValueError(f"{len(captions)} captions for {len(data)} examples")
    out = {}
    for t, name in enumerate(TEMPLATE_NAMES):
        rows = np.flatnonzero(data.template == t)
        if not len(rows):
            continue
        correct = digits = layout = 0
        for i in rows:
            meaning = parse_caption(captions[i])
            correct += data.is_correct(i, captions[i])
            if meaning is None:
                continue
            want = sorted(int(d) for d in data.digits[i, :N_DIGITS[t]])
            digits += sorted(meaning.digits) == want
            layout += _LAYOUT.get(meaning.template, meaning.template) == _LAYOUT.get(name, name)
        n = len(rows)
        out[name] = {"prompts": n, "correct": correct / n, "digits": digits / n, "layout": layout / n}
    return out
