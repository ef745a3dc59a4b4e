"""Users' own VQA data: a JSON file of questions about images in a folder beside it.

    {"questions": [{"image": "img/cat.png", "question": "what colour is the cat ?", "answer": "black",
                    "split": "train"},            # "split" optional: train / val / test
                   ...]}

    data = load_vqa_json("mydata/questions.json", size=(60, 60), mode="auto")
    data.split("train")   -> a VQAFileSplit (images, tokens, answers) for training

Image paths are relative to the JSON file's folder. Every image is read (grey "L" or "RGB", as `mode`
says; the other is converted; "auto": RGB if any image has colour, i.e. any pixel whose red, green
and blue differ, else grey) and resized (bilinear) to `size`. Each image file is decoded once and
kept as uint8 (60x60 RGB: 10.8 KB an image; float32 would be four times that): `pictures`
(P, H, W[, 3]) holds every distinct image once, `image_index` (N,) the picture of each question;
`images` gives the (N, H, W[, 3]) uint8 stack of the questions' images when it is needed.

Questions are lower-cased and split on spaces ("?" becomes its own word). Without a "split" field a question goes to val with probability
`held_out` and to test with the same probability, the rest to train (a fixed hash of its image and
question, so the cut does not depend on the order of the file).

The vocabulary is built from the TRAINING questions only (id 0 <NULL> pads, id 1 <UNK> stands for a
word seen only outside training) and the answer classes from the training answers, sorted. A val or
test question whose answer never occurs in training cannot be scored: it is an error naming the file,
the entry and the answer. Every bad input is one line naming the file and the problem: malformed JSON,
no "questions" list, an entry without an image, question or answer, an empty question, a missing or
unreadable image, an unknown split.
"""
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minicap.data.captions import MAX_FOLDER_BYTES, _conform, _open_image
from minicap.data.files import check_file, describe_size, read_json
from minicap.errors import MinicapError

SPLITS = ("train", "val", "test")
NULL, UNK = "<NULL>", "<UNK>"
MAX_QUESTIONS = 1_000_000


def tokenize_question(text):
    """"What colour is it?" -> ["what", "colour", "is", "it", "?"]."""
    return text.lower().replace("?", " ?").split()


@dataclass
class VQAFileSplit:
    """One split of a user's VQA file. pictures: (P, H, W) or (P, H, W, 3) uint8, every image of the
    file once; image_index: (N,) each question's picture; questions, answers_text: N strings;
    tokens: (N, T) int64 (0-padded); answers: (N,) int64 class ids."""
    pictures: np.ndarray
    image_index: np.ndarray
    questions: list
    answers_text: list
    tokens: np.ndarray
    answers: np.ndarray
    image_names: list

    @property
    def images(self):
        """(N, H, W[, 3]) uint8: each question's image."""
        return self.pictures[self.image_index]

    def prefix(self, n):
        """The first n questions."""
        return VQAFileSplit(self.pictures, self.image_index[:n], self.questions[:n], self.answers_text[:n],
                            self.tokens[:n], self.answers[:n], self.image_names[:n])


@dataclass
class VQAFile:
    """A whole VQA file: every entry, the vocabulary (words, from train) and the answer classes.
    pictures (P, H, W[, 3]) uint8: every distinct image once; image_index (N,): each entry's picture;
    mode: how the images were read, "L" (grey) or "RGB"."""
    path: Path
    pictures: np.ndarray
    image_index: np.ndarray
    image_names: list
    questions: list
    answers_text: list
    splits: np.ndarray          # (N,) index into SPLITS
    vocab: list                 # id -> word; 0 <NULL>, 1 <UNK>
    answer_classes: list        # class id -> answer string
    mode: str

    @property
    def images(self):
        """(N, H, W[, 3]) uint8: each entry's image."""
        return self.pictures[self.image_index]

    def encode(self, questions, unknown="unk"):
        """Questions -> (N, T) word ids. unknown="unk": words outside the vocabulary become <UNK>;
        "error": a MinicapError naming the word (what `minicap ask` wants)."""
        return encode_with_vocab(questions, self.vocab, unknown)

    def split(self, name):
        if name not in SPLITS:
            raise MinicapError(f"unknown split {name!r}: choose one of {', '.join(SPLITS)}")
        idx = np.flatnonzero(self.splits == SPLITS.index(name))
        index = {a: i for i, a in enumerate(self.answer_classes)}
        for i in idx:
            if self.answers_text[i] not in index:
                raise MinicapError(f"{self.path}: entry {i} ({name}) has the answer {self.answers_text[i]!r}, which "
                                   f"no training question has; the model can only answer with training answers")
        questions = [self.questions[i] for i in idx]
        return VQAFileSplit(self.pictures, self.image_index[idx], questions, [self.answers_text[i] for i in idx],
                            self.encode(questions), np.array([index[self.answers_text[i]] for i in idx], np.int64),
                            [self.image_names[i] for i in idx])


