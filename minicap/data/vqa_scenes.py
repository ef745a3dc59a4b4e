"""MNIST scenes with questions: the visual question answering dataset of minicap (generated, nothing
downloaded), in the spirit of CLEVR at MNIST scale.

A scene is a 60x60 canvas cut into a 2x2 grid of 30x30 cells; 1 to 4 cells hold a 28x28 MNIST digit
(at a jitter of 0-2 pixels each way inside its cell), and no digit appears twice in a scene. Each scene
keeps its structured truth: `cells[n, k]` is the digit in cell k (-1: empty), cells numbered

    0 top left     1 top right
    2 bottom left  3 bottom right

Each example is one scene with one question from one of six families, each written from templates:

    family        question (example)                          answers
    exist         is there a seven ?                          yes / no
    query_digit   what digit is at the top left ?             zero .. nine / nothing
    query_place   where is the seven ?                        top left / top right / bottom left / bottom right
    relate        what digit is left of the seven ?           zero .. nine / nothing   (two steps: find the
                  (also right of / above / below)             seven, then look at the cell beside it)
    compare       is the seven left of the two ?              yes / no
                  is the seven above the two ?
    count         how many digits are there ?                 one / two / three / four

Relate asks only for a direction that stays inside the grid (a seven at the top left has no cell to
its left, so "left of" is never asked about it); the answer is the digit in the neighbouring cell, or
"nothing" when that cell is empty. Compare: "X left of Y" is yes when X's column is left of Y's (the
rows may differ), no otherwise (same column, or right of it); "above" likewise with rows.

All answers come from one closed vocabulary, ANSWERS (17 classes; the count answers "one".."four"
share their class with the digits of the same name). Answers are balanced within each family: an
example draws its family uniformly, then its answer uniformly from the family's answers, then a scene
and question that have that answer. So no family can be answered from the question alone above its
chance rate (1/2, 1/11, 1/4, 1/11, 1/2, 1/4), except by what the question's own words say about
the scene (a seven that is asked about is in the scene, so it is not the answer to "what digit is
left of the seven ?"): the question-only model measures it (docs/vqa.md).

Splits: train / val / test scenes use the digits of the fixed MNIST split of the same name
(minicap.data.mnist); `novel` uses test digits and holds only scenes with at least one held-out
(digit, cell) pair: `held_out_pairs(seed)` picks 1 digit per cell (4 of the 40 pairs, four different
digits) that never appear in that cell in train, val or test. A model that learned "where" separately from "what"
answers novel scenes as well as test scenes.

Everything is deterministic: the same (split, seed) gives the same examples, and example i does not
depend on n (examples are made in seeded chunks, as captioned MNIST does).
"""
from dataclasses import dataclass

import numpy as np

from minicap.data.captioned_mnist import DIGIT_WORDS
from minicap.data.mnist import load_mnist_5k, mnist_5k_split_indices
from minicap.errors import MinicapError

CANVAS = 60
CELL = 30
DIGIT = 28
JITTER = CELL - DIGIT          # a digit's corner sits 0..JITTER pixels into its cell, each way
CELL_NAMES = ("top left", "top right", "bottom left", "bottom right")
CELL_ROW = np.array([0, 0, 1, 1])
CELL_COL = np.array([0, 1, 0, 1])

FAMILIES = ("exist", "query_digit", "query_place", "relate", "compare", "count")
COUNT_WORDS = ("one", "two", "three", "four")
ANSWERS = ("yes", "no") + DIGIT_WORDS + ("nothing",) + CELL_NAMES
ANSWER_INDEX = {a: i for i, a in enumerate(ANSWERS)}
# the answers of each family, as indices into ANSWERS (drawn uniformly)
FAMILY_ANSWERS = {
    "exist": [ANSWER_INDEX["yes"], ANSWER_INDEX["no"]],
    "query_digit": [ANSWER_INDEX[w] for w in DIGIT_WORDS + ("nothing",)],
    "query_place": [ANSWER_INDEX[c] for c in CELL_NAMES],
    "relate": [ANSWER_INDEX[w] for w in DIGIT_WORDS + ("nothing",)],
    "compare": [ANSWER_INDEX["yes"], ANSWER_INDEX["no"]],
    "count": [ANSWER_INDEX[w] for w in COUNT_WORDS],
}
# relate: direction word -> (row step, col step); the neighbour of cell (r, c) is (r + dr, c + dc)
RELATIONS = {"left of": (0, -1), "right of": (0, 1), "above": (-1, 0), "below": (1, 0)}

