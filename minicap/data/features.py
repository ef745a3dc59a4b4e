"""Annotation vectors of a dataset, computed once by the frozen encoder and kept on disk.

    feats = encode_dataset(data, encoder_params, cache_dir)    # (N, L, D) float32
    data, feats = load_split("train", 10000, seed=0, encoder_params=params, cache_dir=cache)

The cache file's name holds a hash of the images and one of the encoder's weights, so another
dataset or another encoder never reads stale features.
"""
import hashlib
from pathlib import Path

import numpy as np

from minicap.models.encoder import encode, load_encoder, weights_hash


def _encode_in_batches(images, params, progress, batch_size=256):
    """encode(images, params), with a progress bar when progress is true."""
    if not progress:
        return encode(images, params, batch_size)
    from tqdm import tqdm
    starts = tqdm(range(0, len(images), batch_size), desc="encode", unit="batch", dynamic_ncols=True)
    return np.concatenate([encode(images[i:i + batch_size], params, batch_size) for i in starts])


def images_hash(images):
    """A short hash of an image stack's shape, dtype and values."""
    images = np.ascontiguousarray(images)
    h = hashlib.sha256(f"{images.shape}{images.dtype}".encode())
    h.update(images.tobytes())
    return h.hexdigest()[:16]


def cached_encode(images, params=None, cache_dir="runs/cache", name="images", progress=True):
    """encode(images, params), computed once and kept on disk.

    The file is cache_dir/features-{name}-{hash of the images}-{hash of the weights}.npy, so another
    dataset or another encoder never reads stale features. name only makes the file easy to recognise
    (e.g. "train-seed0-n10000"). Returns (N, L, D) float32 (read into memory).
    """
    if params is None:
        params = load_encoder()
    path = Path(cache_dir) / f"features-{name}-{images_hash(images)}-{weights_hash(params)}.npy"
    if path.exists():
        try:
            feats = np.load(path, allow_pickle=False)
            if feats.shape[0] == len(images):
                return feats
        except (OSError, ValueError):
            pass  # a damaged cache file is recomputed and replaced
    feats = _encode_in_batches(images, params, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, feats)
    tmp.replace(path)
    return feats


def encode_dataset(data, params=None, cache_dir="runs/cache", progress=True):
    """Cached annotation vectors (N, L, D) for a CaptionedMNIST dataset (make_captioned_mnist(...))."""
    name = f"{data.split}-seed{data.seed}-banned{data.banned_seed}-n{len(data)}"
    return cached_encode(data.images, params, cache_dir, name=name, progress=progress)



def load_split(split, n, seed, encoder_params, cache_dir, banned_seed=0, progress=True):
    """Captioned MNIST split `split` (n images) and its annotation vectors (n, L, D) float32."""
    from minicap.data import make_captioned_mnist
    data = make_captioned_mnist(split, n=n, seed=seed, banned_seed=banned_seed)
    return data, encode_dataset(data, encoder_params, cache_dir=cache_dir, progress=progress)
