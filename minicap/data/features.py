"""Annotation vectors of a dataset, computed once by the frozen encoder and kept on disk.

    feats = encode_dataset(data, encoder_params)             # (N, L, D) float32
    data, feats = load_split("train", 10000, seed=0, encoder_params=params)

The cache lives in a per-user folder, default_cache_dir() ($MINICAP_CACHE, else
$XDG_CACHE_HOME/minicap, else ~/.cache/minicap), not in the working directory. Each cache file
is named by a hash of the images and one of the encoder's weights, so another dataset or another
encoder never reads stale features:

    features-{name}-{images hash}-{weights hash}.npy    the (N, L, D) float32 array
    features-{name}-{images hash}-{weights hash}.json   its checksum: {"sha256", "shape", "dtype"}

Two rules keep the cache trustworthy:

- Every file is written under a unique temporary name in the same folder, then renamed over the
  final name (os.replace, atomic): a reader sees the old file or the new one, never half a file,
  and two processes filling the same cache at once cannot trip over each other's temporary file.
- Every read is checked against the checksum file and the shape the encoder gives: a damaged or
  wrong-shape file is recomputed and replaced, with one warning line, never used. (A single flipped
  byte in a cached feature file once moved CIDEr from 8.32 to 7.91 without a word.)
"""
import contextlib
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from minicap.data.files import read_npy
from minicap.errors import MinicapError
from minicap.models import encoder


def default_cache_dir():
    """The folder for cached features: $MINICAP_CACHE, else $XDG_CACHE_HOME/minicap, else
    ~/.cache/minicap (the XDG convention on Linux; harmless elsewhere).

    A per-user folder, so running `minicap evaluate` anywhere does not leave runs/cache behind, and
    every run on the same data and encoder reuses the same files.
    """
    if os.environ.get("MINICAP_CACHE"):
        return Path(os.environ["MINICAP_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "minicap"
    return Path.home() / ".cache" / "minicap"


def _encode_in_batches(images, params, progress, batch_size=256):
    """encoder.encode(images, params), with a progress bar when progress is true (on a terminal; a
    pipe or a log file gets one line, not hundreds of carriage-return fragments). batch_size: images
    per step of the bar (the encoder runs its own smaller batches, encoder.ENCODE_BATCH)."""
    if not progress:
        return encoder.encode(images, params)
    if not sys.stderr.isatty():
        print(f"encoding {len(images)} images with the frozen encoder", file=sys.stderr)
        return encoder.encode(images, params)
    from tqdm import tqdm
    starts = tqdm(range(0, len(images), batch_size), desc="encode", unit="batch", dynamic_ncols=True)
    return np.concatenate([encoder.encode(images[i:i + batch_size], params) for i in starts])


def images_hash(images):
    """A short hash of an image stack's shape, dtype and values."""
    images = np.ascontiguousarray(images)
    h = hashlib.sha256(f"{images.shape}{images.dtype}".encode())
    h.update(images.tobytes())
    return h.hexdigest()[:16]


def _expected_shape(images, params):
    """(N, L, D) of encoder.encode(images, params), known without encoding anything."""
    grid_h, grid_w = encoder.grid_shape(np.shape(images)[1:3])
    return (len(images), grid_h * grid_w, params["conv4_w"].shape[-1])


def _checksum(feats):
    """What the checksum file records about an array: its sha256, shape and dtype."""
    digest = hashlib.sha256(np.ascontiguousarray(feats).tobytes()).hexdigest()
    return {"sha256": digest, "shape": list(feats.shape), "dtype": str(feats.dtype)}


def _checksum_path(path):
    return path.with_suffix(".json")


def _read_cache(path, shape):
    """(features, None) if the cache file at path is whole and of `shape`, else (None, why not)."""
    try:
        recorded = json.loads(_checksum_path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, "it has no checksum file"
    except (OSError, ValueError, RecursionError) as err:   # (UnicodeDecodeError is a ValueError)
        return None, f"its checksum file is unreadable: {err}"
    try:
        feats = read_npy(path, "feature cache file")   # its header is checked before allocating
    except MinicapError as err:
        return None, str(err).removeprefix(f"{path}: ")
    if feats.shape != shape or feats.dtype != np.float32:
        return None, f"it holds {feats.dtype} {feats.shape}, the encoder gives float32 {shape}"
    if _checksum(feats) != recorded:
        return None, "its checksum does not match"
    return feats, None


def _replace_atomically(path, write):
    """Call write(f) on a new temporary file in path's folder, then rename it to path.

    The temporary name is unique to this writer (mkstemp), and os.replace is atomic: readers see
    the old file or the complete new one, and concurrent writers never share a temporary file.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_cache(path, feats):
    """Write the checksum file, then the features.

    In this order, whoever finds the features file also finds its checksum file (someone who finds
    only the checksum file sees no cache, and computes the features). If two writers interleave, a
    reader may find one's data beside the other's checksum; that only matters if their results
    differ in some bit, and then the reader recomputes, as for a damaged file: the cache heals.
    """
    checksum = json.dumps(_checksum(feats)).encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _replace_atomically(_checksum_path(path), lambda f: f.write(checksum))
        _replace_atomically(path, lambda f: np.save(f, feats))
    except OSError as err:   # the cache only saves time: a read-only or full disk is no reason to stop
        _warn(f"could not write the feature cache {path} ({err}); continuing without it "
              f"(set MINICAP_CACHE to a writable folder)")


def _warn(message):
    print(f"minicap: warning: {message}", file=sys.stderr)


def cached_encode(images, params=None, cache_dir=None, name="images", progress=True):
    """encoder.encode(images, params), computed once and kept on disk.

    cache_dir: the folder (default: default_cache_dir()). The file is
    cache_dir/features-{name}-{hash of the images}-{hash of the weights}.npy, so another dataset or
    another encoder never reads stale features. name only makes the file easy to recognise (e.g.
    "train-seed0-n10000"). A damaged or wrong-shape cache file is recomputed and replaced, with a
    warning. Returns (N, L, D) float32 (read into memory).
    """
    if params is None:
        params = encoder.load_encoder()
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"features-{name}-{images_hash(images)}-{encoder.weights_hash(params)}.npy"
    if path.exists():
        feats, problem = _read_cache(path, _expected_shape(images, params))
        if problem is None:
            return feats
        _warn(f"the feature cache file {path} is damaged ({problem}); rebuilding it")
    feats = _encode_in_batches(images, params, progress)
    _write_cache(path, feats)
    return feats


def encode_dataset(data, params=None, cache_dir=None, progress=True):
    """Cached annotation vectors (N, L, D) for a CaptionedMNIST dataset (make_captioned_mnist(...)).

    cache_dir: the cache folder (default: default_cache_dir())."""
    name = f"{data.split}-seed{data.seed}-banned{data.banned_seed}-n{len(data)}"
    return cached_encode(data.images, params, cache_dir, name=name, progress=progress)


def load_split(split, n, seed, encoder_params, cache_dir=None, banned_seed=0, progress=True):
    """Captioned MNIST split `split` (n images) and its annotation vectors (n, L, D) float32.

    cache_dir: the cache folder (default: default_cache_dir())."""
    from minicap.data import make_captioned_mnist
    data = make_captioned_mnist(split, n=n, seed=seed, banned_seed=banned_seed)
    return data, encode_dataset(data, encoder_params, cache_dir=cache_dir, progress=progress)
