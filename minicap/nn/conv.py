"""Convolution and pooling layers for images stored channels-last: x has shape (N, H, W, C).

Channels-last is how an image array already looks (height, width, colour), and it makes a
convolution read like the affine layer: every output pixel is `patch . W + b`, where `patch` is the
flattened KH x KW x C window of the input under it. Stacking all the patches as the rows of one
matrix ("im2col") turns the whole layer into a single matrix product:

    cols = im2col(x)                (N*Ho*Wo, KH*KW*C)   one row per output pixel
    out  = cols @ W.reshape(-1, F) + b                  then reshaped to (N, Ho, Wo, F)

and the backward pass is the affine layer's backward pass followed by col2im, which adds every
patch gradient back onto the input pixels it was copied from (pixels shared by overlapping patches
receive the sum of their gradients).

Shapes: N images, H x W pixels, C input channels, F filters of size KH x KW, stride s, zero padding p:

    Ho = (H + 2p - KH) // s + 1,    Wo = (W + 2p - KW) // s + 1

Rows or columns that no window reaches (when (H + 2p - KH) is not a multiple of s) are ignored, and
their gradient is zero.
"""
import numpy as np


def conv_output_size(size, kernel, stride=1, pad=0):
    """How many positions a window of `kernel` pixels takes along an axis of `size` pixels."""
    return (size + 2 * pad - kernel) // stride + 1


# --- im2col / col2im --------------------------------------------------------------------------------
def im2col(x, KH, KW, stride=1, pad=0):
    """Every KH x KW window of the zero-padded x, one per row.

    x: (N, H, W, C). Returns cols: (N*Ho*Wo, KH*KW*C), where row (n, i, j) holds the window whose
    top-left corner is at padded pixel (i*s, j*s), flattened in (kh, kw, c) order, which is the
    order of W.reshape(KH*KW*C, F) for W of shape (KH, KW, C, F).

    The loop runs over the KH*KW offsets inside a window (9 for a 3x3 kernel), not over pixels:
    offset (p, q) of every window at once is one strided slice of the padded image.
    """
    N, H, W, C = x.shape
    Ho, Wo = conv_output_size(H, KH, stride, pad), conv_output_size(W, KW, stride, pad)
    xp = np.zeros((N, H + 2 * pad, W + 2 * pad, C), dtype=x.dtype)
    xp[:, pad:pad + H, pad:pad + W] = x
    cols = np.empty((N, Ho, Wo, KH, KW, C), dtype=x.dtype)
    for p in range(KH):
        for q in range(KW):
            cols[:, :, :, p, q, :] = xp[:, p:p + stride * Ho:stride, q:q + stride * Wo:stride, :]
    return cols.reshape(N * Ho * Wo, KH * KW * C)


def col2im(dcols, x_shape, KH, KW, stride=1, pad=0):
    """The adjoint of im2col: add each window's gradient back onto the pixels it came from.

    dcols: (N*Ho*Wo, KH*KW*C). Returns dx: x_shape = (N, H, W, C). Gradients landing on the
    zero padding are dropped (the padding is a constant, not an input).
    """
    N, H, W, C = x_shape
    Ho, Wo = conv_output_size(H, KH, stride, pad), conv_output_size(W, KW, stride, pad)
    dcols = dcols.reshape(N, Ho, Wo, KH, KW, C)
    dxp = np.zeros((N, H + 2 * pad, W + 2 * pad, C), dtype=dcols.dtype)
    for p in range(KH):
        for q in range(KW):
            dxp[:, p:p + stride * Ho:stride, q:q + stride * Wo:stride, :] += dcols[:, :, :, p, q, :]
    return dxp[:, pad:pad + H, pad:pad + W]


