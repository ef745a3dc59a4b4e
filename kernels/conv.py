"""Numba twins of the convolution and max-pooling layers in minicap/nn/conv.py (channels-last).

Same signatures, same caches, same results as the NumPy reference, which is where the equations
are explained; a cache made by either backend can go to either backward.

What is compiled, and what is left to BLAS. A convolution is im2col, one matrix product, and (in
the backward pass) col2im. The products are the bulk of the FLOPs and stay with NumPy's BLAS. The
reference builds the im2col matrix with KH*KW strided copies from a zero-padded copy of the input,
and col2im with KH*KW strided additions into a padded buffer; here each is one pass over the
output positions that reads (or writes) the input directly and treats out-of-image pixels as zero,
with no padded copy. im2col writes its matrix in order, one contiguous copy of KW*C numbers per
window row (it used to loop over offsets outside and windows inside, writing with a stride of
KH*KW*C: measured on 2,000 canvases, one thread, load ~7, cProfile: 7.3 s -> 3.4 s). Max pooling is one pass that keeps the running maximum and its window offset,
instead of stacking every window offset into a temporary and calling argmax and take_along_axis;
its backward pass is one scatter instead of one masked addition per offset.

Images are independent, so the loops over the batch are prange loops in which each image n writes
only its own part of the output (no shared accumulator, no race); PARALLEL says why they run serially.
"""
import numpy as np
from numba import njit, prange

# Off, as in the other kernels (see kernels/__init__.py): on the shared 2-core machine each call of a
# parallel kernel here waited ~20 ms for its second thread (measured on a 64x30x30x16 im2col: 20 ms
# with two threads, 7.5 ms with one), and BLAS's own threads want the same cores. Set True to try it
# on idle cores.
PARALLEL = False
# nogil: the kernels release Python's lock, so encoder.encode can run batches on several threads.
JIT = dict(cache=True, error_model="numpy", parallel=PARALLEL, nogil=True)


def _out_size(size, kernel, stride, pad):
    return (size + 2 * pad - kernel) // stride + 1


# --- im2col / col2im --------------------------------------------------------------------------------
@njit(**JIT)
def _im2col(x, cols, C, stride, pad):
    """cols[n, i, j, p, (q, c)] = x[n, i*s + p - pad, (j*s + q - pad, c)], or 0 outside the image.

    x is (N, H, W*C) and cols (N, Ho, Wo, KH, KW*C): one window row (p) of window (i, j) is KW
    neighbouring pixels with all their channels, KW*C numbers that lie next to each other in x's row
    and in cols. The loops run in cols' order, so each window row is one contiguous copy (reads and
    writes in order, which is what makes this pass fast), except at the image border, where the pixels
    outside are zeros."""
    N, H, WC = x.shape
    _, Ho, Wo, KH, KWC = cols.shape
    W, KW = WC // C, KWC // C
    for n in prange(N):
        for i in range(Ho):
            for j in range(Wo):
                left = j * stride - pad           # the window's first column (may be < 0)
                inside = left >= 0 and left + KW <= W
                for p in range(KH):
                    r = i * stride + p - pad
                    out = cols[n, i, j, p]
                    if r < 0 or r >= H:
                        out[:] = 0
                    elif inside:                  # the whole window row is in the image: one copy
                        src = x[n, r]
                        start = left * C
                        for k in range(KWC):
                            out[k] = src[start + k]
                    else:
                        src = x[n, r]
                        for q in range(KW):
                            col = left + q
                            for c in range(C):
                                out[q * C + c] = src[col * C + c] if 0 <= col < W else 0


@njit(**JIT)
def _col2im(dcols, dx, C, stride, pad):
    """dx[n, r, (col, c)] = sum of dcols[n, i, j, p, (q, c)] over the windows that copied that pixel.

    The adjoint of _im2col, with the same shapes ((N, H, W*C) and (N, Ho, Wo, KH, KW*C)) and loop
    order: each window row is added back onto its KW*C neighbouring numbers of dx in one contiguous
    pass; the parts that fell on the zero padding are dropped."""
    N, H, WC = dx.shape
    _, Ho, Wo, KH, KWC = dcols.shape
    W, KW = WC // C, KWC // C
    for n in prange(N):
        dx[n] = 0
        for i in range(Ho):
            for j in range(Wo):
                left = j * stride - pad
                inside = left >= 0 and left + KW <= W
                for p in range(KH):
                    r = i * stride + p - pad
                    if r < 0 or r >= H:
                        continue
                    src, dst = dcols[n, i, j, p], dx[n, r]
                    if inside:
                        start = left * C
                        for k in range(KWC):
                            dst[start + k] += src[k]
                    else:
                        for q in range(KW):
                            col = left + q
                            if 0 <= col < W:
                                for c in range(C):
                                    dst[col * C + c] += src[q * C + c]


