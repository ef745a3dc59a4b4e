# %% [markdown]
# # Lesson 2 — The LSTM, and why the additive cell update helps
#
# **You will learn**
# - the LSTM step: input, forget and output gates and the candidate cell;
# - how to derive its backward pass, and check it by finite differences;
# - why the gradient survives many steps: $\partial c_t / \partial c_{t-1} = f_t$, a gate, not a
#   squashing matrix product;
# - measured: $\|\partial L/\partial h_0\|$ over time for the LSTM next to the vanilla RNN of Lesson 1,
#   and the two trained on the same text with the same budget.
#
# Set `MINICAP_FAST=1` to shrink the training loops.

# %%
import os
import time

import matplotlib
if not os.environ.get("DISPLAY"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import minicap
from minicap import nn
from minicap.gradcheck import check_layer
from minicap.optim import Adam, clip_by_global_norm

FAST = os.environ.get("MINICAP_FAST") == "1"
FIGURES = os.environ.get("MINICAP_LESSON_FIGURES", str(minicap.DATA_DIR.parent / "lessons" / "figures"))
os.makedirs(FIGURES, exist_ok=True)
SEED = int(os.environ.get("MINICAP_LESSON_SEED", "0"))  # the text's ranges: seeds 0, 1, 2

# %% [markdown]
# ## 1. The step
#
# With $a = W_x^\top x_t + W_h^\top h_{t-1} + b$ split into four blocks of $H$:
#
# $$i = \sigma(a_i),\quad f = \sigma(a_f),\quad o = \sigma(a_o),\quad g = \tanh(a_g)$$
# $$c_t = f \odot c_{t-1} + i \odot g, \qquad h_t = o \odot \tanh(c_t).$$
#
# **Backward.** Given $\partial L/\partial h_t$ and $\partial L/\partial c_t$ (from the next step):
#
# $$\delta c = \frac{\partial L}{\partial c_t} + \frac{\partial L}{\partial h_t} \odot o \odot (1 - \tanh^2 c_t)$$
# $$\frac{\partial L}{\partial c_{t-1}} = \delta c \odot f, \quad
#   \delta i = \delta c \odot g,\quad \delta f = \delta c \odot c_{t-1},\quad
#   \delta o = \frac{\partial L}{\partial h_t} \odot \tanh c_t,\quad \delta g = \delta c \odot i$$
#
# then through each nonlinearity ($\sigma' = \sigma(1-\sigma)$, $\tanh' = 1 - \tanh^2$) and the affine
# map. `minicap.nn.lstm_step_backward` is exactly these lines. Check it:

# %%
r = np.random.default_rng(1)
N, D, H = 3, 4, 5
args = [r.standard_normal((N, D)), r.standard_normal((N, H)), r.standard_normal((N, H)),
        r.standard_normal((D, 4 * H)), r.standard_normal((H, 4 * H)), r.standard_normal(4 * H)]
errors = check_layer(nn.lstm_step_forward, nn.lstm_step_backward, args,
                     [("x", 0), ("prev_h", 1), ("prev_c", 2), ("Wx", 3), ("Wh", 4), ("b", 5)])
for name, err in errors.items():
    print(f"d{name:<7} relative error {err:.1e}")
assert max(errors.values()) < 1e-6

# %% [markdown]
# ## 2. Gradient norms through time
#
# As in Lesson 1, put a loss on the last state only and measure $\|\partial L/\partial h_0\|$ as the
# distance $T$ grows. For the LSTM the path through the cells multiplies by $f_t$ at each step:
# with the forget-gate bias at $b_f$, $f \approx \sigma(b_f)$, so a bias of 3 keeps
# $f \approx 0.95$ and the gradient decays slowly. (Initialising $b_f$ to 1 or more is a standard trick.)

# %%
H, D = 100, 10


def rnn_grad_norm(T, rng, rho=0.9):
    W = rng.standard_normal((H, H))
    W *= rho / np.max(np.abs(np.linalg.eigvals(W)))
    x = rng.standard_normal((1, T, D))
    h, cache = nn.rnn_forward(x, np.zeros((1, H)), rng.standard_normal((D, H)) * 0.1, W, np.zeros(H))
    dh = np.zeros_like(h)
    dh[:, -1] = 1 / np.sqrt(H)
    return np.linalg.norm(nn.rnn_backward(dh, cache)[1])


def lstm_grad_norm(T, rng, forget_bias):
    Wx = rng.standard_normal((D, 4 * H)) * 0.1
    Wh = rng.standard_normal((H, 4 * H)) / np.sqrt(H)
    b = np.zeros(4 * H)
    b[H:2 * H] = forget_bias
    x = rng.standard_normal((1, T, D))
    zeros = np.zeros((1, H))
    (h, _), cache = nn.lstm_forward(x, zeros, zeros, Wx, Wh, b)
    dh = np.zeros_like(h)
    dh[:, -1] = 1 / np.sqrt(H)
    return np.linalg.norm(nn.lstm_backward(dh, np.zeros((1, H)), cache)[1])


Ts = np.arange(1, 61)
norms = {"vanilla RNN, rho = 0.9": [rnn_grad_norm(T, np.random.default_rng(T)) for T in Ts]}
for fb in (0.0, 1.0, 3.0):
    norms[f"LSTM, forget bias {fb:g}"] = [lstm_grad_norm(T, np.random.default_rng(T), fb) for T in Ts]
for name, values in norms.items():
    print(f"{name:<24} ||dL/dh_0|| at T=10: {values[9]:.1e}   T=60: {values[-1]:.1e}")

# %% [markdown]
# ## 3. The same text, the same budget
#
# Train a character RNN and a character LSTM (same hidden size, same steps, Adam) on *Macbeth* and
# compare the loss per character. The LSTM code is the RNN code with `lstm_forward` in place of
# `rnn_forward`.

# %%
text = (minicap.DATA_DIR / "tiny_text.txt").read_text(encoding="utf-8")
chars = sorted(set(text))
V = len(chars)
data = np.array([chars.index(c) for c in text[:60000]] if FAST else [chars.index(c) for c in text])
HID, E, SEQ, BATCH = 128, 32, 32, 16
steps = 40 if FAST else 1500


def init(kind, rng):
    gates = 4 if kind == "lstm" else 1
    p = {"embed": rng.standard_normal((V, E)) * 0.1, "Wx": rng.standard_normal((E, gates * HID)) / np.sqrt(E),
         "Wh": rng.standard_normal((HID, gates * HID)) / np.sqrt(HID), "b": np.zeros(gates * HID),
         "Wy": rng.standard_normal((HID, V)) / np.sqrt(HID), "by": np.zeros(V)}
    if kind == "lstm":
        p["b"][HID:2 * HID] = 1.0  # forget bias 1
    return p


def loss_and_grads(kind, p, inputs, targets):
    x, c_emb = nn.embedding_forward(inputs, p["embed"])
    h0 = np.zeros((inputs.shape[0], HID))
    if kind == "lstm":
        (h, _), c_seq = nn.lstm_forward(x, h0, h0, p["Wx"], p["Wh"], p["b"])
    else:
        h, c_seq = nn.rnn_forward(x, h0, p["Wx"], p["Wh"], p["b"])
    s, c_out = nn.temporal_affine_forward(h, p["Wy"], p["by"])
    loss, c_loss = nn.temporal_softmax_loss_forward(s, targets, np.ones_like(targets))
    dh, dWy, dby = nn.temporal_affine_backward(nn.temporal_softmax_loss_backward(1.0, c_loss), c_out)
    if kind == "lstm":
        dx, _, _, dWx, dWh, db = nn.lstm_backward(dh, np.zeros_like(h0), c_seq)
    else:
        dx, _, dWx, dWh, db = nn.rnn_backward(dh, c_seq)
    return loss / targets.shape[1], {"embed": nn.embedding_backward(dx, c_emb), "Wx": dWx, "Wh": dWh,
                                     "b": db, "Wy": dWy, "by": dby}


curves = {}
for kind in ("rnn", "lstm"):
    rng = np.random.default_rng(SEED)
    p, opt, curve, t0 = init(kind, rng), Adam(lr=3e-3), [], time.time()
    for step in range(steps):
        starts = rng.integers(0, len(data) - SEQ - 1, size=BATCH)
        chunk = data[starts[:, None] + np.arange(SEQ + 1)]
        loss, grads = loss_and_grads(kind, p, chunk[:, :-1], chunk[:, 1:])
        clip_by_global_norm(grads, 5.0)
        opt.step(p, grads)
        curve.append(loss)
    curves[kind] = curve
    print(f"{kind}: {steps} steps in {time.time() - t0:.0f} s, final loss per character {np.mean(curve[-50:]):.3f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
for name, values in norms.items():
    axes[0].semilogy(Ts, values, label=name)
axes[0].set(xlabel="T (steps between loss and h_0)", ylabel="||dL/dh_0||", title="gradient norm through time")
axes[0].legend(fontsize=8)
for kind, curve in curves.items():
    k = min(20, len(curve))
    axes[1].plot(np.convolve(curve, np.ones(k) / k, mode="valid"), label=kind.upper())
axes[1].set(xlabel="step", ylabel="loss per character", title="same text, same budget")
axes[1].legend()
plt.tight_layout()
plt.savefig(os.path.join(FIGURES, "02_lstm.png"), dpi=100)
print("figure:", os.path.join(FIGURES, "02_lstm.png"))

# %% [markdown]
# **What you should see.** The vanilla RNN's gradient falls by orders of magnitude within a few tens
# of steps. The LSTM is not magic: with a forget bias of 0, $f \approx 0.5$ and its gradient dies even
# faster. With a forget bias of 1 it lasts much longer, and with 3 it barely decays over 60 steps:
# the additive path $c_{t-1} \to c_t$ scaled by $f$ carries it. Trained on the same text with the same
# budget, the two curves are close: with chunks of 32 characters few dependencies reach far enough
# back to tell them apart. Over seeds 0, 1, 2 the RNN ended at 1.83-1.84 nats per character and the
# LSTM at 1.80-1.87, ahead in one run and behind in two: at this budget neither is reliably better
# (the LSTM, with four times the weights per unit, also starts more slowly). The LSTM's advantage
# grows with the distance the model must remember — try SEQ = 100.
