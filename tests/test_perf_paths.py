"""The shortcuts taken for speed give what the plain code gives (issue 20): embedding_backward's sorted
reduction against np.add.at, temporal_affine_backward without dx, the LSTM's dx and dh as one product
with the stacked transposed weights, and the captioner's validation scores without METEOR and ROUGE-L."""
import numpy as np
import pytest

from minicap import nn


def add_at_reference(idx, dout, V, null_idx=None):
    """embedding_backward as it was written before: np.add.at, one row at a time."""
    dW = np.zeros((V, dout.shape[-1]), dout.dtype)
    np.add.at(dW, idx.reshape(-1), dout.reshape(-1, dout.shape[-1]))
    if null_idx is not None:
        dW[null_idx] = 0
    return dW


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("null_idx", [None, 0])
def test_embedding_backward_matches_add_at(dtype, null_idx):
    rng = np.random.default_rng(0)
    V, E = 7, 5
    idx = rng.integers(0, V, (6, 9))         # 54 positions over 7 words: every word repeats
    idx[0, :4] = 3                            # a run of one word, and some words maybe absent
    W = rng.standard_normal((V, E)).astype(dtype)
    out, cache = nn.embedding_forward(idx, W, null_idx=null_idx)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dW = nn.embedding_backward(dout, cache)
    assert dW.dtype == dtype and dW.shape == (V, E)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(dW, add_at_reference(idx, dout, V, null_idx), rtol=tol, atol=tol)


def test_embedding_backward_of_no_positions_is_zero():
    W = np.ones((4, 3))
    out, cache = nn.embedding_forward(np.zeros((2, 0), int), W)
    assert np.array_equal(nn.embedding_backward(out, cache), np.zeros((4, 3)))


def test_temporal_affine_backward_without_dx():
    rng = np.random.default_rng(1)
    x, W, b = rng.standard_normal((3, 4, 5)), rng.standard_normal((5, 6)), rng.standard_normal(6)
    out, cache = nn.temporal_affine_forward(x, W, b)
    dout = rng.standard_normal(out.shape)
    dx, dW, db = nn.temporal_affine_backward(dout, cache)
    none, dW2, db2 = nn.temporal_affine_backward(dout, cache, need_dx=False)
    assert none is None and dx.shape == x.shape
    np.testing.assert_array_equal(dW2, dW)
    np.testing.assert_array_equal(db2, db)


def test_validation_scores_equal_the_full_evaluation():
    from minicap.data import make_captioned_mnist
    from minicap.models.captioner_eval import VALIDATION_METRICS, evaluate_captions
    data = make_captioned_mnist("val", n=40, seed=3)
    rng = np.random.default_rng(2)
    captions = []
    for caption in data.captions:              # some right, some with a word dropped or swapped
        words = caption.split()
        r = rng.random()
        if r < 0.3:
            words = words[:-1]
        elif r < 0.6:
            words[0], words[-1] = words[-1], words[0]
        captions.append(" ".join(words))
    full = evaluate_captions(captions, data)
    quick = evaluate_captions(captions, data, all_metrics=False)
    assert "METEOR" in full and "METEOR" not in quick and "ROUGE-L" not in quick
    for key in (*VALIDATION_METRICS, "BLEU-1", "caption_accuracy", "images"):
        assert quick[key] == full[key], key
    assert 0 < quick["CIDEr"] and 0 < quick["BLEU-4"] < 1


@pytest.mark.parametrize("C,KH,KW,stride,pad", [(1, 3, 3, 1, 1), (16, 3, 3, 1, 1), (3, 2, 3, 2, 0), (2, 3, 3, 3, 2),
                                                (4, 5, 5, 1, 3)])
def test_im2col_kernel_copies_exactly_what_the_reference_copies(C, KH, KW, stride, pad):
    """im2col only copies numbers (and zeros at the border), so the kernel must agree bit for bit,
    including windows that hang over more than one border (pad 3 with a 5x5 kernel on a 4-wide image)."""
    import kernels.conv as KC
    from minicap.nn import conv
    rng = np.random.default_rng(C + KH + stride + pad)
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((2, 7, 4, C)).astype(dtype)
        np.testing.assert_array_equal(KC.im2col(x, KH, KW, stride, pad), conv.im2col(x, KH, KW, stride, pad))


