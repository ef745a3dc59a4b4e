"""Captions as padded id arrays, and minibatches drawn with an explicit rng.

A caption of n words becomes the row

    <START> w_1 ... w_n <END> <NULL> ... <NULL>          (length T = longest caption + 2)

with mask True on <START>, the words and <END>. A decoder trained by teacher forcing reads
captions[:, :-1] and predicts captions[:, 1:], with loss mask mask[:, 1:]: every word and the
final <END> are predicted, padding is not.
"""
from collections import Counter
from dataclasses import dataclass

import numpy as np

from minicap.data.vocab import END, NULL, START
from minicap.errors import MinicapError


@dataclass
class EncodedCaptions:
    """captions: (N, T) int32 ids; mask: (N, T) bool; lengths: (N,) int64 words per caption
    (without <START>/<END>, after truncation); unknown: Counter of the words mapped to <UNK>;
    n_words: total words seen; n_truncated: captions cut to max_length."""
    captions: np.ndarray
    mask: np.ndarray
    lengths: np.ndarray
    unknown: Counter
    n_words: int
    n_truncated: int

    @property
    def unk_rate(self):
        """Fraction of all words that became <UNK>."""
        return sum(self.unknown.values()) / max(self.n_words, 1)


def encode_captions(captions, vocab, max_length=None):
    """Encode and pad a list of captions (strings or token lists).

    max_length: keep at most this many words per caption (the rest is cut and counted in
        n_truncated); None keeps every word.
    Returns: EncodedCaptions.
    """
    unknown = Counter()
    rows = []
    n_words = n_truncated = 0
    for k, caption in enumerate(captions):
        ids = vocab.encode(caption, unknown)
        if not ids:
            raise MinicapError(f"caption {k} ({caption!r}) has no words; remove it from the data")
        n_words += len(ids)
        if max_length is not None and len(ids) > max_length:
            ids = ids[:max_length]
            n_truncated += 1
        rows.append(ids)
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    T = (int(lengths.max()) if len(rows) else 0) + 2
    out = np.full((len(rows), T), NULL, dtype=np.int32)
    out[:, 0] = START
    for k, ids in enumerate(rows):
        out[k, 1:len(ids) + 1] = ids
        out[k, len(ids) + 1] = END
    mask = np.arange(T)[None, :] < (lengths[:, None] + 2)
    return EncodedCaptions(out, mask, lengths, unknown, n_words, n_truncated)


def iterate_minibatches(n, batch_size, rng=None, shuffle=True, drop_last=False):
    """Yield index arrays that cover range(n) once (one epoch).

    rng: np.random.Generator used to shuffle (required when shuffle is True).
    drop_last: skip a final batch smaller than batch_size.
    """
    if batch_size < 1:
        raise MinicapError(f"batch size must be at least 1, got {batch_size}")
    if shuffle:
        if rng is None:
            raise ValueError("shuffling needs an explicit np.random.Generator (rng=...)")
        order = rng.permutation(n)
    else:
        order = np.arange(n)
    for start in range(0, n, batch_size):
        batch = order[start:start + batch_size]
        if drop_last and len(batch) < batch_size:
            return
        yield batch


def sample_minibatch(n, batch_size, rng):
    """batch_size distinct indices from range(n) (all of them, shuffled, if n <= batch_size)."""
    return rng.choice(n, size=min(batch_size, n), replace=False)
