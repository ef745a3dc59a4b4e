"""Kernel parity: every Numba twin against its NumPy reference, float32 and float64, forward and backward.

Random shapes include batch size 1 and length-1 sequences (one time step, one attended location).
The step twins share the reference's cache format, so each backward is also checked on the other
backend's cache. test_parity_without_jit runs the parity tests again with NUMBA_DISABLE_JIT=1, so the
kernel code itself (not only its compiled form) is covered. Tolerances: float64 to ~1e-12 of the
largest value, float32 to ~1e-5 (the kernels sum in a different order and use kernels.vmath).
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kernels.attention as KA
import kernels.lstm as KL
import kernels.softmax as KS
from kernels import vmath
from minicap import backend, nn

ROOT = Path(__file__).resolve().parent.parent
DTYPES = [np.float32, np.float64]
TOL = {np.float32: 2e-5, np.float64: 1e-12}

# (N, T, D, H): batch 1, one time step, and a few ordinary shapes
LSTM_SHAPES = [(1, 1, 2, 3), (1, 4, 3, 2), (3, 1, 4, 5), (4, 5, 3, 6), (2, 7, 5, 4)]
# (N, L, D, A, H): batch 1 and a single location
ATTENTION_SHAPES = [(1, 1, 2, 3, 2), (1, 6, 3, 4, 5), (3, 1, 4, 2, 3), (4, 9, 5, 6, 3)]
# (N, T, V)
SOFTMAX_SHAPES = [(1, 1, 2), (1, 5, 7), (3, 1, 11), (4, 6, 33)]


def assert_close(actual, expected, dtype, what=""):
    """Equal to within TOL[dtype] of the reference's largest magnitude (0 stays near 0)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1.0)
    np.testing.assert_allclose(actual, expected, rtol=TOL[dtype], atol=TOL[dtype] * scale, err_msg=what)


def random(rng, dtype, *shape):
    return rng.standard_normal(shape).astype(dtype)


def lstm_args(rng, dtype, N, T, D, H):
    """x, h0, c0, Wx, Wh, b with non-zero initial states and bias."""
    return (random(rng, dtype, N, T, D), random(rng, dtype, N, H), random(rng, dtype, N, H),
            random(rng, dtype, D, 4 * H) * 0.5, random(rng, dtype, H, 4 * H) * 0.5, random(rng, dtype, 4 * H))


def prefix_mask(rng, N, T):
    """Each row: ones for a random length >= 1, then zeros (padding)."""
    lengths = rng.integers(1, T + 1, N)
    return (np.arange(T)[None, :] < lengths[:, None]).astype(int)


