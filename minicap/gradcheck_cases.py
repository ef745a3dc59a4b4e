"""The gradient-check suite: every layer's backward pass against finite differences, in float64.

`minicap gradcheck` (minicap/commands/gradcheck.py) runs it and prints a table. LAYER_CASES lists one small, random, float64 instance of each layer (non-zero biases and initial
states, so a wrong bias or initial-state gradient cannot hide). The tests check the same cases.
"""
import numpy as np

from minicap import nn
from minicap.gradcheck import check_layer

TOLERANCE = 1e-6


def _w(rng, *shape):
    return rng.standard_normal(shape) * 0.5


def _case_affine(rng):
    return nn.affine_forward, nn.affine_backward, [_w(rng, 4, 5), _w(rng, 5, 3), _w(rng, 3)], \
        [("x", 0), ("W", 1), ("b", 2)], {}


def _case_embedding(rng):
    idx = np.array([[0, 3, 3, 1], [2, 0, 0, 4]])  # repeated words and padding (index 0)
    return (lambda i, W: nn.embedding_forward(i, W, null_idx=0)), nn.embedding_backward, \
        [idx, _w(rng, 5, 6)], [("W", 1)], {}


def _case_unary(forward, backward, shift=0.0):
    def build(rng):
        x = rng.standard_normal((3, 4)) + shift
        x[np.abs(x) < 1e-3] = 0.5  # keep relu away from its kink, where it has no derivative
        return forward, backward, [x], [("x", 0)], {}
    return build


def _case_dropout(rng):
    def forward(x):  # the rng is re-seeded on every call so the mask is fixed during the check
        return nn.dropout_forward(x, 0.4, np.random.default_rng(7), train=True)
    return forward, nn.dropout_backward, [_w(rng, 5, 6)], [("x", 0)], {}


def _case_rnn_step(rng):
    N, D, H = 3, 4, 5
    return nn.rnn_step_forward, nn.rnn_step_backward, \
        [_w(rng, N, D), _w(rng, N, H), _w(rng, D, H), _w(rng, H, H), _w(rng, H)], \
        [("x", 0), ("prev_h", 1), ("Wx", 2), ("Wh", 3), ("b", 4)], {}


def _case_rnn_seq(rng):
    N, T, D, H = 2, 4, 3, 5
    return nn.rnn_forward, nn.rnn_backward, \
        [_w(rng, N, T, D), _w(rng, N, H), _w(rng, D, H), _w(rng, H, H), _w(rng, H)], \
        [("x", 0), ("h0", 1), ("Wx", 2), ("Wh", 3), ("b", 4)], {}


def _case_lstm_step(rng):
    N, D, H = 3, 4, 5
    return nn.lstm_step_forward, nn.lstm_step_backward, \
        [_w(rng, N, D), _w(rng, N, H), _w(rng, N, H), _w(rng, D, 4 * H), _w(rng, H, 4 * H), _w(rng, 4 * H)], \
        [("x", 0), ("prev_h", 1), ("prev_c", 2), ("Wx", 3), ("Wh", 4), ("b", 5)], {}


def _case_lstm_seq(rng, masked):
    N, T, D, H = 3, 4, 3, 4
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]]) if masked else None
    return (lambda x, h0, c0, Wx, Wh, b: nn.lstm_forward(x, h0, c0, Wx, Wh, b, mask=mask)), nn.lstm_backward, \
        [_w(rng, N, T, D), _w(rng, N, H), _w(rng, N, H), _w(rng, D, 4 * H), _w(rng, H, 4 * H), _w(rng, 4 * H)], \
        [("x", 0), ("h0", 1), ("c0", 2), ("Wx", 3), ("Wh", 4), ("b", 5)], {}


def _case_bilstm(rng):
    N, T, D, H = 3, 5, 3, 4
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    fwd = lambda x, *p: nn.bilstm_forward(x, mask, *p)  # noqa: E731
    params = [_w(rng, D, 4 * H), _w(rng, H, 4 * H), _w(rng, 4 * H)] * 1 + [_w(rng, D, 4 * H), _w(rng, H, 4 * H), _w(rng, 4 * H)]
    names = ["Wx_f", "Wh_f", "b_f", "Wx_b", "Wh_b", "b_b"]
    return fwd, nn.bilstm_backward, [_w(rng, N, T, D)] + params, [("x", 0)] + [(n, i + 1) for i, n in enumerate(names)], {}