def im2col(x, KH, KW, stride=1, pad=0):
    """Twin of minicap.nn.conv.im2col: (N, H, W, C) -> (N*Ho*Wo, KH*KW*C)."""
    N, H, W, C = x.shape
    Ho, Wo = _out_size(H, KH, stride, pad), _out_size(W, KW, stride, pad)
    cols = np.empty((N, Ho, Wo, KH, KW * C), dtype=x.dtype)
    _im2col(np.ascontiguousarray(x).reshape(N, H, W * C), cols, C, stride, pad)
    return cols.reshape(N * Ho * Wo, KH * KW * C)


def col2im(dcols, x_shape, KH, KW, stride=1, pad=0):
    """Twin of minicap.nn.conv.col2im: (N*Ho*Wo, KH*KW*C) -> x_shape."""
    N, H, W, C = x_shape
    Ho, Wo = _out_size(H, KH, stride, pad), _out_size(W, KW, stride, pad)
    dx = np.empty((N, H, W * C), dtype=dcols.dtype)
    _col2im(np.ascontiguousarray(dcols).reshape(N, Ho, Wo, KH, KW * C), dx, C, stride, pad)
    return dx.reshape(x_shape)


# --- convolution ------------------------------------------------------------------------------------
def conv2d_forward(x, w, b, stride=1, pad=0):
    """Twin of minicap.nn.conv.conv2d_forward: x (N, H, W, C), w (KH, KW, C, F), b (F,) -> (N, Ho, Wo, F)."""
    KH, KW, C, F = w.shape
    if x.shape[3] != C:
        raise ValueError(f"x has {x.shape[3]} channels but the filters expect {C}")
    N, H, W, _ = x.shape
    Ho, Wo = _out_size(H, KH, stride, pad), _out_size(W, KW, stride, pad)
    if Ho < 1 or Wo < 1:
        raise ValueError(f"a {KH}x{KW} kernel with padding {pad} does not fit a {H}x{W} image")
    cols = im2col(x, KH, KW, stride, pad)
    out = cols @ w.reshape(KH * KW * C, F)
    out += b
    return out.reshape(N, Ho, Wo, F), (cols, w, x.shape, stride, pad)


def conv2d_backward(dout, cache):
    """Twin of minicap.nn.conv.conv2d_backward: returns dx (N, H, W, C), dw (KH, KW, C, F), db (F,)."""
    cols, w, x_shape, stride, pad = cache
    KH, KW, C, F = w.shape
    dout = dout.reshape(-1, F)
    dw = (cols.T @ dout).reshape(w.shape)
    db = dout.sum(axis=0)
    dcols = dout @ w.reshape(KH * KW * C, F).T
    dx = col2im(dcols, x_shape, KH, KW, stride, pad)
    return dx, dw, db


# --- max pooling ------------------------------------------------------------------------------------
@njit(**JIT)
def _max_pool(x, out, argmax, size, stride):
    """out = max over each window, argmax = its offset p*size + q (the first one on a tie)."""
    N, Ho, Wo, C = out.shape
    for n in prange(N):
        for i in range(Ho):
            for j in range(Wo):
                for c in range(C):
                    out[n, i, j, c] = x[n, i * stride, j * stride, c]
                    argmax[n, i, j, c] = 0
                for p in range(size):
                    for q in range(size):
                        k = p * size + q
                        for c in range(C):
                            v = x[n, i * stride + p, j * stride + q, c]
                            best = out[n, i, j, c]
                            # strict: an earlier offset wins a tie; the first NaN wins (as np.argmax),
                            # so a NaN stays visible instead of being compared away
                            if v > best or (v != v and best == best):
                                out[n, i, j, c] = v
                                argmax[n, i, j, c] = k


@njit(**JIT)
def _max_pool_backward(dout, argmax, dx, size, stride):
    """dx[window winner] += dout, for every output."""
    N, Ho, Wo, C = dout.shape
    for n in prange(N):
        dx[n] = 0
        for i in range(Ho):
            for j in range(Wo):
                for c in range(C):
                    k = argmax[n, i, j, c]
                    dx[n, i * stride + k // size, j * stride + k % size, c] += dout[n, i, j, c]


def max_pool_forward(x, size=2, stride=2):
    """Twin of minicap.nn.conv.max_pool_forward: x (N, H, W, C) -> out (N, Ho, Wo, C), cache."""
    N, H, W, C = x.shape
    Ho, Wo = _out_size(H, size, stride, 0), _out_size(W, size, stride, 0)
    if Ho < 1 or Wo < 1:
        raise ValueError(f"a {size}x{size} pooling window does not fit a {H}x{W} image")
    out = np.empty((N, Ho, Wo, C), dtype=x.dtype)
    argmax = np.empty((N, Ho, Wo, C), dtype=np.intp)   # np.argmax's index type, as in the reference cache
    _max_pool(np.ascontiguousarray(x), out, argmax, size, stride)
    return out, (argmax, x.shape, size, stride)


def max_pool_backward(dout, cache):
    """Twin of minicap.nn.conv.max_pool_backward: dout (N, Ho, Wo, C) -> dx (N, H, W, C)."""
    argmax, x_shape, size, stride = cache
    dx = np.empty(x_shape, dtype=dout.dtype)
    _max_pool_backward(np.ascontiguousarray(dout), np.ascontiguousarray(argmax), dx, size, stride)
    return dx