# --- LSTM -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", LSTM_SHAPES)
def test_parity_lstm_step(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    N, _, D, H = shape
    x, h0, c0, Wx, Wh, b = lstm_args(rng, dtype, *shape)
    (h_ref, c_ref), cache_ref = nn.lstm_step_forward(x[:, 0], h0, c0, Wx, Wh, b)
    (h_nb, c_nb), cache_nb = KL.lstm_step_forward(x[:, 0], h0, c0, Wx, Wh, b)
    assert_close(h_nb, h_ref, dtype, "next_h")
    assert_close(c_nb, c_ref, dtype, "next_c")
    dh, dc = random(rng, dtype, N, H), random(rng, dtype, N, H)
    expected = nn.lstm_step_backward(dh, dc, cache_ref)
    names = ["dx", "dprev_h", "dprev_c", "dWx", "dWh", "db"]
    for cache, label in [(cache_nb, "own cache"), (cache_ref, "reference cache")]:
        for name, got, want in zip(names, KL.lstm_step_backward(dh, dc, cache), expected):
            assert_close(got, want, dtype, f"{name} ({label})")
    for name, got, want in zip(names, nn.lstm_step_backward(dh, dc, cache_nb), expected):
        assert_close(got, want, dtype, f"{name} (reference backward on the twin's cache)")
    da_ref, dprev_c_ref = nn.lstm_step_gate_grads(dh, dc, cache_ref)
    for cache, label in [(cache_nb, "own cache"), (cache_ref, "reference cache")]:
        da, dprev_c = KL.lstm_step_gate_grads(dh, dc, cache)
        assert_close(da, da_ref, dtype, f"da ({label})")
        assert_close(dprev_c, dprev_c_ref, dtype, f"dprev_c of the gate gradients ({label})")
    # the gate gradient is the first half of the step's backward: the products finish it
    assert_close(da_ref @ Wx.T, expected[0], dtype, "da Wx^T = dx")
    assert_close(x[:, 0].T @ da_ref, expected[3], dtype, "x^T da = dWx")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("shape", LSTM_SHAPES)
def test_parity_lstm_sequence(shape, masked, dtype):
    rng = np.random.default_rng(sum(shape) + masked)
    N, T, D, H = shape
    args = lstm_args(rng, dtype, *shape)
    mask = prefix_mask(rng, N, T) if masked else None
    with backend.using("numpy"):  # the reference, NumPy all the way down
        (h_ref, c_ref), cache_ref = nn.lstm_forward(*args, mask=mask)
        dh, dc = random(rng, dtype, N, T, H), random(rng, dtype, N, H)
        expected = nn.lstm_backward(dh, dc, cache_ref)
    (h_nb, c_nb), cache_nb = KL.lstm_forward(*args, mask=mask)
    assert_close(h_nb, h_ref, dtype, "h")
    assert_close(c_nb, c_ref, dtype, "c_last")
    if masked:
        assert np.all(h_nb[mask == 0] == 0), "padded steps must output exactly 0"
    for name, got, want in zip(["dx", "dh0", "dc0", "dWx", "dWh", "db"], KL.lstm_backward(dh, dc, cache_nb), expected):
        assert_close(got, want, dtype, name)


def test_lstm_sequence_mask_carries_the_state_through_padding():
    rng = np.random.default_rng(3)
    args = lstm_args(rng, np.float64, 2, 4, 3, 5)
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]])
    (h, c_last), _ = KL.lstm_forward(*args, mask=mask)
    x, h0, c0, Wx, Wh, b = args
    (h_short, c_short), _ = KL.lstm_forward(x[1:, :2], h0[1:], c0[1:], Wx, Wh, b)
    # batches of 2 and of 1 are different BLAS calls: close, not bit-equal; the values are O(1), so an
    # absolute floor keeps an entry near 0 from failing on relative error alone
    np.testing.assert_allclose(c_last[1], c_short[0], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(h[1, :2], h_short[0], rtol=1e-13, atol=1e-13)


def test_lstm_sequence_backward_refuses_another_backends_cache():
    rng = np.random.default_rng(4)
    args = lstm_args(rng, np.float64, 2, 3, 3, 4)
    with backend.using("numpy"):
        (h, _), cache = nn.lstm_forward(*args)
    with pytest.raises(TypeError, match="same backend|another backend"):
        KL.lstm_backward(np.ones_like(h), np.zeros((2, 4)), cache)


# --- soft attention -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", ["plain", "gated", "gated_masked"])
@pytest.mark.parametrize("shape", ATTENTION_SHAPES)
def test_parity_soft_attention(shape, variant, dtype):
    rng = np.random.default_rng(sum(shape) + len(variant))
    N, L, D, A, H = shape
    args = [random(rng, dtype, N, L, D), random(rng, dtype, N, L, A), random(rng, dtype, N, H),
            random(rng, dtype, H, A), random(rng, dtype, A)]
    names = ["da", "da_proj", "dh", "dWh", "dw"]
    if variant != "plain":
        args += [random(rng, dtype, H, 1), random(rng, dtype, 1)]
        names += ["dW_beta", "db_beta"]
    mask = prefix_mask(rng, N, L) if variant == "gated_masked" else None
    (z_ref, alpha_ref), cache_ref = nn.soft_attention_forward(*args, mask=mask)
    (z_nb, alpha_nb), cache_nb = KA.soft_attention_forward(*args, mask=mask)
    assert_close(z_nb, z_ref, dtype, "z")
    assert_close(alpha_nb, alpha_ref, dtype, "alpha")
    if mask is not None:
        assert np.all(alpha_nb[mask == 0] == 0), "masked locations must get exactly zero weight"
    dz, dalpha = random(rng, dtype, N, D), random(rng, dtype, N, L)
    expected = nn.soft_attention_backward(dz, dalpha, cache_ref)
    for cache, label in [(cache_nb, "own cache"), (cache_ref, "reference cache")]:
        for name, got, want in zip(names, KA.soft_attention_backward(dz, dalpha, cache), expected):
            assert_close(got, want, dtype, f"{name} ({label})")
    without_da = KA.soft_attention_backward(dz, dalpha, cache_nb, need_da=False)
    assert without_da[0] is None and nn.soft_attention_backward(dz, dalpha, cache_ref, need_da=False)[0] is None
    for name, got, want in zip(names[1:], without_da[1:], expected[1:]):
        assert_close(got, want, dtype, f"{name} (need_da=False)")


def test_soft_attention_row_with_every_location_masked_is_nan_in_both():
    rng = np.random.default_rng(5)
    args = [rng.standard_normal(s) for s in [(2, 3, 4), (2, 3, 5), (2, 6), (6, 5), (5,)]]
    mask = np.array([[1, 0, 1], [0, 0, 0]])
    with np.errstate(invalid="ignore"):
        (_, alpha_ref), _ = nn.soft_attention_forward(*args, mask=mask)
        (_, alpha_nb), _ = KA.soft_attention_forward(*args, mask=mask)
    assert np.all(np.isnan(alpha_ref[1])) and np.all(np.isnan(alpha_nb[1]))
    np.testing.assert_allclose(alpha_nb[0], alpha_ref[0], rtol=1e-13)


# --- masked temporal softmax cross-entropy ------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SOFTMAX_SHAPES)
def test_parity_temporal_softmax_loss(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    N, T, V = shape
    x = random(rng, dtype, N, T, V) * 4
    y = rng.integers(0, V, (N, T))
    mask = prefix_mask(rng, N, T)
    loss_ref, cache_ref = nn.temporal_softmax_loss_forward(x, y, mask)
    loss_nb, cache_nb = KS.temporal_softmax_loss_forward(x, y, mask)
    assert np.asarray(loss_nb).dtype == np.asarray(loss_ref).dtype
    assert abs(loss_nb - loss_ref) <= TOL[dtype] * max(1.0, abs(loss_ref))
    expected = nn.temporal_softmax_loss_backward(1.7, cache_ref)
    for cache, label in [(cache_nb, "own cache"), (cache_ref, "reference cache")]:
        assert_close(KS.temporal_softmax_loss_backward(1.7, cache), expected, dtype, f"dx ({label})")


def test_temporal_softmax_loss_rejects_targets_outside_the_vocabulary():
    x = np.zeros((1, 2, 3))
    with pytest.raises(IndexError, match="targets"):
        KS.temporal_softmax_loss_forward(x, np.array([[0, 3]]), np.ones((1, 2)))


# --- the elementwise sigmoid (DRAW's canvas) ---------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (3, 4), (2, 5, 7), (64, 6, 6)])
def test_sigmoid_parity(dtype, shape):
    import kernels.elementwise as KE
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 8).astype(dtype)
    x.flat[0] = -800.0                        # exp(800) overflows: the result must be 0, not NaN
    out = KE.sigmoid(x)
    assert_close(out, nn.sigmoid(x), dtype, "sigmoid")
    assert out.flat[0] == 0 and np.all((out >= 0) & (out <= 1))
    canvas = np.broadcast_to(x[..., :1], shape)  # a broadcast view, as DRAW's first canvas is
    assert_close(KE.sigmoid(canvas), nn.sigmoid(canvas), dtype, "sigmoid of a view")
    assert np.isnan(KE.sigmoid(np.array([np.nan], dtype)))[0]
    np.testing.assert_array_equal(KE.sigmoid(np.array([0, 1])), nn.sigmoid(np.array([0, 1])))  # integers: reference


# --- the vectorisable math ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_vmath_matches_numpy_to_a_few_ulp(dtype):
    from numba import njit

    @njit(error_model="numpy")
    def apply(x, out, which):
        for k in range(x.size):
            if which == 0:
                out[k] = vmath.exp(x[k])
            elif which == 1:
                out[k] = vmath.tanh(x[k])
            else:
                out[k] = vmath.sigmoid(x[k])

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(20000) * 6, rng.standard_normal(200) * 1e-6,
                        np.linspace(-800, 800, 4001)]).astype(dtype)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype)
    with np.errstate(over="ignore"):
        references = [np.exp, np.tanh, lambda v: 1 / (1 + np.exp(-v))]
        for which, reference in enumerate(references):
            out = np.empty_like(x)
            apply(x, out, which)
            want = reference(x)
            normal = np.isfinite(want) & (np.abs(want) >= np.finfo(dtype).tiny)
            ulps = np.abs(out[normal] - want[normal]) / np.spacing(np.abs(want[normal]))
            assert ulps.max() <= (8 if dtype == np.float32 else 4), f"function {which}: {ulps.max()} ulp"
            overflow = np.isinf(want)
            np.testing.assert_array_equal(out[overflow], want[overflow])
            tiny = ~normal & ~overflow  # 0 and denormals
            assert np.all(np.abs(out[tiny] - want[tiny]) <= 2 * np.finfo(dtype).tiny)
            out_special = np.empty_like(specials)
            apply(specials, out_special, which)
            np.testing.assert_array_equal(out_special, reference(specials))