def _case_temporal_affine(rng):
    return nn.temporal_affine_forward, nn.temporal_affine_backward, [_w(rng, 2, 3, 4), _w(rng, 4, 5), _w(rng, 5)], \
        [("x", 0), ("W", 1), ("b", 2)], {}


def _case_temporal_softmax(rng):
    N, T, V = 3, 4, 6
    y = rng.integers(0, V, size=(N, T))
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    fwd = lambda x: nn.temporal_softmax_loss_forward(x, y, mask)  # noqa: E731
    return fwd, nn.temporal_softmax_loss_backward, [rng.standard_normal((N, T, V))], [("x", 0)], {}


def _case_soft_attention(rng, gated, masked=False):
    N, L, D, A, H = 3, 5, 4, 6, 5
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]]) if masked else None
    args = [_w(rng, N, L, D), _w(rng, N, L, A), _w(rng, N, H), _w(rng, H, A), _w(rng, A)]
    names = ["a", "a_proj", "h", "Wh", "w"]
    if gated:
        args += [_w(rng, H, 1), _w(rng, 1)]
        names += ["W_beta", "b_beta"]
    fwd = lambda *xs: nn.soft_attention_forward(*xs, mask=mask)  # noqa: E731
    return fwd, nn.soft_attention_backward, args, [(n, i) for i, n in enumerate(names)], {}


def _case_penalty(rng):
    N, T, L = 3, 4, 5
    alphas = rng.random((N, T, L))
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    fwd = lambda al: nn.doubly_stochastic_penalty_forward(al, mask)  # noqa: E731
    return fwd, nn.doubly_stochastic_penalty_backward, [alphas], [("alphas", 0)], {}


def _case_deep_output(rng, use_tanh):
    N, T, E, H, D, V = 2, 3, 4, 5, 3, 7
    fwd = lambda *xs: nn.deep_output_forward(*xs, use_tanh=use_tanh)  # noqa: E731
    args = [_w(rng, N, T, E), _w(rng, N, T, H), _w(rng, N, T, D), _w(rng, H, E), _w(rng, D, E), _w(rng, E, V), _w(rng, V)]
    names = ["emb", "h", "z", "Lh", "Lz", "Lo", "bo"]
    return fwd, nn.deep_output_backward, args, [(n, i) for i, n in enumerate(names)], {}


# name -> builder(rng) -> (forward, backward, args, wrt, kwargs). Later issues append their layers.
LAYER_CASES = {
    "affine": _case_affine,
    "embedding": _case_embedding,
    "sigmoid": _case_unary(nn.sigmoid_forward, nn.sigmoid_backward),
    "tanh": _case_unary(nn.tanh_forward, nn.tanh_backward),
    "relu": _case_unary(nn.relu_forward, nn.relu_backward),
    "dropout": _case_dropout,
    "rnn_step": _case_rnn_step,
    "rnn_seq": _case_rnn_seq,
    "lstm_step": _case_lstm_step,
    "lstm_seq": lambda rng: _case_lstm_seq(rng, masked=False),
    "lstm_seq_masked": lambda rng: _case_lstm_seq(rng, masked=True),
    "bilstm_masked": _case_bilstm,
    "temporal_affine": _case_temporal_affine,
    "temporal_softmax_loss": _case_temporal_softmax,
    "soft_attention": lambda rng: _case_soft_attention(rng, gated=False),
    "soft_attention_beta": lambda rng: _case_soft_attention(rng, gated=True),
    "soft_attention_masked": lambda rng: _case_soft_attention(rng, gated=True, masked=True),
    "doubly_stochastic_penalty": _case_penalty,
    "deep_output": lambda rng: _case_deep_output(rng, use_tanh=True),
    "deep_output_linear": lambda rng: _case_deep_output(rng, use_tanh=False),
}


# --- DRAW's Gaussian filterbank attention (issue 9) -----------------------------------------------
# A non-square image (A = 7 wide, B = 6 high) so a swapped axis cannot pass; windows inside the image.
_FB_A, _FB_B, _FB_N = 7, 6, 3


def _window(rng, Bt=3):
    """gx, gy, sigma2, delta: (Bt,) each, a window well inside a 7 x 6 image."""
    return [rng.uniform(2.5, 5.5, Bt), rng.uniform(2.5, 4.5, Bt), rng.uniform(0.5, 2.0, Bt), rng.uniform(0.6, 1.6, Bt)]