def test_encoding_without_caches_gives_the_training_forward_features():
    from minicap.models import encoder
    params = encoder.init_params(np.random.default_rng(0))
    images = np.random.default_rng(1).random((5, 60, 60)).astype(np.float32)
    feats, caches = encoder.features_forward(images, params)
    fast, none = encoder.features_forward(images, params, need_cache=False)
    assert none is None and caches
    np.testing.assert_array_equal(fast, feats)
    # encode() runs small batches (encoder.ENCODE_BATCH); a batch of 2 must not change the result
    np.testing.assert_allclose(encoder.encode(images, params, batch_size=2), feats.reshape(5, 49, -1),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("C,KH,KW,stride,pad", [(1, 3, 3, 1, 1), (16, 3, 3, 1, 1), (3, 2, 3, 2, 0), (2, 3, 3, 3, 2),
                                                (4, 5, 5, 1, 3)])
def test_col2im_kernel_matches_the_reference(C, KH, KW, stride, pad):
    import kernels.conv as KC
    from minicap.nn import conv
    rng = np.random.default_rng(10 + C + KH + stride + pad)
    x_shape = (2, 7, 4, C)
    for dtype, tol in ((np.float32, 1e-5), (np.float64, 1e-12)):
        cols = conv.im2col(np.zeros(x_shape, dtype), KH, KW, stride, pad)
        dcols = rng.standard_normal(cols.shape).astype(dtype)
        got, want = KC.col2im(dcols, x_shape, KH, KW, stride, pad), conv.col2im(dcols, x_shape, KH, KW, stride, pad)
        assert got.dtype == dtype and got.shape == x_shape
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_encoding_on_two_threads_gives_the_same_numbers():
    from minicap.models import encoder
    params = encoder.init_params(np.random.default_rng(0))
    images = np.random.default_rng(2).random((7, 60, 60)).astype(np.float32)
    one = encoder.encode(images, params, batch_size=2, threads=1)
    np.testing.assert_array_equal(encoder.encode(images, params, batch_size=2, threads=2), one)
    np.testing.assert_array_equal(encoder.encode(images, params, batch_size=2, threads=8), one)


def test_kernel_threads(monkeypatch):
    from minicap import backend
    from minicap.errors import MinicapError
    with backend.using("numpy"):
        monkeypatch.setenv("NUMBA_NUM_THREADS", "4")
        assert backend.kernel_threads() == 1
    with backend.using("numba"):
        assert backend.kernel_threads() == 4
        monkeypatch.delenv("NUMBA_NUM_THREADS")
        assert backend.kernel_threads() >= 1
        monkeypatch.setenv("NUMBA_NUM_THREADS", "two")
        with pytest.raises(MinicapError, match="NUMBA_NUM_THREADS"):
            backend.kernel_threads()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lstm_input_grads_is_the_two_products(dtype):
    """da [Wx; Wh]^T split by columns = (da Wx^T, da Wh^T), to rounding (one product sums in another order)."""
    rng = np.random.default_rng(0)
    N, D, H = 6, 7, 5
    da = rng.standard_normal((N, 4 * H)).astype(dtype)
    Wx, Wh = rng.standard_normal((D, 4 * H)).astype(dtype), rng.standard_normal((H, 4 * H)).astype(dtype)
    weights_T = nn.stacked_weights_T(Wx, Wh)
    assert weights_T.shape == (4 * H, D + H) and weights_T.flags.c_contiguous
    dx, dh = nn.lstm_input_grads(da, weights_T, D)
    assert dx.dtype == dh.dtype == dtype and dx.shape == (N, D) and dh.shape == (N, H)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(dx, da @ Wx.T, rtol=tol, atol=tol)
    np.testing.assert_allclose(dh, da @ Wh.T, rtol=tol, atol=tol)
