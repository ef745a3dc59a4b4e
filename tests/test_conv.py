"""Convolution and pooling layers (channels-last): forward values, gradients, and the Numba twins."""
import os
import subprocess
import sys

import numpy as np
import pytest

from minicap import backend
from minicap.gradcheck_cases import TOLERANCE, check_case
from minicap.nn import conv

CONV_CASES = ["conv2d", "conv2d_stride2_pad1", "conv2d_stride2_nopad", "conv2d_stride3_pad2", "max_pool",
              "max_pool_overlapping", "global_avg_pool"]


@pytest.fixture(params=["numpy", "numba"])
def each_backend(request):
    """Run a test once with the NumPy reference and once with the Numba twins."""
    with backend.using(request.param):
        yield request.param


@pytest.mark.parametrize("name", CONV_CASES)
def test_gradients_in_float64(name, each_backend):
    errors = check_case(name, seed=5)
    assert errors
    for input_name, err in errors.items():
        assert err < TOLERANCE, f"{name} ({each_backend}): gradient of {input_name} has relative error {err:.2e}"


def _conv_by_loops(x, w, b, stride, pad):
    """The convolution's defining sum, written out one output number at a time."""
    N, H, W, C = x.shape
    KH, KW, _, F = w.shape
    xp = np.zeros((N, H + 2 * pad, W + 2 * pad, C))
    xp[:, pad:pad + H, pad:pad + W] = x
    Ho, Wo = (H + 2 * pad - KH) // stride + 1, (W + 2 * pad - KW) // stride + 1
    out = np.zeros((N, Ho, Wo, F))
    for n in range(N):
        for i in range(Ho):
            for j in range(Wo):
                for f in range(F):
                    out[n, i, j, f] = b[f] + sum(xp[n, i * stride + p, j * stride + q, c] * w[p, q, c, f]
                                                 for p in range(KH) for q in range(KW) for c in range(C))
    return out


@pytest.mark.parametrize("stride,pad,kernel", [(1, 0, (3, 3)), (1, 1, (3, 3)), (2, 1, (3, 3)), (2, 0, (2, 3)),
                                               (3, 2, (3, 3))])
def test_conv2d_matches_its_equation(stride, pad, kernel, each_backend):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 7, 8, 3)), rng.standard_normal(kernel + (3, 4)), rng.standard_normal(4)
    out, _ = backend.get("conv2d_forward")(x, w, b, stride=stride, pad=pad)
    np.testing.assert_allclose(out, _conv_by_loops(x, w, b, stride, pad), rtol=1e-12, atol=1e-12)


def test_a_centred_delta_filter_copies_the_image():
    """A 3x3 filter that is 1 at its centre, with padding 1, is the identity; with stride 2 it subsamples."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 5, 1))
    w = np.zeros((3, 3, 1, 1))
    w[1, 1] = 1
    out, _ = conv.conv2d_forward(x, w, np.zeros(1), stride=1, pad=1)
    np.testing.assert_array_equal(out, x)   # exact on purpose: x * 1 plus zeros is x in any summation order
    out, _ = conv.conv2d_forward(x, w, np.zeros(1), stride=2, pad=1)
    np.testing.assert_array_equal(out, x[:, ::2, ::2])


def test_col2im_is_the_adjoint_of_im2col():
    """<im2col(x), y> = <x, col2im(y)>: the backward pass adds each window's gradient where it was read."""
    rng = np.random.default_rng(2)
    for stride, pad in [(1, 1), (2, 1), (2, 0), (3, 2)]:
        x = rng.standard_normal((2, 7, 6, 3))
        cols = conv.im2col(x, 3, 3, stride, pad)
        y = rng.standard_normal(cols.shape)
        np.testing.assert_allclose(np.sum(cols * y), np.sum(x * conv.col2im(y, x.shape, 3, 3, stride, pad)),
                                   rtol=1e-12)


def test_max_pool_takes_window_maxima_and_routes_the_gradient_to_the_first_winner(each_backend):
    x = np.array([[1., 5., 2., 2.],
                  [3., 4., 2., 0.],
                  [7., 7., -1., -3.],
                  [7., 6., -2., -1.]])[None, :, :, None]
    out, cache = backend.get("max_pool_forward")(x, size=2, stride=2)
    np.testing.assert_array_equal(out[0, :, :, 0], [[5., 2.], [7., -1.]])
    dx = backend.get("max_pool_backward")(np.array([[1., 2.], [3., 4.]])[None, :, :, None], cache)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0, 1, 2, 0],      # ties: the first in the window
                                                   [0, 0, 0, 0],      # (row by row) takes the gradient
                                                   [3, 0, 4, 0],
                                                   [0, 0, 0, 0]])


