"""DRAW's Gaussian filterbank: forward values from the equations, gradients, and the Numba twins."""
import os
import subprocess
import sys

import numpy as np
import pytest

from minicap import backend
from minicap.gradcheck_cases import TOLERANCE, check_case
from minicap.nn import filterbank as fb

FILTERBANK_CASES = ["filter_params", "filterbank", "filterbank_read", "filterbank_write", "attentive_read",
                    "attentive_write", "read_no_attention", "write_no_attention"]


@pytest.fixture(params=["numpy", "numba"])
def each_backend(request):
    """Run a test once with the NumPy reference and once with the Numba twins behind the composites."""
    before = backend.current()
    backend.use(request.param)
    yield request.param
    backend.use(before)


@pytest.mark.parametrize("name", FILTERBANK_CASES)
def test_gradients_in_float64(name, each_backend):
    errors = check_case(name, seed=3)
    assert errors
    for input_name, err in errors.items():
        assert err < TOLERANCE, f"{name} ({each_backend}): gradient of {input_name} has relative error {err:.2e}"


def test_filterbank_matches_the_equations_written_out():
    """Every F[i, a] against exp(-(a - mu_i)^2 / (2 sigma^2)), normalised, with a = 1..A and i = 1..N."""
    A, B, N = 9, 7, 4
    gx, gy, sigma2, delta = np.array([4.2]), np.array([3.1]), np.array([1.7]), np.array([1.3])
    (Fx, Fy), _ = fb.filterbank_forward(gx, gy, sigma2, delta, A, B, N)
    assert Fx.shape == (1, N, A) and Fy.shape == (1, N, B)
    for F, g, size in ((Fx, gx[0], A), (Fy, gy[0], B)):
        for i in range(1, N + 1):
            mu = g + (i - N / 2 - 0.5) * delta[0]
            row = np.array([np.exp(-(a - mu) ** 2 / (2 * sigma2[0])) for a in range(1, size + 1)])
            np.testing.assert_allclose(F[0, i - 1], row / (row.sum() + fb.EPS), rtol=1e-12)
    np.testing.assert_allclose(Fx.sum(axis=2), 1.0, rtol=1e-7)


def test_default_window_is_centred_and_spans_the_image():
    """g~ = 0 centres the grid at ((A+1)/2, (B+1)/2); delta~ = 1 puts the outer filters on the edges."""
    A, B, N = 28, 20, 5
    (gx, gy, sigma2, delta, gamma), _ = fb.filter_params_forward(np.zeros((1, 5)), A, B, N)
    assert (gx[0], gy[0], sigma2[0], gamma[0]) == (14.5, 10.5, 1.0, 1.0)
    assert delta[0] == pytest.approx((A - 1) / (N - 1))
    mu_x = gx[0] + fb.filter_offsets(N) * delta[0]
    np.testing.assert_allclose([mu_x[0], mu_x[-1]], [1.0, 28.0])


@pytest.mark.parametrize("N", [3, 4])
def test_tiny_sigma_and_stride_one_read_back_the_exact_patch(N, each_backend):
    """With sigma -> 0 and delta = 1 each filter picks one pixel: the glimpse is the image patch itself."""
    rng = np.random.default_rng(0)
    A, B = 11, 9
    x = rng.standard_normal((2, B, A))
    top, left = np.array([2, 5]), np.array([3, 0])            # 0-based corner of each patch
    offsets = fb.filter_offsets(N)
    gx = left + 1 - offsets[0]                                 # mu_x_1 = left + 1 (pixels count from 1)
    gy = top + 1 - offsets[0]
    # the same window through the raw parameters, as a decoder would produce it
    p = np.stack([2 * gx / (A + 1) - 1, 2 * gy / (B + 1) - 1, np.full(2, np.log(1e-4)),
                  np.full(2, np.log((N - 1) / (max(A, B) - 1))), np.zeros(2)], axis=1)
    (Fx, Fy, gamma), _ = fb.attention_window_forward(p, np.eye(5), np.zeros(5), A, B, N)  # h = p, W = I
    glimpse, _ = backend.get("read_forward")(x, Fx, Fy, gamma)
    for n in range(2):
        np.testing.assert_allclose(glimpse[n], x[n, top[n]:top[n] + N, left[n]:left[n] + N], atol=1e-12)
    # and writing the patch back puts it exactly there, zeros elsewhere
    canvas, _ = backend.get("write_forward")(glimpse, Fx, Fy, gamma)
    for n in range(2):
        expected = np.zeros((B, A))
        expected[top[n]:top[n] + N, left[n]:left[n] + N] = x[n, top[n]:top[n] + N, left[n]:left[n] + N]
        np.testing.assert_allclose(canvas[n], expected, atol=1e-12)


def test_write_is_the_adjoint_of_read():
    """<read(x), w> / gamma = gamma <x, write(w)>: write paints through the transposed filters."""
    rng = np.random.default_rng(1)
    Bt, A, B, N = 4, 8, 6, 3
    (Fx, Fy), _ = fb.filterbank_forward(*[rng.uniform(2, 5, Bt), rng.uniform(2, 4, Bt),
                                          rng.uniform(0.5, 2, Bt), rng.uniform(0.5, 2, Bt)], A, B, N)
    gamma = rng.uniform(0.5, 2, Bt)
    x, w = rng.standard_normal((Bt, B, A)), rng.standard_normal((Bt, N, N))
    r, _ = fb.read_forward(x, Fx, Fy, gamma)
    out, _ = fb.write_forward(w, Fx, Fy, gamma)
    np.testing.assert_allclose((r * w).sum(axis=(1, 2)) / gamma, gamma * (x * out).sum(axis=(1, 2)), rtol=1e-12)


