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
import math
import struct
import zlib
import zipfile

import numpy as np

from minicap import DATA_DIR
from minicap.data.files import check_file
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
        try:
            with np.load(MNIST_5K_PATH, allow_pickle=False) as f:
                images, labels = f["images"], f["labels"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            raise MinicapError(f"{MNIST_5K_PATH}: the shipped MNIST subset is damaged ({err}); "
                               f"restore the file from git") from None
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
# 2 GiB of pixels. MNIST's training images take 47 MB; a header claiming far more is damaged (or
# a gzip bomb: a few KB that expand to gigabytes), and is refused before anything is allocated.
MAX_IDX_BYTES = 2 << 30
GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 16 << 20   # gzip data is read 16 MB at a time, so memory grows only with real data


def _read_idx_header(f, path):
    """The shape stored in an IDX header, read from an open (maybe gzip) file."""
    start = f.read(4)
    if len(start) < 4 or start[0] != 0 or start[1] != 0:
        raise MinicapError(f"{path}: not an IDX file (it must start with two zero bytes); "
                           f"expected e.g. train-images-idx3-ubyte or its .gz")
    if start[2] != 0x08:
        raise MinicapError(f"{path}: IDX element type 0x{start[2]:02x} is not supported "
                           f"(MNIST and Fashion-MNIST use 0x08, unsigned bytes)")
    ndim = start[3]
    sizes = f.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise MinicapError(f"{path}: the IDX header is cut short; the file is truncated")
    return struct.unpack(f">{ndim}I", sizes)   # d big-endian uint32 sizes


def _read_idx_data(f, shape, path, available=None):
    """The prod(shape) data bytes after the header; `available`: the data bytes a raw file holds."""
    expected = math.prod(shape)   # Python integers: no overflow, whatever the header claims
    if expected > MAX_IDX_BYTES:
        raise MinicapError(f"{path}: the header claims shape {shape} ({expected} bytes), more than "
                           f"minicap reads ({MAX_IDX_BYTES >> 30} GiB); the file is damaged or not an "
                           f"MNIST-style IDX file")
    if available is not None and available != expected:   # a raw file: known before reading
        raise MinicapError(f"{path}: the header promises shape {shape} ({expected} bytes) but the "
                           f"file holds {available} bytes of data; it is truncated or damaged")
    data = bytearray()
    while len(data) < expected:
        chunk = f.read(min(_CHUNK, expected - len(data)))
        if not chunk:
            break
        data += chunk
    if len(data) < expected or f.read(1):   # reading to the end also checks a gzip file's CRC
        held = f"only {len(data)} bytes" if len(data) < expected else "more bytes than that"
        raise MinicapError(f"{path}: the header promises shape {shape} ({expected} bytes) but the "
                           f"file holds {held} of data; it is truncated or damaged")
    return data


def read_idx(path):
    """Read one IDX file (raw or gzip-compressed, detected from its first bytes).

    The header's shape is checked against MAX_IDX_BYTES and, for a raw file, against the file
    size, before the data is read. Returns: a uint8 array with the shape stored in the header.
    """
    path = check_file(path, "IDX file")
    compressed = False
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == GZIP_MAGIC   # the gzip magic number, whatever the name
            raw.seek(0)
            f = gzip.GzipFile(fileobj=raw) if compressed else raw
            shape = _read_idx_header(f, path)
            available = None if compressed else path.stat().st_size - f.tell()
            data = _read_idx_data(f, shape, path, available)
    except (OSError, EOFError, zlib.error) as err:
        if compressed:   # gzip's complaints about a damaged stream
            raise MinicapError(f"{path}: a damaged gzip file ({err}); download it again") from None
        raise MinicapError(f"{path}: cannot read the file ({err})") from None
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)   # (a view of data, writable)


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
    if images.size == 0:
        raise MinicapError(f"{images_path}: the file holds no images (shape {images.shape})")
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