TEMPLATES = {
    "exist": "is there a {x} ?",
    "query_digit": "what digit is at the {place} ?",
    "query_place": "where is the {x} ?",
    "relate": "what digit is {relation} the {x} ?",
    "compare": "is the {x} {relation} the {y} ?",     # relation: "left of" or "above"
    "count": "how many digits are there ?",
}

SPLITS = ("train", "val", "test", "novel")
DEFAULT_SIZES = {"train": 12000, "val": 1000, "test": 2000, "novel": 2000}
_DIGIT_POOL = {"train": "train", "val": "val", "test": "test", "novel": "test"}
_SPLIT_CODE = {"train": 11, "val": 12, "test": 13, "novel": 14}
_CHUNK = 512
DEFAULT_HELD_OUT_SEED = 0


def question_words():
    """Every word a question can use, in a fixed order: the question vocabulary is closed."""
    words = []
    for template in TEMPLATES.values():
        for token in template.split():
            if not token.startswith("{") and token not in words:
                words.append(token)
    for extra in DIGIT_WORDS + tuple(" ".join(CELL_NAMES).split()) + tuple(" ".join(RELATIONS).split()):
        if extra not in words:
            words.append(extra)
    return words


# question vocabulary: index 0 is <NULL> (padding)
QUESTION_VOCAB = ("<NULL>",) + tuple(question_words())
WORD_INDEX = {w: i for i, w in enumerate(QUESTION_VOCAB)}
MAX_QUESTION_LENGTH = 8


def encode_questions(questions, max_length=MAX_QUESTION_LENGTH):
    """Questions (strings) -> (N, T) int64 word ids, padded with 0 (<NULL>) after the last word.

    Raises MinicapError naming the first word outside QUESTION_VOCAB, or an empty question."""
    out = np.zeros((len(questions), max_length), dtype=np.int64)
    for n, q in enumerate(questions):
        tokens = q.lower().replace("?", " ?").split()
        if not tokens:
            raise MinicapError(f"question {n} is empty")
        if len(tokens) > max_length:
            raise MinicapError(f"question {q!r} has {len(tokens)} words; the model reads at most {max_length}")
        for t, word in enumerate(tokens):
            if word not in WORD_INDEX:
                raise MinicapError(f"the word {word!r} in {q!r} is not in the question vocabulary (known words: "
                                   f"{' '.join(QUESTION_VOCAB[1:])})")
            out[n, t] = WORD_INDEX[word]
    return out


def held_out_pairs(seed=DEFAULT_HELD_OUT_SEED):
    """(4, 10) bool: held[k, d] is True when digit d never sits in cell k in train/val/test scenes.
    One digit per cell, four different digits, drawn from a fixed stream. (Few pairs, each digit held
    out of one cell at most: a held-out pair also tells a question-only model something - a seven
    never at the top left in training is not there in test either - and more pairs would tell it more.)"""
    rng = np.random.default_rng([seed, 4231])
    held = np.zeros((4, 10), dtype=bool)
    held[np.arange(4), rng.choice(10, size=4, replace=False)] = True
    return held


