"""Basic layers: affine, embedding, sigmoid, tanh, relu, dropout.

Every layer is a pair of functions:

    out, cache = layer_forward(inputs..., params...)
    dinputs..., dparams... = layer_backward(dout, cache)

Shapes use N for the batch, D for input features, M for output features, V for a vocabulary.
"""
import numpy as np


# --- affine -------------------------------------------------------------------------------------
def affine_forward(x, W, b):
    """out = x W + b.

    x: (N, D), W: (D, M), b: (M,). Returns out: (N, M).
    """
    out = x @ W + b
    return out, (x, W)


def affine_backward(dout, cache):
    """dout: (N, M). Returns dx: (N, D), dW: (D, M), db: (M,).

    From out = x W + b: dx = dout W^T, dW = x^T dout, db = sum over the batch of dout.
    """
    x, W = cache
    return dout @ W.T, x.T @ dout, dout.sum(axis=0)


# --- embedding ----------------------------------------------------------------------------------
def embedding_forward(idx, W, null_idx=None):
    """Look up word vectors: out[n, t] = W[idx[n, t]].

    idx: integer array of any shape S, values in [0, V). W: (V, E).
    null_idx: the padding index. Padding positions embed to the zero vector, so W[null_idx] is
        never used and gets no gradient (a padded step must not change any parameter).
    Returns out: S + (E,).
    """
    out = W[idx]
    if null_idx is not None:
        out = out * (idx != null_idx)[..., None]
    return out, (idx, W.shape, null_idx)


def embedding_backward(dout, cache):
    """dout: S + (E,). Returns dW: (V, E), the sum of dout over every position holding each word.

    A word can occur at many positions, so its rows must be summed: a plain dW[idx] += dout would keep
    only the last one. np.add.at(dW, idx, rows) does the sum but one row at a time (slow: it was ~2% of
    a captioner step). Here the positions are sorted by word, so each word's rows are adjacent, and
    np.add.reduceat sums each run of equal words in one call:

        words:  [3, 0, 3, 1]  -> sorted [0, 1, 3, 3] (stable: positions keep their order)
        runs start at [0, 1, 2];  dW[[0, 1, 3]] = [row of 0, row of 1, sum of the two rows of 3]
    """
    idx, W_shape, null_idx = cache
    words, rows = idx.reshape(-1), dout.reshape(-1, W_shape[1])
    dW = np.zeros(W_shape, dtype=dout.dtype)
    if words.size:
        order = np.argsort(words, kind="stable")
        sorted_words = words[order]
        starts = np.flatnonzero(np.r_[True, sorted_words[1:] != sorted_words[:-1]])  # first row of each run
        dW[sorted_words[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    if null_idx is not None:
        dW[null_idx] = 0
    return dW


# --- elementwise nonlinearities -----------------------------------------------------------------
def sigmoid(x):
    """Numerically stable logistic function 1 / (1 + exp(-x)) (never exponentiates a large positive)."""
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


def sigmoid_forward(x):
    """out = sigmoid(x), any shape."""
    out = sigmoid(x)
    return out, out


def sigmoid_backward(dout, cache):
    """d sigmoid(x)/dx = s (1 - s)."""
    s = cache
    return dout * s * (1 - s)


def tanh_forward(x):
    """out = tanh(x), any shape."""
    out = np.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    """d tanh(x)/dx = 1 - tanh(x)^2."""
    t = cache
    return dout * (1 - t * t)


def relu_forward(x):
    """out = max(0, x), any shape."""
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    """The gradient passes where x > 0 and is zero elsewhere."""
    x = cache
    return dout * (x > 0)


# --- dropout ------------------------------------------------------------------------------------
def dropout_forward(x, p, rng, train=True):
    """Inverted dropout: zero each unit with probability p and scale survivors by 1/(1-p).

    Scaling at training time keeps E[out] = x, so at test time (train=False) the layer is the identity.
    x: any shape. p: drop probability in [0, 1). rng: np.random.Generator.
    """
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not train or p == 0:
        return x, None
    mask = (rng.random(x.shape) >= p).astype(x.dtype) / (1 - p)
    return x * mask, mask


def dropout_backward(dout, cache):
    """The same mask scales the gradient."""
    mask = cache
    return dout if mask is None else dout * mask