def test_global_avg_pool_is_the_mean_over_positions():
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 5))
    out, cache = conv.global_avg_pool_forward(x)
    np.testing.assert_allclose(out, x.mean(axis=(1, 2)))
    dx = conv.global_avg_pool_backward(np.ones((2, 5)), cache)
    np.testing.assert_allclose(dx, np.full(x.shape, 1 / 12))


@pytest.mark.parametrize("impl", ["numpy", "numba"])
def test_shapes_that_do_not_fit_are_refused(impl):
    x = np.zeros((1, 4, 4, 2))
    with pytest.raises(ValueError, match="channels"):
        backend.get("conv2d_forward", impl)(x, np.zeros((3, 3, 3, 1)), np.zeros(1))
    with pytest.raises(ValueError, match="does not fit"):
        backend.get("conv2d_forward", impl)(x, np.zeros((5, 5, 2, 1)), np.zeros(1))
    with pytest.raises(ValueError, match="does not fit"):
        backend.get("max_pool_forward", impl)(x, size=5, stride=1)


# --- the Numba twins against the NumPy reference -----------------------------------------------------
def _run_all(impl, x, w, b, stride, pad, dconv, pool_size, pool_stride, dpool):
    get = lambda name: backend.get(name, impl)  # noqa: E731
    out, cache = get("conv2d_forward")(x, w, b, stride=stride, pad=pad)
    dx, dw, db = get("conv2d_backward")(dconv, cache)
    pooled, pool_cache = get("max_pool_forward")(x, size=pool_size, stride=pool_stride)
    dpx = get("max_pool_backward")(dpool, pool_cache)
    return dict(out=out, dx=dx, dw=dw, db=db, pooled=pooled, argmax=pool_cache[0], dpx=dpx), cache, pool_cache


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C,stride,pad,pool", [(1, 1, 1, (2, 2)), (5, 2, 1, (3, 2)), (4, 2, 0, (2, 1)),
                                               (3, 3, 2, (3, 3))])
def test_numba_twins_match_numpy(dtype, C, stride, pad, pool):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 9, 8, C)).astype(dtype)
    w, b = rng.standard_normal((3, 3, C, 4)).astype(dtype), rng.standard_normal(4).astype(dtype)
    Ho, Wo = conv.conv_output_size(9, 3, stride, pad), conv.conv_output_size(8, 3, stride, pad)
    Po, Qo = conv.conv_output_size(9, pool[0], pool[1]), conv.conv_output_size(8, pool[0], pool[1])
    dconv = rng.standard_normal((3, Ho, Wo, 4)).astype(dtype)
    dpool = rng.standard_normal((3, Po, Qo, C)).astype(dtype)
    args = (x, w, b, stride, pad, dconv, pool[0], pool[1], dpool)
    ref, ref_cache, ref_pool_cache = _run_all("numpy", *args)
    twin, twin_cache, twin_pool_cache = _run_all("numba", *args)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for name in ref:
        assert twin[name].shape == ref[name].shape and twin[name].dtype == ref[name].dtype, name
        scale = max(np.abs(ref[name]).max(), 1)
        np.testing.assert_allclose(twin[name], ref[name], rtol=rtol, atol=rtol * scale, err_msg=name)
    # the caches are the same, so either backward accepts either forward's cache
    dx_mixed = backend.get("conv2d_backward", "numpy")(dconv, twin_cache)[0]
    np.testing.assert_allclose(dx_mixed, ref["dx"], rtol=rtol, atol=rtol * np.abs(ref["dx"]).max())
    np.testing.assert_array_equal(backend.get("max_pool_backward", "numba")(dpool, ref_pool_cache), twin["dpx"])


@pytest.mark.parametrize("impl", ["numpy", "numba"])
def test_max_pool_keeps_a_nan_visible(impl):
    x = np.zeros((1, 4, 4, 1))
    x[0, 1, 1, 0] = np.nan
    out, _ = backend.get("max_pool_forward", impl)(x)
    assert np.isnan(out[0, 0, 0, 0]) and np.all(out[0].ravel()[1:] == 0)


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="already running without the JIT")
def test_numba_twins_match_numpy_as_plain_python():
    """The same parity test with NUMBA_DISABLE_JIT=1, so coverage sees the kernel code itself."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
                             "-k", "test_numba_twins_match_numpy and not plain_python"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "8 passed" in result.stdout
