"""Real caption datasets at any scale: a Karpathy-split JSON and a memory-mapped features .npy.

    index = read_karpathy_index("dataset_flickr8k.json")          # every image: split, file name, captions
    feats = FeatureFile("features.npy", len(index), index.path)   # checked, mapped, never read whole
    train = index.split_rows("train")                              # rows of the JSON (and of the .npy)
    batch = feats.gather(train[[5, 17, 3]])                       # (3, L, D) float32, read from the map

Why memory-mapped. COCO's 123,287 images x 196 locations x 512 channels of float32 are 49 GB: more
than a laptop holds, and more than minicap's loaders may allocate (docs/reliability.md). np.load(...,
mmap_mode="r") maps the file without reading it; indexing the map reads only the rows asked for. One
trap remains: every page of the file a process has touched counts in its resident memory (RSS) until
the kernel takes it back, and with plenty of free memory it never does, so a run that has gathered
6,400 different images has 2.5 GB of features "resident". gather() therefore tells the kernel, after
each read, that the process is done with the mapped pages (madvise MADV_DONTNEED): they stay in the
page cache (a second read of the same row is still fast) but leave the process's memory.

How captions become training pairs. Each image has any number of reference captions (Flickr8k 5,
COCO 5 to 7). `TrainCaptions` encodes them all once, (M, T) int32 for M captions, with the image each
belongs to; a training step draws a minibatch of IMAGES, then one of each image's captions at random
(minicap.models.captioner.make_train_step's `pick`). Why images and not all (image, caption) pairs:
every image counts the same however many captions it has, a minibatch never holds one image twice
(B different feature rows, the expensive part to read), and over many steps every caption is seen.

Every problem with the files is one MinicapError line naming the file (the readers of
minicap/data/files.py, and the checks here: the features' N, dtype, rank and grid).
"""
import math
import mmap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minicap.data.batching import encode_captions
from minicap.data.captions import _check_karpathy_image, _karpathy_references
from minicap.data.files import describe_size, read_json, read_npy
from minicap.data.vocab import UNK
from minicap.errors import MinicapError

KARPATHY_SPLITS = ("train", "val", "test")


@dataclass
class KarpathyIndex:
    """Every image of a Karpathy-split JSON, in file order (row i = row i of the features file).

    path: the JSON file. splits: (N,) array of "train" / "val" / "test" ("restval" counted as train).
    names: N file names. references: N lists of caption strings.
    """
    path: Path
    splits: np.ndarray
    names: list
    references: list

    def __len__(self):
        return len(self.names)

    def split_rows(self, split, n=None):
        """The rows (int64) of the images of `split`, in file order; the first n with n.
        A split with no images is an error naming the JSON file."""
        if split not in KARPATHY_SPLITS:
            raise MinicapError(f"unknown split {split!r}: choose one of {', '.join(KARPATHY_SPLITS)}")
        rows = np.flatnonzero(self.splits == split)
        if not len(rows):
            counts = ", ".join(f"{s} {int(np.sum(self.splits == s))}" for s in KARPATHY_SPLITS)
            raise MinicapError(f"{self.path}: no images in split {split!r} (images per split: {counts}); "
                               f"the Karpathy format marks each image's \"split\"")
        return rows[:n] if n is not None else rows


def _drop_tokens_beside_raw(obj):
    """A sentence's "tokens" list is not needed when its "raw" string is there (minicap tokenizes "raw"
    itself, as the metrics do): dropped while parsing, it halves the memory a COCO JSON takes
    (a 200 MB COCO-size file: 1.1 GB peak resident memory with the lists, 0.6 GB without)."""
    if isinstance(obj.get("raw"), str):
        obj.pop("tokens", None)
    return obj


def read_karpathy_index(json_path):
    """Read and check a Karpathy-split JSON (dataset_flickr8k.json, ..._flickr30k, ..._coco).

    Every image needs "split", "filename" and a non-empty "sentences" list, each sentence a "raw"
    string or a "tokens" list (minicap.data.captions checks them). "restval" (COCO's extra
    validation images that Karpathy's split trains on) joins "train". Returns a KarpathyIndex.
    """
    json_path = Path(json_path)
    data = read_json(json_path, "caption file", object_hook=_drop_tokens_beside_raw)
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list) or not images:
        raise MinicapError(f"{json_path}: expected a JSON object with a non-empty \"images\" list "
                           f"(the Karpathy-split format, e.g. dataset_flickr8k.json)")
    splits, names, references = [], [], []
    for i, image in enumerate(images):
        _check_karpathy_image(image, i, json_path)
        references.append(_karpathy_references(image, i, json_path))
        names.append(image["filename"])
        splits.append("train" if image["split"] == "restval" else image["split"])
    return KarpathyIndex(json_path, np.array(splits), names, references)