@dataclass
class VQAScenes:
    """Examples of the MNIST-scenes VQA dataset with their structured truth.

    images:    (N, 60, 60) float32 in [0, 1], white ink on black.
    cells:     (N, 4) int64, the digit in each cell (-1: empty), cells in CELL_NAMES order.
    source:    (N, 4) int64, index of each digit in data/mnist_5k.npz (-1: empty cell).
    offsets:   (N, 4, 2) int64, each digit's (row, col) jitter inside its cell.
    questions: list of N strings.
    tokens:    (N, T) int64, the questions as word ids (QUESTION_VOCAB), 0-padded.
    answers:   (N,) int64, index into ANSWERS.
    family:    (N,) int64, index into FAMILIES.
    focus:     (N,) int64, the cell that holds the answer (query_digit: the asked place; relate: the
               neighbour; query_place: the answer cell), -1 for the other families. Attention
               localisation is measured on it.
    split, seed: how the examples were made.
    """
    images: np.ndarray
    cells: np.ndarray
    source: np.ndarray
    offsets: np.ndarray
    questions: list
    tokens: np.ndarray
    answers: np.ndarray
    family: np.ndarray
    focus: np.ndarray
    split: str
    seed: int

    def __len__(self):
        return len(self.questions)

    def answer_words(self):
        return [ANSWERS[a] for a in self.answers]

    def subset(self, idx):
        idx = np.asarray(idx)
        return VQAScenes(self.images[idx], self.cells[idx], self.source[idx], self.offsets[idx],
                         [self.questions[i] for i in idx], self.tokens[idx], self.answers[idx], self.family[idx],
                         self.focus[idx], self.split, self.seed)


