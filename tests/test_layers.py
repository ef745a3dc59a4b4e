"""Every layer: float64 gradient check of every input, and forward values from the equations."""
import numpy as np
import pytest

from minicap import nn
from minicap.gradcheck_cases import LAYER_CASES, TOLERANCE, check_case


@pytest.mark.parametrize("name", list(LAYER_CASES))
def test_gradient_of_every_input(name):
    errors = check_case(name, seed=1)
    assert errors, "the case checked no input"
    for input_name, err in errors.items():
        assert err < TOLERANCE, f"{name}: gradient of {input_name} has relative error {err:.2e}"


def test_affine_forward_values():
    x = np.array([[1.0, 2.0]])
    W = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 1.0]])
    out, _ = nn.affine_forward(x, W, np.array([0.1, 0.2, 0.3]))
    np.testing.assert_allclose(out, [[2.1, 4.2, 1.3]])


def test_embedding_pad_is_zero_and_gets_no_gradient():
    W = np.arange(12.0).reshape(4, 3)
    idx = np.array([[1, 0, 1]])
    out, cache = nn.embedding_forward(idx, W, null_idx=0)
    np.testing.assert_array_equal(out[0, 0], W[1])
    np.testing.assert_array_equal(out[0, 1], 0)
    dW = nn.embedding_backward(np.ones_like(out), cache)
    np.testing.assert_array_equal(dW[1], [2, 2, 2])  # repeated index accumulates
    np.testing.assert_array_equal(dW[0], 0)


def test_sigmoid_is_stable_and_exact():
    x = np.array([-1000.0, -1.0, 0.0, 2.0, 1000.0])
    out, _ = nn.sigmoid_forward(x)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[1:4], 1 / (1 + np.exp(-x[1:4])))
    assert out[0] == 0.0 and out[-1] == 1.0


def test_dropout_keeps_expectation_and_is_identity_at_test_time():
    rng = np.random.default_rng(0)
    x = np.ones((200, 200))
    out, _ = nn.dropout_forward(x, 0.3, rng)
    assert abs(out.mean() - 1) < 0.02
    assert abs((out == 0).mean() - 0.3) < 0.02
    out_test, _ = nn.dropout_forward(x, 0.3, rng, train=False)
    assert out_test is x
    with pytest.raises(ValueError, match="dropout probability"):
        nn.dropout_forward(x, 1.0, rng)


def test_rnn_step_matches_equation():
    rng = np.random.default_rng(0)
    x, h, Wx, Wh, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), \
        rng.standard_normal((3, 4)), rng.standard_normal((4, 4)), rng.standard_normal(4)
    out, _ = nn.rnn_step_forward(x, h, Wx, Wh, b)
    for n in range(2):
        for j in range(4):
            a = sum(x[n, d] * Wx[d, j] for d in range(3)) + sum(h[n, k] * Wh[k, j] for k in range(4)) + b[j]
            assert out[n, j] == pytest.approx(np.tanh(a))


def test_lstm_step_matches_equations_for_one_unit():
    x, h, c = np.array([[0.5]]), np.array([[-0.3]]), np.array([[0.8]])
    Wx = np.array([[0.1, 0.2, 0.3, 0.4]])
    Wh = np.array([[-0.5, 0.6, -0.7, 0.8]])
    b = np.array([0.01, 0.02, 0.03, 0.04])
    (next_h, next_c), _ = nn.lstm_step_forward(x, h, c, Wx, Wh, b)
    a = 0.5 * Wx[0] - 0.3 * Wh[0] + b
    s = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    i, f, o, g = s(a[0]), s(a[1]), s(a[2]), np.tanh(a[3])
    assert next_c[0, 0] == pytest.approx(f * 0.8 + i * g)
    assert next_h[0, 0] == pytest.approx(o * np.tanh(f * 0.8 + i * g))


def test_lstm_mask_carries_state_and_zeroes_padding():
    rng = np.random.default_rng(0)
    N, T, D, H = 2, 4, 3, 5
    x = rng.standard_normal((N, T, D))
    params = rng.standard_normal((D, 4 * H)), rng.standard_normal((H, 4 * H)), rng.standard_normal(4 * H)
    h0, c0 = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]])
    (h, c_last), _ = nn.lstm_forward(x, h0, c0, *params, mask=mask)
    (h_short, c_short), _ = nn.lstm_forward(x[1:, :2], h0[1:], c0[1:], *params)
    np.testing.assert_allclose(h[1, :2], h_short[0])
    np.testing.assert_allclose(c_last[1], c_short[0])
    np.testing.assert_array_equal(h[1, 2:], 0)