def test_a_window_off_the_image_stays_finite(each_backend):
    """All of a filter's Gaussian off the canvas: Z = 0 + EPS, so F = 0 (not NaN) and gradients are finite."""
    A, B, N = 6, 6, 2
    gx, gy = np.array([-300.0]), np.array([3.0])
    sigma2, delta = np.array([0.5]), np.array([1.0])
    (Fx, Fy), cache = backend.get("filterbank_forward")(gx, gy, sigma2, delta, A, B, N)
    assert np.all(Fx == 0) and np.all(np.isfinite(Fy))
    grads = backend.get("filterbank_backward")(np.ones_like(Fx), np.ones_like(Fy), cache)
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_no_attention_read_and_write_see_and_cover_everything():
    rng = np.random.default_rng(2)
    x, x_hat = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    r, _ = fb.read_no_attention_forward(x, x_hat)
    np.testing.assert_array_equal(r, np.concatenate([x.reshape(2, -1), x_hat.reshape(2, -1)], axis=1))
    h, W, b = rng.standard_normal((2, 5)), rng.standard_normal((5, 12)), rng.standard_normal(12)
    out, _ = fb.write_no_attention_forward(h, W, b, 4, 3)
    np.testing.assert_allclose(out, (h @ W + b).reshape(2, 3, 4))


# --- the Numba twins against the NumPy reference ---------------------------------------------------
def _parity_inputs(dtype, seed=0):
    rng = np.random.default_rng(seed)
    Bt, A, B, N = 5, 10, 8, 3
    window = [rng.uniform(2, 8, Bt), rng.uniform(2, 6, Bt), rng.uniform(0.3, 3, Bt), rng.uniform(0.5, 3, Bt)]
    window = [v.astype(dtype) for v in window]
    return dict(A=A, B=B, N=N, window=window, gamma=rng.uniform(0.5, 2, Bt).astype(dtype),
                x=rng.standard_normal((Bt, B, A)).astype(dtype), w=rng.standard_normal((Bt, N, N)).astype(dtype),
                dglimpse=rng.standard_normal((Bt, N, N)).astype(dtype),
                dcanvas=rng.standard_normal((Bt, B, A)).astype(dtype),
                dFx=rng.standard_normal((Bt, N, A)).astype(dtype), dFy=rng.standard_normal((Bt, N, B)).astype(dtype))


def _run_all(impl, d):
    """Every hot filterbank function of one implementation ('numpy' or 'numba') on the same inputs."""
    get = lambda name: backend.get(name, impl)  # noqa: E731
    (Fx, Fy), bank_cache = get("filterbank_forward")(*d["window"], d["A"], d["B"], d["N"])
    dbank = get("filterbank_backward")(d["dFx"], d["dFy"], bank_cache)
    glimpse, read_cache = get("read_forward")(d["x"], Fx, Fy, d["gamma"])
    dread = get("read_backward")(d["dglimpse"], read_cache)
    no_dx = get("read_backward")(d["dglimpse"], read_cache, need_dx=False)   # the image x needs no gradient
    assert no_dx[0] is None
    for with_dx, without in zip(dread[1:], no_dx[1:]):
        np.testing.assert_array_equal(with_dx, without)
    canvas, write_cache = get("write_forward")(d["w"], Fx, Fy, d["gamma"])
    dwrite = get("write_backward")(d["dcanvas"], write_cache)
    return dict(Fx=Fx, Fy=Fy, glimpse=glimpse, canvas=canvas,
                **{f"bank_{k}": v for k, v in zip(["dgx", "dgy", "dsigma2", "ddelta"], dbank)},
                **{f"read_{k}": v for k, v in zip(["dx", "dFx", "dFy", "dgamma"], dread)},
                **{f"write_{k}": v for k, v in zip(["dw", "dFx", "dFy", "dgamma"], dwrite)})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_twins_match_numpy(dtype):
    d = _parity_inputs(dtype)
    ref, twin = _run_all("numpy", d), _run_all("numba", d)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    for name in ref:
        assert twin[name].dtype == ref[name].dtype == dtype, name
        assert twin[name].shape == ref[name].shape, name
        scale = np.abs(ref[name]).max()
        np.testing.assert_allclose(twin[name], ref[name], rtol=rtol, atol=rtol * scale, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_windows_go_to_the_reference_and_small_ones_to_the_loops(dtype, monkeypatch):
    """Above kernels.filterbank.LOOP_MAX multiply-adds per image the twins return the reference's result
    (BLAS is faster there); at or below, the loops' (checked against it above). Both paths, one size.
    (Handed over, read and write compute exactly the reference's formulas on the twin's filterbank,
    which differs from the reference's in the last bits, hence a tolerance here too.)"""
    import kernels.filterbank as kf
    d = _parity_inputs(dtype, seed=1)
    assert d["N"] * d["A"] * d["B"] <= kf.LOOP_MAX
    loops = _run_all("numba", d)
    monkeypatch.setattr(kf, "LOOP_MAX", 0)
    handed_over, ref = _run_all("numba", d), _run_all("numpy", d)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    for name in ref:
        for result in (handed_over, loops):
            np.testing.assert_allclose(result[name], ref[name], rtol=rtol, atol=rtol * np.abs(ref[name]).max(), err_msg=name)
    assert any(not np.array_equal(handed_over[name], loops[name]) for name in ref)   # two different paths ran


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="already running without the JIT")
def test_numba_twins_match_numpy_as_plain_python():
    """The same parity test with NUMBA_DISABLE_JIT=1, so coverage sees the kernel code itself."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
                             "-k", "test_numba_twins_match_numpy and not plain_python"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 passed" in result.stdout