def _case_filter_params(rng):
    from minicap.nn import filterbank as fb
    fwd = lambda p: fb.filter_params_forward(p, _FB_A, _FB_B, _FB_N)  # noqa: E731
    return fwd, fb.filter_params_backward, [_w(rng, 3, 5)], [("p", 0)], {}


def _case_filterbank(rng):
    from minicap.nn import filterbank as fb
    fwd = lambda gx, gy, s2, d: fb.filterbank_forward(gx, gy, s2, d, _FB_A, _FB_B, _FB_N)  # noqa: E731
    return fwd, fb.filterbank_backward, _window(rng), [("gx", 0), ("gy", 1), ("sigma2", 2), ("delta", 3)], {}


def _case_filterbank_read(rng):
    from minicap.nn import filterbank as fb
    Bt, N = 3, _FB_N
    args = [_w(rng, Bt, _FB_B, _FB_A), _w(rng, Bt, N, _FB_A), _w(rng, Bt, N, _FB_B), rng.uniform(0.5, 2.0, Bt)]
    return fb.read_forward, fb.read_backward, args, [("x", 0), ("Fx", 1), ("Fy", 2), ("gamma", 3)], {}


def _case_filterbank_write(rng):
    from minicap.nn import filterbank as fb
    Bt, N = 3, _FB_N
    args = [_w(rng, Bt, N, N), _w(rng, Bt, N, _FB_A), _w(rng, Bt, N, _FB_B), rng.uniform(0.5, 2.0, Bt)]
    return fb.write_forward, fb.write_backward, args, [("w", 0), ("Fx", 1), ("Fy", 2), ("gamma", 3)], {}


def _case_attentive_read(rng):
    from minicap.nn import filterbank as fb
    Bt, H = 3, 4
    fwd = lambda x_hat, h, W, b: fb.attentive_read_forward(x, x_hat, h, W, b, _FB_N)  # noqa: E731
    x = (rng.random((Bt, _FB_B, _FB_A)) < 0.5).astype(np.float64)
    args = [_w(rng, Bt, _FB_B, _FB_A), _w(rng, Bt, H), _w(rng, H, 5), _w(rng, 5)]
    return fwd, fb.attentive_read_backward, args, [("x_hat", 0), ("h", 1), ("W", 2), ("b", 3)], {}


def _case_attentive_write(rng):
    from minicap.nn import filterbank as fb
    Bt, H, N = 3, 4, _FB_N
    fwd = lambda h, Wa, ba, Wp, bp: fb.attentive_write_forward(h, Wa, ba, Wp, bp, _FB_A, _FB_B, N)  # noqa: E731
    args = [_w(rng, Bt, H), _w(rng, H, 5), _w(rng, 5), _w(rng, H, N * N), _w(rng, N * N)]
    return fwd, fb.attentive_write_backward, args, [("h", 0), ("W_att", 1), ("b_att", 2), ("W_patch", 3),
                                                    ("b_patch", 4)], {}


def _case_read_no_attention(rng):
    from minicap.nn import filterbank as fb
    x = _w(rng, 3, _FB_B, _FB_A)
    fwd = lambda x_hat: fb.read_no_attention_forward(x, x_hat)  # noqa: E731
    return fwd, fb.read_no_attention_backward, [_w(rng, 3, _FB_B, _FB_A)], [("x_hat", 0)], {}


def _case_write_no_attention(rng):
    from minicap.nn import filterbank as fb
    fwd = lambda h, W, b: fb.write_no_attention_forward(h, W, b, _FB_A, _FB_B)  # noqa: E731
    args = [_w(rng, 3, 4), _w(rng, 4, _FB_A * _FB_B), _w(rng, _FB_A * _FB_B)]
    return fwd, fb.write_no_attention_backward, args, [("h", 0), ("W", 1), ("b", 2)], {}


LAYER_CASES.update({
    "filter_params": _case_filter_params,
    "filterbank": _case_filterbank,
    "filterbank_read": _case_filterbank_read,
    "filterbank_write": _case_filterbank_write,
    "attentive_read": _case_attentive_read,
    "attentive_write": _case_attentive_write,
    "read_no_attention": _case_read_no_attention,
    "write_no_attention": _case_write_no_attention,
})