# --- convolution ------------------------------------------------------------------------------------
def conv2d_forward(x, w, b, stride=1, pad=0):
    """2-D convolution (cross-correlation, as in every deep-learning library) with stride and zero padding.

    x: (N, H, W, C) images; w: (KH, KW, C, F) filters; b: (F,) biases.
    Returns out: (N, Ho, Wo, F) with

        out[n, i, j, f] = b[f] + sum_{p, q, c} xpad[n, i*s + p, j*s + q, c] * w[p, q, c, f]

    where xpad is x with `pad` zeros around each image.
    """
    KH, KW, C, F = w.shape
    if x.shape[3] != C:
        raise ValueError(f"x has {x.shape[3]} channels but the filters expect {C}")
    N, H, W, _ = x.shape
    Ho, Wo = conv_output_size(H, KH, stride, pad), conv_output_size(W, KW, stride, pad)
    if Ho < 1 or Wo < 1:
        raise ValueError(f"a {KH}x{KW} kernel with padding {pad} does not fit a {H}x{W} image")
    cols = im2col(x, KH, KW, stride, pad)
    out = cols @ w.reshape(KH * KW * C, F) + b
    return out.reshape(N, Ho, Wo, F), (cols, w, x.shape, stride, pad)


def conv2d_backward(dout, cache):
    """dout: (N, Ho, Wo, F). Returns dx: (N, H, W, C), dw: (KH, KW, C, F), db: (F,).

    With the layer written as out = cols Wm + b (Wm = w reshaped to (KH*KW*C, F)), this is the
    affine backward pass, then col2im:

        dWm = cols^T dout,   db = sum of dout over n, i, j,   dcols = dout Wm^T,   dx = col2im(dcols)
    """
    cols, w, x_shape, stride, pad = cache
    KH, KW, C, F = w.shape
    dout = dout.reshape(-1, F)
    dw = (cols.T @ dout).reshape(w.shape)
    db = dout.sum(axis=0)
    dcols = dout @ w.reshape(KH * KW * C, F).T
    dx = col2im(dcols, x_shape, KH, KW, stride, pad)
    return dx, dw, db


# --- max pooling ------------------------------------------------------------------------------------
def max_pool_forward(x, size=2, stride=2):
    """Max over each size x size window, channel by channel (no padding).

    x: (N, H, W, C). Returns out: (N, Ho, Wo, C), Ho = (H - size) // stride + 1, with

        out[n, i, j, c] = max_{p, q < size} x[n, i*s + p, j*s + q, c]

    The cache keeps, for every output, which window offset k = p*size + q held the maximum (the
    first one, on a tie), so the gradient goes to exactly one input per window.
    """
    N, H, W, C = x.shape
    Ho, Wo = conv_output_size(H, size, stride), conv_output_size(W, size, stride)
    if Ho < 1 or Wo < 1:
        raise ValueError(f"a {size}x{size} pooling window does not fit a {H}x{W} image")
    windows = np.empty((size * size, N, Ho, Wo, C), dtype=x.dtype)
    for p in range(size):
        for q in range(size):
            windows[p * size + q] = x[:, p:p + stride * Ho:stride, q:q + stride * Wo:stride, :]
    argmax = windows.argmax(axis=0)                 # (N, Ho, Wo, C) offsets k in [0, size^2)
    out = np.take_along_axis(windows, argmax[None], axis=0)[0]
    return out, (argmax, x.shape, size, stride)


def max_pool_backward(dout, cache):
    """dout: (N, Ho, Wo, C). Returns dx: (N, H, W, C).

    The max is locally the identity on the winning input and constant in the others, so each
    output's gradient goes to its window's winner; windows that overlap (stride < size) add up.
    """
    argmax, x_shape, size, stride = cache
    _, Ho, Wo, _ = dout.shape
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for p in range(size):
        for q in range(size):
            dx[:, p:p + stride * Ho:stride, q:q + stride * Wo:stride, :] += dout * (argmax == p * size + q)
    return dx


# --- global average pooling -------------------------------------------------------------------------
def global_avg_pool_forward(x):
    """Average over all positions: x (N, H, W, C) -> out (N, C), out[n, c] = mean_{i, j} x[n, i, j, c].

    It makes a convolutional classifier take any image size: the head sees one C-vector per image.
    """
    return x.mean(axis=(1, 2)), x.shape


def global_avg_pool_backward(dout, cache):
    """dout: (N, C). Returns dx: (N, H, W, C) = dout / (H W) at every position."""
    N, H, W, C = cache
    return np.broadcast_to(dout[:, None, None, :] / (H * W), (N, H, W, C)).copy()

