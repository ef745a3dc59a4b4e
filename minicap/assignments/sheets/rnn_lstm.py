# %% [markdown]
# # Assignment: an RNN and an LSTM language model, by hand
#
# You write the forward and backward passes of the vanilla RNN (one step, then a whole sequence),
# of one LSTM step, and of the masked temporal softmax loss; then you train a character-level
# language model with them (min-char-rnn, and its LSTM version).
#
# The functions to write raise `NotImplementedError`: they are in `minicap/nn/rnn.py`,
# `minicap/nn/lstm.py` and `minicap/nn/temporal.py`. Each docstring gives the shapes.
# Run this sheet as a script (`python rnn_lstm.py`) or open it as a notebook; every check cell
# prints what is wrong and where to look. `python -m minicap assignment check` runs all the public
# checks and gives your score. Hidden tests check the same functions on other inputs.

# %%
import functools
from pathlib import Path

import numpy as np

from minicap.assignments.check import check_one

try:
    FOLDER = Path(__file__).resolve().parent
except NameError:   # in a notebook
    FOLDER = Path.cwd()

check = functools.partial(check_one, FOLDER)   # check("name"): run one public check, print its result

# %% [markdown]
# ## 1. The RNN step
#
# $$h_t = \tanh(x_t W_x + h_{t-1} W_h + b)$$
#
# Backward, with $a = x W_x + h_{t-1} W_h + b$: $\;da = dh_t \odot (1 - h_t^2)$, then the affine rule:
# $dx = da\,W_x^\top$, $dh_{t-1} = da\,W_h^\top$, $dW_x = x^\top da$, $dW_h = h_{t-1}^\top da$, $db = \sum_n da$.
# Check each gradient's shape against its parameter's: a transposed weight gradient is the classic bug.

# %%
check("rnn_step_forward")
check("rnn_step_backward")

# %% [markdown]
# ## 2. The sequence: backpropagation through time
#
# `rnn_forward` runs the step for $t = 0..T-1$. In `rnn_backward` the hidden state $h_t$ feeds both
# the loss at $t$ and the step at $t+1$, so its gradient is `dh[:, t]` plus the one coming back from
# $t+1$; the weights are shared, so their gradients are summed over $t$.

# %%
check("rnn_forward")

# %% [markdown]
# ## 3. The LSTM step
#
# With $a = x W_x + h_{t-1} W_h + b$ split into four blocks of $H$ in the order i, f, o, g:
#
# $$i = \sigma(a_i),\; f = \sigma(a_f),\; o = \sigma(a_o),\; g = \tanh(a_g),\qquad
#   c_t = f \odot c_{t-1} + i \odot g,\qquad h_t = o \odot \tanh(c_t)$$
#
# Backward: $dc = dc_t + dh_t \odot o \odot (1 - \tanh^2 c_t)$, then
# $di = dc\, g$, $\;df = dc\, c_{t-1}$ (the forget gate's term), $\;do = dh_t \tanh c_t$, $\;dg = dc\, i$,
# $\;dc_{t-1} = dc\, f$; through the nonlinearities $da_{i,f,o} = d\{i,f,o\}\,s(1-s)$, $da_g = dg(1-g^2)$.
# `lstm_step_gate_grads` returns $da$ and $dc_{t-1}$; `lstm_step_backward` adds the affine rule.

# %%
check("lstm_step_forward")
check("lstm_step_backward")

# %% [markdown]
# ## 4. The temporal softmax loss
#
# $$L = -\frac1N \sum_{n,t} m_{nt} \log \mathrm{softmax}(x_{nt})_{y_{nt}}, \qquad
#   \frac{\partial L}{\partial x_{nt}} = \frac{m_{nt}}{N}\big(\mathrm{softmax}(x_{nt}) - \mathrm{onehot}(y_{nt})\big)$$
#
# Subtract each row's maximum before `exp` (or use `log_softmax`, given in the same file).

# %%
loss_ok = check("temporal_softmax_loss_forward")

# %% [markdown]
# ## 5. Train min-char-rnn and the LSTM language model with your layers
#
# When the checks pass, both models learn a short text; the figure shows their loss (nats per
# character) falling. minicap's own models call exactly the functions you wrote.

# %%
from minicap.models import charrnn  # noqa: E402
from minicap.optim import Adam  # noqa: E402

text = "the quick brown fox jumps over the lazy dog. " * 40
chars = sorted(set(text))
ids = np.array([chars.index(ch) for ch in text])
T, curves = 25, {}
try:
    for model in ("rnn", "lstm"):
        rng = np.random.default_rng(0)
        init = charrnn.rnn_init if model == "rnn" else charrnn.lstm_init
        step = charrnn.rnn_forward_backward if model == "rnn" else charrnn.lstm_forward_backward
        zero = charrnn.rnn_zero_state if model == "rnn" else charrnn.lstm_zero_state
        params = init(len(chars), rng, hidden_size=32) if model == "rnn" else \
            init(len(chars), rng, hidden_size=32, embed_size=16)
        opt, state, losses = Adam(lr=0.01), zero(params, 1), []
        for i in range(300):
            start = (i * T) % (len(ids) - T - 1)
            x, y = ids[None, start:start + T], ids[None, start + 1:start + T + 1]
            loss, grads, state, _ = step(params, x, y, state)
            opt.step(params, grads)
            losses.append(loss / T)
        curves[model] = losses
        print(f"{model}: loss per character {losses[0]:.2f} -> {np.mean(losses[-20:]):.2f}")
except NotImplementedError as err:
    print("not yet:", err)

# %%
if curves:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3))
    for model, losses in curves.items():
        ax.plot(losses, label=model)
    ax.set_xlabel("step")
    ax.set_ylabel("nats per character")
    ax.legend()
    fig.tight_layout()
    fig.savefig(FOLDER / "rnn_lstm_loss.png", dpi=100)
    print("figure:", FOLDER / "rnn_lstm_loss.png")