def encode_with_vocab(questions, vocab, unknown="unk"):
    """Questions -> (N, T) int64 ids of `vocab` (a list, id -> word), padded with 0; T is the longest."""
    index = {w: i for i, w in enumerate(vocab)}
    tokenized = [tokenize_question(q) for q in questions]
    for q, words in zip(questions, tokenized):
        if not words:
            raise MinicapError("the question is empty")
        if unknown == "error":
            for w in words:
                if w not in index:
                    raise MinicapError(f"the word {w!r} in {q!r} is not in the model's question vocabulary "
                                       f"(it never occurs in a training question)")
    out = np.zeros((len(questions), max((len(w) for w in tokenized), default=1)), np.int64)
    for n, words in enumerate(tokenized):
        out[n, :len(words)] = [index.get(w, 1) for w in words]
    return out


def _fraction_split(image, question, held_out):
    """A fixed cut by hash: val with probability held_out, test with probability held_out, else train."""
    h = int.from_bytes(hashlib.sha256(f"{image}\n{question}".encode()).digest()[:8], "big") / 2 ** 64
    return 1 if h < held_out else 2 if h < 2 * held_out else 0


def load_vqa_json(path, size=(60, 60), mode="L", held_out=0.1):
    """Read a user's VQA JSON file and its images (see the module docstring). Returns a VQAFile."""
    if mode not in ("L", "RGB", "auto"):
        raise MinicapError(f"image mode must be \"L\" (grey), \"RGB\" or \"auto\", got {mode!r}")
    if not 0 <= held_out < 0.5:
        raise MinicapError(f"the held-out fraction must be from 0 to just below 0.5, got {held_out}")
    path = check_file(path, "VQA question file")
    doc = read_json(path, "VQA question file")
    if not isinstance(doc, dict) or not isinstance(doc.get("questions"), list):
        raise MinicapError(f"{path}: expected a JSON object with a \"questions\" list, e.g. "
                           '{"questions": [{"image": "a.png", "question": "what is it ?", "answer": "a cat"}]}')
    entries = doc["questions"]
    if not entries:
        raise MinicapError(f"{path}: the \"questions\" list is empty")
    if len(entries) > MAX_QUESTIONS:
        raise MinicapError(f"{path}: {len(entries):,} questions; minicap reads at most {MAX_QUESTIONS:,}")
    folder = path.parent
    names, questions, answers, splits = [], [], [], []
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise MinicapError(f"{path}: entry {i} is not an object with \"image\", \"question\" and \"answer\"")
        for key in ("image", "question", "answer"):
            if not isinstance(e.get(key), str):
                raise MinicapError(f"{path}: entry {i} has no \"{key}\" string")
        if not tokenize_question(e["question"]):
            raise MinicapError(f"{path}: entry {i} has an empty question")
        if not e["answer"].strip():
            raise MinicapError(f"{path}: entry {i} has an empty answer")
        split = e.get("split")
        if split is None:
            splits.append(_fraction_split(e["image"], e["question"], held_out))
        elif split in SPLITS:
            splits.append(SPLITS.index(split))
        else:
            raise MinicapError(f"{path}: entry {i} has the split {split!r}; use train, val or test (or leave it out)")
        names.append(e["image"])
        questions.append(e["question"])
        answers.append(e["answer"].strip().lower())
    splits = np.array(splits, np.int64)
    if not np.any(splits == 0):
        raise MinicapError(f"{path}: no training questions (every entry is in val or test)")

    pictures, mode = _read_pictures(path, folder, names, size, mode)
    first = {}   # image name -> its picture
    image_index = np.array([first.setdefault(name, len(first)) for name in names], np.int64)

    train_words = set()
    for q, s in zip(questions, splits):
        if s == 0:
            train_words.update(tokenize_question(q))
    vocab = [NULL, UNK] + sorted(train_words)
    answer_classes = sorted({a for a, s in zip(answers, splits) if s == 0})
    return VQAFile(path, pictures, image_index, names, questions, answers, splits, vocab, answer_classes, mode)