class FeatureFile:
    """The annotation vectors of every image, (N, L, D) in a .npy file, memory-mapped.

    Checked when opened (nothing is read but the header): a float dtype, rank 3, N equal to the
    number of images in the JSON, L a square grid (the captioner appends each location's (row, col)).
    """

    def __init__(self, path, n_images, json_path):
        self.path = Path(path)
        self.array = read_npy(self.path, "feature file", mmap=True)   # header checked against the size
        a, name = self.array, self.path
        if a.ndim != 3:
            raise MinicapError(f"{name}: expected features of shape (N, L, D) (images, locations, channels), "
                               f"found rank {a.ndim}, shape {a.shape}")
        if a.dtype.kind != "f":
            raise MinicapError(f"{name}: expected floating-point features (float32), found dtype {a.dtype}; "
                               f"save them with features.astype(np.float32)")
        if a.shape[0] != n_images:
            raise MinicapError(f"{name}: holds features for {a.shape[0]:,} images but {json_path} lists "
                               f"{n_images:,}; row i must belong to the i-th image of the JSON file")
        grid = math.isqrt(a.shape[1])
        if a.shape[1] == 0 or grid * grid != a.shape[1] or a.shape[2] == 0:
            raise MinicapError(f"{name}: {a.shape[1]} locations of {a.shape[2]} channels; the captioner needs "
                               f"a square grid of locations (e.g. 14 x 14 = 196 of VGG's conv5_4) and D >= 1")
        self.shape, self.grid = a.shape, grid
        self._mmap = getattr(a, "_mmap", None)   # the mmap.mmap under np.load's memmap (None: an empty file)

    def __len__(self):
        return self.shape[0]

    @property
    def row_bytes(self):
        return self.shape[1] * self.shape[2] * self.array.dtype.itemsize

    def release(self):
        """Drop the mapped pages from this process's resident memory (they stay in the page cache)."""
        if self._mmap is not None and hasattr(mmap, "MADV_DONTNEED"):
            self._mmap.madvise(mmap.MADV_DONTNEED)

    def gather(self, rows):
        """Rows `rows` (any order, repeats allowed) as a new (len(rows), L, D) float32 array.

        The rows are read in increasing order (the disk reads forward) and put back in the order
        asked for. A row holding NaN or inf is an error naming the file and the row."""
        rows = np.asarray(rows, dtype=np.int64)
        unique, inverse = np.unique(rows, return_inverse=True)
        block = np.asarray(self.array[unique], dtype=np.float32)
        self.release()
        finite = np.isfinite(block).reshape(len(unique), -1).all(axis=1)
        if not finite.all():
            bad = int(unique[np.argmin(finite)])
            raise MinicapError(f"{self.path}: row {bad} holds NaN or infinite values (or values too large for "
                               f"float32); recompute the features")
        return block[inverse.reshape(-1)]

    def chunks(self, rows, size=256):
        """(start, features) for consecutive chunks of `rows`: evaluation reads a split this way, so a
        5,000-image test split costs one chunk of memory, not 5,000 rows."""
        for start in range(0, len(rows), size):
            yield start, self.gather(rows[start:start + size])

    def rms(self, rows, sample=1000, rng=None):
        """The root-mean-square of the features over a sample of at most `sample` of `rows`
        (evenly spaced, or drawn with rng): enough to set the captioner's feature_scale, without
        reading a 49 GB file."""
        rows = np.asarray(rows)
        if len(rows) > sample:
            pick = (rng.choice(len(rows), sample, replace=False) if rng is not None
                    else np.linspace(0, len(rows) - 1, sample).round().astype(np.int64))
            rows = rows[np.sort(pick)]
        total = 0.0
        for _, block in self.chunks(rows, 100):
            total += float(np.sum(np.square(block, dtype=np.float64)))
        return math.sqrt(total / (len(rows) * self.shape[1] * self.shape[2]))

    def describe(self):
        n, L, D = self.shape
        return f"{n:,} x {L} x {D} {self.array.dtype} ({describe_size(n * self.row_bytes)}, memory-mapped)"


@dataclass
class TrainCaptions:
    """Every caption of the training images, encoded once.

    captions: (M, T) int32 ids (<START> words <END> <NULL>...); image: (M,) the position of each
    caption's image in the training rows; first: (n_images,) the index of each image's first caption;
    count: (n_images,) its number of captions. n_truncated: captions cut to max_length;
    unk_rate: fraction of the words that became <UNK>.
    """
    captions: np.ndarray
    image: np.ndarray
    first: np.ndarray
    count: np.ndarray
    n_truncated: int
    unk_rate: float

    def pick(self, images, rng):
        """One caption row per image of the minibatch, uniformly among its references.

        When every image has one caption the choice is fixed and rng is not touched, so a dataset of
        one caption per image trains exactly like the same data given as arrays."""
        images = np.asarray(images)
        if self.count.max() == 1:
            return self.first[images]
        return self.first[images] + (rng.random(len(images)) * self.count[images]).astype(np.int64)


def training_tokens(index, rows):
    """The token lists of every reference caption of the images `rows`, image by image (tokenized once:
    the vocabulary and the encoding both take them; COCO has 600,000 captions)."""
    from minicap.text import tokenize
    return [tokenize(c) for r in rows for c in index.references[r]]


def encode_training_captions(index, rows, vocab, max_length, tokens=None):
    """TrainCaptions for the training images `rows` of `index`, with vocabulary vocab.
    tokens: training_tokens(index, rows), if already computed.

    A caption whose every word is unknown to the vocabulary (each rarer than --min-count) would teach
    the model to say <UNK>: it is an error naming the JSON file, the image and the caption."""
    captions = [c for r in rows for c in index.references[r]]
    count = np.array([len(index.references[r]) for r in rows], dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    enc = encode_captions(tokens if tokens is not None else captions, vocab, max_length)
    position = np.arange(enc.captions.shape[1])
    is_word = (position >= 1) & (position <= enc.lengths[:, None])       # not <START>, <END>, <NULL>
    only_unknown = np.all(~is_word | (enc.captions == UNK), axis=1)
    if only_unknown.any():
        k = int(np.argmax(only_unknown))
        i = int(np.searchsorted(first, k, side="right") - 1)
        r = int(rows[i])
        raise MinicapError(f"{index.path}: images[{r}] ({index.names[r]}) sentence {k - first[i]} "
                           f"{captions[k][:60]!r} has only words rarer than the minimum word count; lower "
                           f"--min-count or remove the caption")
    image = np.repeat(np.arange(len(rows)), count)
    return TrainCaptions(enc.captions, image, first, count, enc.n_truncated, enc.unk_rate)