# --- the same parity tests with the JIT off -----------------------------------------------------------------
def test_parity_without_jit():
    """Rerun this file's parity tests as plain Python (NUMBA_DISABLE_JIT=1): the kernels' loops, not
    only their compiled form, must match the reference."""
    if os.environ.get("NUMBA_DISABLE_JIT") == "1":
        pytest.skip("already running without the JIT")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                             "-k", "parity and not without_jit", str(Path(__file__))],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


# --- caching ---------------------------------------------------------------------------------------------
def test_cached_kernels_load_and_agree_in_a_fresh_process(tmp_path):
    """Compile into an empty cache in one process, load from it in a second, and check the second process
    hit the cache and got the same numbers. (DESIGN.md: caching *parallel* kernels has crashed elsewhere;
    the attention and softmax kernels are written with prange, so flipping their PARALLEL flag on puts
    exactly that case under this test.)"""
    script = f"""
import sys, numpy as np
sys.path.insert(0, {str(ROOT)!r})
import kernels.attention as KA, kernels.softmax as KS
rng = np.random.default_rng(0)
args = [rng.standard_normal(s) for s in [(3, 4, 5), (3, 4, 6), (3, 2), (2, 6), (6,), (2, 1), (1,)]]
(z, alpha), cache = KA.soft_attention_forward(*args, mask=np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]))
grads = KA.soft_attention_backward(rng.standard_normal((3, 5)), rng.standard_normal((3, 4)), cache)
loss, c = KS.temporal_softmax_loss_forward(rng.standard_normal((2, 3, 7)), rng.integers(0, 7, (2, 3)), np.ones((2, 3)))
dx = KS.temporal_softmax_loss_backward(1.0, c)
kernels = [KA._scores, KA._softmax_context, KA._attend_backward, KA._scores_backward,
           KS._log_softmax_rows, KS._softmax_minus_onehot]
print(sum(sum(k.stats.cache_hits.values()) for k in kernels), repr(float(z.sum() + sum(g.sum() for g in grads) + loss + dx.sum())))
"""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    env.pop("NUMBA_DISABLE_JIT", None)
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
            for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
    (hits_first, value_first), (hits_second, value_second) = (run.stdout.split() for run in runs)
    assert int(hits_first) == 0 and int(hits_second) >= 6
    assert value_first == value_second