def make_vqa_scenes(split="train", n=None, seed=0, held_out_seed=DEFAULT_HELD_OUT_SEED):
    """Generate n VQA examples of `split`, deterministically (see the module docstring).

    Returns VQAScenes."""
    if split not in SPLITS:
        raise MinicapError(f"unknown mnist-vqa split {split!r}: choose one of {', '.join(SPLITS)}")
    n = DEFAULT_SIZES[split] if n is None else int(n)
    if n < 0:
        raise MinicapError(f"the number of examples must be >= 0, got {n}")
    pool = mnist_5k_split_indices()[_DIGIT_POOL[split]]
    all_images, all_labels = load_mnist_5k("all")
    by_digit = [pool[all_labels[pool] == d] for d in range(10)]
    held = held_out_pairs(held_out_seed)
    rows = []
    for chunk in range(-(-n // _CHUNK)):
        rng = np.random.default_rng([int(seed), _SPLIT_CODE[split], int(held_out_seed), chunk])
        for _ in range(min(_CHUNK, n - chunk * _CHUNK)):
            rows.append(_example(rng, by_digit, held, want_held=split == "novel"))
    cells = np.array([r[0] for r in rows], dtype=np.int64).reshape(-1, 4)
    source = np.array([r[1] for r in rows], dtype=np.int64).reshape(-1, 4)
    offsets = np.array([r[2] for r in rows], dtype=np.int64).reshape(-1, 4, 2)
    questions = [r[3] for r in rows]
    answers = np.array([r[4] for r in rows], dtype=np.int64)
    family = np.array([r[5] for r in rows], dtype=np.int64)
    focus = np.array([r[6] for r in rows], dtype=np.int64)
    images = render_scenes(source, offsets, all_images)
    return VQAScenes(images, cells, source, offsets, questions, encode_questions(questions), answers, family,
                     focus, split, int(seed))


def render_scenes(source, offsets, all_images):
    """Paint the digits: source (N, 4) indices into all_images (-1 empty), offsets (N, 4, 2).
    Returns (N, 60, 60) float32 in [0, 1]."""
    canvas = np.zeros((len(source), CANVAS, CANVAS), dtype=np.float32)
    for n, k in zip(*np.nonzero(source >= 0)):
        r = CELL_ROW[k] * CELL + offsets[n, k, 0]
        c = CELL_COL[k] * CELL + offsets[n, k, 1]
        canvas[n, r:r + DIGIT, c:c + DIGIT] = all_images[source[n, k]] / np.float32(255.0)
    return canvas


def _neighbour(cell, relation):
    """The cell beside `cell` in direction `relation`, or None when it would leave the grid."""
    dr, dc = RELATIONS[relation]
    r, c = CELL_ROW[cell] + dr, CELL_COL[cell] + dc
    if not (0 <= r <= 1 and 0 <= c <= 1):
        return None
    return int(2 * r + c)


def _example(rng, by_digit, held, want_held):
    """One example: (cells, source, offsets, question, answer, family, focus). Drawn as the module
    docstring says: family, then answer, then the question's own choices (its digits, place or
    relation), then a scene with that answer. A scene that breaks the held-out rule (novel: must hold a
    held-out pair; others: must not) is drawn again with the SAME question, so the rule does not
    change which answers a question gets (else "is the seven left of the two ?" would be answered by
    where the seven may stand); only when RETRIES scenes fail are the question's choices drawn again."""
    family = int(rng.integers(len(FAMILIES)))
    name = FAMILIES[family]
    answer = int(rng.choice(FAMILY_ANSWERS[name]))
    choices = None
    for attempt in range(10_000):
        if attempt % RETRIES == 0:
            choices = _question_choices(rng, name, ANSWERS[answer])
        cells, question, focus = _scene_for(rng, name, ANSWERS[answer], choices)
        has_held = any(cells[k] >= 0 and held[k, cells[k]] for k in range(4))
        if has_held == want_held:
            break
    else:   # unreachable with the shipped held-out pairs (2 per cell); a guard against an endless loop
        raise MinicapError("could not draw a scene that keeps the held-out (digit, cell) pairs")
    source = np.full(4, -1, dtype=np.int64)
    for k in range(4):
        if cells[k] >= 0:
            pool = by_digit[cells[k]]
            source[k] = pool[rng.integers(len(pool))]
    offsets = rng.integers(0, JITTER + 1, size=(4, 2))
    return cells, source, offsets, question, answer, family, focus


RETRIES = 20   # scenes drawn for one question before its choices are drawn again


def _fill(rng, cells, p=0.5, exclude=()):
    """Put distinct new digits (not in `exclude`) into the cells marked -2, each with probability p
    (else the cell stays empty)."""
    used = {int(d) for d in cells if d >= 0} | set(exclude)
    free = [d for d in range(10) if d not in used]
    rng.shuffle(free)
    for k in range(4):
        if cells[k] == -2:
            cells[k] = free.pop() if rng.random() < p else -1
    return cells


def _random_digits(rng, k, exclude=()):
    choices = [d for d in range(10) if d not in exclude]
    return [int(d) for d in rng.choice(choices, size=k, replace=False)]


def _question_choices(rng, family, answer):
    """What the question itself says (digits, place, relation), drawn given the family and answer."""
    if family == "exist":
        return {"x": int(rng.integers(10))}
    if family == "query_digit":
        return {"place": int(rng.integers(4))}
    if family == "query_place":
        return {"x": int(rng.integers(10))}
    if family == "relate":
        anchor = int(rng.integers(4))
        relation = [r for r in RELATIONS if _neighbour(anchor, r) is not None][rng.integers(2)]
        exclude = () if answer == "nothing" else (DIGIT_WORDS.index(answer),)
        return {"anchor": anchor, "relation": relation, "x": _random_digits(rng, 1, exclude)[0]}
    if family == "compare":
        x, y = _random_digits(rng, 2)
        return {"relation": ("left of", "above")[rng.integers(2)], "x": x, "y": y}
    return {}


def _scene_for(rng, family, answer, q):
    """A scene (cells (4,) int, -1 empty) for the question with choices q (_question_choices) whose
    answer is `answer`, the question text, and the focus cell (-1 if none)."""
    cells = np.full(4, -2, dtype=np.int64)   # -2: not decided yet (filled at random by _fill)
    if family == "count":
        k = COUNT_WORDS.index(answer) + 1
        chosen = rng.choice(4, size=k, replace=False)
        cells[:] = -1
        cells[chosen] = _random_digits(rng, k)
        return cells, TEMPLATES["count"], -1
    if family == "exist":
        x = q["x"]
        if answer == "yes":
            cells[rng.integers(4)] = x
            cells = _fill(rng, cells)
        else:   # at least one digit, none of them x
            cells[rng.integers(4)] = _random_digits(rng, 1, exclude=(x,))[0]
            cells = _fill(rng, cells, exclude=(x,))
        return cells, TEMPLATES["exist"].format(x=DIGIT_WORDS[x]), -1
    if family == "query_digit":
        place = q["place"]
        if answer == "nothing":
            cells[place] = -1
            others = [k for k in range(4) if k != place]
            cells[others[rng.integers(3)]] = _random_digits(rng, 1)[0]   # never an empty scene
        else:
            cells[place] = DIGIT_WORDS.index(answer)
        cells = _fill(rng, cells)
        return cells, TEMPLATES["query_digit"].format(place=CELL_NAMES[place]), place
    if family == "query_place":
        place = CELL_NAMES.index(answer)
        cells[place] = q["x"]
        cells = _fill(rng, cells)
        return cells, TEMPLATES["query_place"].format(x=DIGIT_WORDS[q["x"]]), place
    if family == "relate":
        anchor, relation, x = q["anchor"], q["relation"], q["x"]
        beside = _neighbour(anchor, relation)
        cells[beside] = -1 if answer == "nothing" else DIGIT_WORDS.index(answer)
        cells[anchor] = x
        cells = _fill(rng, cells)
        return cells, TEMPLATES["relate"].format(relation=relation, x=DIGIT_WORDS[x]), beside
    if family == "compare":
        relation, x, y = q["relation"], q["x"], q["y"]
        axis = CELL_COL if relation == "left of" else CELL_ROW
        pairs = [(a, b) for a in range(4) for b in range(4) if a != b
                 and ((axis[a] < axis[b]) == (answer == "yes"))]
        a, b = pairs[rng.integers(len(pairs))]
        cells[a], cells[b] = x, y
        cells = _fill(rng, cells)
        return cells, TEMPLATES["compare"].format(x=DIGIT_WORDS[x], relation=relation, y=DIGIT_WORDS[y]), -1
    raise ValueError(f"unknown family {family!r}")


def answer_question(cells, question):
    """The true answer (a string of ANSWERS) of a question about a scene with cells (4,), by reading
    the question as its template. An independent check of the generator (the tests use it)."""
    words = question.split()
    digit = {w: i for i, w in enumerate(DIGIT_WORDS)}
    cells = [int(c) for c in cells]
    where = {d: k for k, d in enumerate(cells) if d >= 0}
    if question == TEMPLATES["count"]:
        return COUNT_WORDS[sum(c >= 0 for c in cells) - 1]
    if words[:3] == ["is", "there", "a"]:
        return "yes" if digit[words[3]] in where else "no"
    if words[:5] == ["what", "digit", "is", "at", "the"]:
        place = CELL_NAMES.index(" ".join(words[5:-1]))
        return DIGIT_WORDS[cells[place]] if cells[place] >= 0 else "nothing"
    if words[:2] == ["where", "is"]:
        return CELL_NAMES[where[digit[words[3]]]]
    if words[:3] == ["what", "digit", "is"]:
        relation = " ".join(words[3:-3])
        beside = _neighbour(where[digit[words[-2]]], relation)
        return DIGIT_WORDS[cells[beside]] if cells[beside] >= 0 else "nothing"
    if words[:2] == ["is", "the"]:
        x, y = where[digit[words[2]]], where[digit[words[-2]]]
        axis = CELL_COL if words[3] == "left" else CELL_ROW
        return "yes" if axis[x] < axis[y] else "no"
    raise ValueError(f"not a template question: {question!r}")