def test_bilstm_backward_direction_reads_each_caption_reversed_within_its_length():
    rng = np.random.default_rng(0)
    D, H = 3, 4
    Wf = [rng.standard_normal(s) for s in ((D, 4 * H), (H, 4 * H), (4 * H,))]
    Wb = [rng.standard_normal(s) for s in ((D, 4 * H), (H, 4 * H), (4 * H,))]
    x = rng.standard_normal((2, 5, D))
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    out, _ = nn.bilstm_forward(x, mask, *Wf, *Wb)
    # the backward direction at word 0 of caption 1 has read words 2, 1, 0 (its length is 3)
    zeros = np.zeros((1, H))
    (h_rev, _), _ = nn.lstm_forward(x[1:, [2, 1, 0]], zeros, zeros, *Wb)
    np.testing.assert_allclose(out[1, 0, H:], h_rev[0, 2])
    np.testing.assert_allclose(out[1, 2, H:], h_rev[0, 0])
    np.testing.assert_array_equal(out[1, 3:], 0)
    with pytest.raises(ValueError, match="ones followed by zeros"):
        nn.bilstm_forward(x, np.array([[1, 0, 1, 1, 1], [1, 1, 1, 0, 0]]), *Wf, *Wb)


def test_reverse_padded():
    x = np.arange(10).reshape(2, 5)
    np.testing.assert_array_equal(nn.reverse_padded(x, [5, 3]), [[4, 3, 2, 1, 0], [7, 6, 5, 8, 9]])


def test_temporal_softmax_loss_value_and_mask():
    x = np.zeros((1, 2, 4))
    x[0, 0] = [2.0, 0.0, 0.0, 0.0]
    y = np.array([[0, 3]])
    loss, _ = nn.temporal_softmax_loss_forward(x, y, np.array([[1, 0]]))
    assert loss == pytest.approx(-np.log(np.exp(2) / (np.exp(2) + 3)))
    big = np.array([[[1000.0, -1000.0]]])  # stable log-softmax: no overflow
    loss, _ = nn.temporal_softmax_loss_forward(big, np.array([[1]]), np.array([[1]]))
    assert loss == pytest.approx(2000.0)


def test_soft_attention_matches_equations():
    rng = np.random.default_rng(0)
    N, L, D, A, H = 2, 3, 4, 5, 6
    a, a_proj, h = rng.standard_normal((N, L, D)), rng.standard_normal((N, L, A)), rng.standard_normal((N, H))
    Wh, w, Wb, bb = rng.standard_normal((H, A)), rng.standard_normal(A), rng.standard_normal((H, 1)), rng.standard_normal(1)
    (z, alpha), _ = nn.soft_attention_forward(a, a_proj, h, Wh, w, Wb, bb)
    for n in range(N):
        e = np.array([w @ np.tanh(a_proj[n, i] + h[n] @ Wh) for i in range(L)])
        al = np.exp(e) / np.exp(e).sum()
        beta = 1 / (1 + np.exp(-(h[n] @ Wb[:, 0] + bb[0])))
        np.testing.assert_allclose(alpha[n], al)
        np.testing.assert_allclose(z[n], beta * (al[:, None] * a[n]).sum(0))


def test_soft_attention_mask_gives_padding_zero_weight():
    rng = np.random.default_rng(0)
    a, a_proj, h = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 5)), rng.standard_normal((2, 6))
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]])
    (_, alpha), _ = nn.soft_attention_forward(a, a_proj, h, rng.standard_normal((6, 5)), rng.standard_normal(5), mask=mask)
    np.testing.assert_allclose(alpha.sum(axis=1), 1)
    np.testing.assert_array_equal(alpha[1, 2:], 0)


def test_doubly_stochastic_penalty_ignores_padded_steps():
    alphas = np.full((1, 3, 2), 0.5)
    penalty, _ = nn.doubly_stochastic_penalty_forward(alphas, np.array([[1, 1, 0]]))
    assert penalty == pytest.approx(0.0)  # two real steps of 0.5 each sum to one per location
    penalty, _ = nn.doubly_stochastic_penalty_forward(alphas, np.array([[1, 1, 1]]))
    assert penalty == pytest.approx(2 * 0.5 ** 2)


def test_deep_output_matches_equation():
    rng = np.random.default_rng(0)
    emb, h, z = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 5))
    Lh, Lz, Lo, bo = rng.standard_normal((4, 3)), rng.standard_normal((5, 3)), rng.standard_normal((3, 7)), rng.standard_normal(7)
    logits, _ = nn.deep_output_forward(emb, h, z, Lh, Lz, Lo, bo)
    np.testing.assert_allclose(logits, np.tanh(emb + h @ Lh + z @ Lz) @ Lo + bo)


def test_lstm_weight_grads_over_steps_equal_the_sum_of_each_steps():
    """lstm_weight_grads (one product over all steps) gives the sum of lstm_step_backward's dWx, dWh, db."""
    rng = np.random.default_rng(7)
    N, D, H, T = 3, 4, 5, 4
    Wx, Wh, b = rng.standard_normal((D, 4 * H)), rng.standard_normal((H, 4 * H)), rng.standard_normal(4 * H)
    h, c = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    caches, das, summed = [], [], [0, 0, 0]
    for _ in range(T):
        (h, c), cache = nn.lstm_step_forward(rng.standard_normal((N, D)), h, c, Wx, Wh, b)
        dh, dc = rng.standard_normal((N, H)), rng.standard_normal((N, H))
        caches.append(cache)
        das.append(nn.lstm_step_gate_grads(dh, dc, cache)[0])
        summed = [s + g for s, g in zip(summed, nn.lstm_step_backward(dh, dc, cache)[3:])]
    for got, want in zip(nn.lstm_weight_grads(caches, das), summed):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