# --- alignDRAW's learned prior and the KL between two diagonal Gaussians (issue 10) ---------------
def _case_aligndraw_prior(rng):
    from minicap.models import aligndraw as ad
    Bt, H, Z = 3, 4, 5
    args = [_w(rng, Bt, H), _w(rng, H, Z), _w(rng, Z), _w(rng, H, Z), _w(rng, Z)]
    return ad.prior_forward, ad.prior_backward, args, [("h", 0), ("W_mu", 1), ("b_mu", 2), ("W_ls", 3), ("b_ls", 4)], {}


def _case_gaussian_kl(rng):
    from minicap.models import aligndraw as ad
    args = [_w(rng, 3, 4) for _ in range(4)]
    return ad.gaussian_kl_forward, ad.gaussian_kl_backward, args, \
        [("mu_q", 0), ("log_sigma_q", 1), ("mu_p", 2), ("log_sigma_p", 3)], {}


LAYER_CASES.update({
    "aligndraw_prior": _case_aligndraw_prior,
    "gaussian_kl": _case_gaussian_kl,
})


# --- the image encoder's convolution and pooling (issue 7) -----------------------------------------
# Channels-last images (N, H, W, C). The forward and backward passes are looked up in minicap.backend
# when the case runs, so the same cases check the Numba twins' gradients too (tests/test_conv.py).
def _case_conv2d(H, W, stride, pad, KH=3, KW=3):
    def build(rng):
        from minicap import backend
        fwd = lambda x, w, b: backend.get("conv2d_forward")(x, w, b, stride=stride, pad=pad)  # noqa: E731
        bwd = lambda dout, cache: backend.get("conv2d_backward")(dout, cache)  # noqa: E731
        return fwd, bwd, [_w(rng, 2, H, W, 3), _w(rng, KH, KW, 3, 4), _w(rng, 4)], [("x", 0), ("w", 1), ("b", 2)], {}
    return build


def _case_max_pool(size, stride):
    def build(rng):
        from minicap import backend
        fwd = lambda x: backend.get("max_pool_forward")(x, size=size, stride=stride)  # noqa: E731
        bwd = lambda dout, cache: backend.get("max_pool_backward")(dout, cache)  # noqa: E731
        return fwd, bwd, [rng.standard_normal((2, 7, 6, 3))], [("x", 0)], {}  # distinct values: no ties
    return build


def _case_global_avg_pool(rng):
    from minicap.nn import conv
    return conv.global_avg_pool_forward, conv.global_avg_pool_backward, [_w(rng, 2, 3, 4, 5)], [("x", 0)], {}


LAYER_CASES.update({
    "conv2d": _case_conv2d(5, 6, stride=1, pad=1),
    "conv2d_stride2_pad1": _case_conv2d(7, 6, stride=2, pad=1),
    "conv2d_stride2_nopad": _case_conv2d(8, 7, stride=2, pad=0, KH=3, KW=2),  # a row/column no window reaches
    "conv2d_stride3_pad2": _case_conv2d(6, 5, stride=3, pad=2),
    "max_pool": _case_max_pool(2, 2),
    "max_pool_overlapping": _case_max_pool(3, 2),
    "global_avg_pool": _case_global_avg_pool,
})


# --- visual question answering: attention driven by a question vector (issue 17) -------------------
def _case_dot_attention(rng):
    from minicap.nn import question_attention as qa
    N, L, H = 3, 5, 4
    return qa.dot_attention_forward, qa.dot_attention_backward, [_w(rng, N, L, H), _w(rng, N, L, H), _w(rng, N, H)], \
        [("m", 0), ("c", 1), ("u", 2)], {}


def _case_stacked_attention(rng):
    from minicap.nn import question_attention as qa
    N, L, H, A = 3, 5, 4, 6
    args = [_w(rng, N, L, H), _w(rng, N, H), _w(rng, H, A), _w(rng, A), _w(rng, H, A), _w(rng, A)]
    names = ["v", "u", "W_I", "b_A", "W_Q", "w_P"]
    return qa.stacked_attention_forward, qa.stacked_attention_backward, args, [(n, i) for i, n in enumerate(names)], {}


LAYER_CASES.update({
    "dot_attention": _case_dot_attention,
    "stacked_attention": _case_stacked_attention,
})


def check_case(name, seed=0):
    """Run one LAYER_CASES entry in float64. Returns {input name: max relative error}."""
    forward, backward, args, wrt, kwargs = LAYER_CASES[name](np.random.default_rng(seed))
    return check_layer(forward, backward, args, wrt, kwargs, seed=seed)
