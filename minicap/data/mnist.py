"""MNIST digits: the 5,000-digit subset that ships in data/, and a reader for MNIST IDX files.

The shipped subset (data/mnist_5k.npz, see data/README.md) holds 500 digits of each class.
`MNIST_5K_SPLITS` cuts it ONCE into disjoint train / val / test digit instances, stratified by
class and fixed by a constant seed, and every part of minicap uses the same cut: the encoder CNN
and DRAW train on the train digits only, and captioned MNIST builds its train, val and test
canvases from the train, val and test digits respectively. So no digit a model was trained on
ever appears in an evaluation image.

IDX is the file format of the original MNIST and Fashion-MNIST downloads
(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], ...):

    bytes 0-1  zero
    byte  2    element type (0x08 = unsigned byte)
    byte  3    number of dimensions d
    then d big-endian uint32 sizes, then the elements in C order.
"""
import gzip
from pathlib import Path

import numpy as np

from minicap import DATA_DIR
from minicap.errors import MinicapError

MNIST_5K_PATH = DATA_DIR / "mnist_5k.npz"

# Per class: 400 train, 50 val, 50 test digits (500 of each class in the file).
MNIST_5K_SPLITS = {"train": 400, "val": 50, "test": 50}
_SPLIT_SEED = 20160101  # fixed forever: changing it would silently change every model's data

_cache = {}


def _load_5k_arrays():
    if "arrays" not in _cache:
        if not MNIST_5K_PATH.is_file():
            raise MinicapError(f"{MNIST_5K_PATH}: the shipped MNIST subset is missing; it comes "
                               f"with the repository (install with `pip install -e .` from a checkout)")
        with np.load(MNIST_5K_PATH, allow_pickle=False) as f:
            images, labels = f["images"], f["labels"]
        if images.shape != (5000, 28, 28) or labels.shape != (5000,):
            raise MinicapError(f"{MNIST_5K_PATH}: expected images (5000, 28, 28) and labels (5000,), "
                               f"found {images.shape} and {labels.shape}; restore the file from git")
        images.setflags(write=False)
        labels.setflags(write=False)
        _cache["arrays"] = (images, labels)
    return _cache["arrays"]


def mnist_5k_split_indices():
    """The fixed, stratified split of the 5,000 shipped digits.

    Returns: dict {"train": (4000,), "val": (500,), "test": (500,)} of int64 indices into
    data/mnist_5k.npz, sorted, pairwise disjoint, covering all 5,000 digits.
    """
    if "splits" not in _cache:
        _, labels = _load_5k_arrays()
        rng = np.random.default_rng(_SPLIT_SEED)
        parts = {name: [] for name in MNIST_5K_SPLITS}
        for digit in range(10):
            members = rng.permutation(np.flatnonzero(labels == digit))
            start = 0
            for name, count in MNIST_5K_SPLITS.items():
                parts[name].append(members[start:start + count])
                start += count
        splits = {}
        for name in MNIST_5K_SPLITS:
            idx = np.sort(np.concatenate(parts[name])).astype(np.int64)
            idx.setflags(write=False)
            splits[name] = idx
        _cache["splits"] = splits
    return _cache["splits"]


def load_mnist_5k(split="all"):
    """The shipped MNIST digits.

    split: "train" (4,000 digits), "val" (500), "test" (500) or "all" (5,000).
    Returns images: (N, 28, 28) uint8 in [0, 255] (white ink on black), labels: (N,) uint8 in
    [0, 9]. The arrays are read-only views of a cache: copy before changing them.
    """
    images, labels = _load_5k_arrays()
    if split == "all":
        return images, labels
    splits = mnist_5k_split_indices()
    if split not in splits:
        raise MinicapError(f"unknown MNIST split {split!r}: choose one of train, val, test, all")
    idx = splits[split]
    return images[idx], labels[idx]


# --- IDX files ----------------------------------------------------------------------------------
def _read_maybe_gzip(path):
    path = Path(path)
    if not path.is_file():
        raise MinicapError(f"{path}: file not found")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # the gzip magic number, whatever the file is called
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise MinicapError(f"{path}: a damaged gzip file ({err}); download it again") from None
    return raw


def read_idx(path):
    """Read one IDX file (raw or gzip-compressed, detected from its first bytes).

    Returns: a uint8 array with the shape stored in the header.
    """
    raw = _read_maybe_gzip(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise MinicapError(f"{path}: not an IDX file (it must start with two zero bytes); "
                           f"expected e.g. train-images-idx3-ubyte or its .gz")
    if raw[2] != 0x08:
        raise MinicapError(f"{path}: IDX element type 0x{raw[2]:02x} is not supported "
                           f"(MNIST and Fashion-MNIST use 0x08, unsigned bytes)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise MinicapError(f"{path}: the IDX header is cut short; the file is truncated")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != expected:
        raise MinicapError(f"{path}: the header promises shape {shape} ({expected} bytes) but the "
                           f"file holds {len(raw) - header} bytes of data; it is truncated or damaged")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def load_mnist_idx(images_path, labels_path=None):
    """Load MNIST or Fashion-MNIST from IDX files (.gz or raw).

    images_path: e.g. train-images-idx3-ubyte.gz, holding (N, H, W) unsigned bytes.
    labels_path: optional, e.g. train-labels-idx1-ubyte.gz, holding (N,) unsigned bytes.
    Returns images: (N, H, W) uint8, labels: (N,) uint8 or None.
    """
    images = read_idx(images_path)
    if images.ndim != 3:
        raise MinicapError(f"{images_path}: expected an image file with 3 dimensions (N, H, W), "
                           f"found shape {images.shape}; did you swap the images and labels files?")
    if labels_path is None:
        return images, None
    labels = read_idx(labels_path)
    if labels.ndim != 1:
        raise MinicapError(f"{labels_path}: expected a label file with 1 dimension (N,), found "
                           f"shape {labels.shape}; did you swap the images and labels files?")
    if len(labels) != len(images):
        raise MinicapError(f"{labels_path}: {len(labels)} labels for {len(images)} images in "
                           f"{images_path}; give the labels file that belongs to these images")
    return images, labels