def _read_pictures(path, folder, names, size, mode):
    """Each distinct image of `names` once, in order of first use: (P, H, W[, 3]) uint8, and the mode
    ("L" or "RGB"; "auto" decides from the pixels: RGB if any image is not grey)."""
    distinct = list(dict.fromkeys(names))
    read_as = "RGB" if mode == "auto" else mode
    shape = tuple(size) + ((3,) if read_as == "RGB" else ())
    nbytes = len(distinct) * int(np.prod(shape))
    if nbytes > MAX_FOLDER_BYTES:
        raise MinicapError(f"{path}: {len(distinct):,} images of shape {shape} need {describe_size(nbytes)}, "
                           f"more than minicap holds ({describe_size(MAX_FOLDER_BYTES)}); choose a smaller image size")
    pictures = np.empty((len(distinct),) + shape, np.uint8)
    entry = {name: i for i, name in reversed(list(enumerate(names)))}   # the first entry naming each image
    for k, name in enumerate(distinct):
        image_path = check_file(folder / name, f"image of entry {entry[name]} of {path}")
        pictures[k] = _conform(_open_image(image_path), image_path, read_as, size, resize=True, convert=True)
    if mode == "auto":
        grey = bool(np.all(pictures[..., :1] == pictures))   # R = G = B everywhere
        mode = "L" if grey else "RGB"
        if grey:   # PIL's L of a grey RGB pixel is that grey: keep one channel
            pictures = np.ascontiguousarray(pictures[..., 0])
    return pictures, mode


# --- an example file ----------------------------------------------------------------------------------
# Three colours of (nearly) the same brightness: PIL's grey of each, (299 R + 587 G + 114 B) / 1000, is
# 100-104, so once converted to grey (what the frozen digit encoder reads) the colour is gone.
EXAMPLE_COLOURS = {"red": (230, 50, 50), "green": (30, 150, 30), "blue": (80, 80, 255)}
EXAMPLE_SHAPES = ("square", "circle")


def write_example_file(folder, n_images=300, size=32, seed=0):
    """Write a small VQA file whose answers need colour: folder/questions.json and folder/img/*.png.

    Each image (size x size RGB, black background) holds one shape, a square or a circle, of one of
    EXAMPLE_COLOURS, at a random place and size, its colour scaled by a random brightness 0.5-1 (so
    neither the brightness nor the grey level tells the colour). Two questions an image:
    "what colour is the shape ?" (red / green / blue) and "what shape is it ?" (square / circle);
    no "split" field, so the fixed hash splits them 80/10/10. Returns the path of the JSON file."""
    from pathlib import Path

    from PIL import Image
    folder = Path(folder)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = list(EXAMPLE_COLOURS)
    entries = []
    yy, xx = np.mgrid[:size, :size] + 0.5
    for i in range(n_images):
        colour, shape = names[rng.integers(3)], EXAMPLE_SHAPES[rng.integers(2)]
        r = rng.uniform(0.15, 0.3) * size                        # half the side, or the radius
        cy, cx = rng.uniform(r, size - r, size=2)
        inside = (np.maximum(abs(yy - cy), abs(xx - cx)) <= r if shape == "square"
                  else (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r)
        pixels = np.zeros((size, size, 3), np.uint8)
        pixels[inside] = np.rint(np.array(EXAMPLE_COLOURS[colour]) * rng.uniform(0.5, 1.0)).astype(np.uint8)
        name = f"img/{i:04d}.png"
        Image.fromarray(pixels).save(folder / name)
        entries.append({"image": name, "question": "what colour is the shape ?", "answer": colour})
        entries.append({"image": name, "question": "what shape is it ?", "answer": shape})
    path = folder / "questions.json"
    path.write_text(json.dumps({"questions": entries}, indent=0))
    return path
