# %% [markdown]
# # Assignment: captioning with attention (Show, Attend and Tell)
#
# You write soft attention with its beta gate (forward and backward), the doubly stochastic
# penalty, one step of the captioner's decoder, and beam search. The functions raise
# `NotImplementedError`: they are in `minicap/nn/attention.py`, `minicap/models/captioner.py`
# (`step_forward`) and `minicap/decode.py` (`beam_search`). Each docstring gives the shapes.
# `python -m minicap assignment check` runs the public checks and gives your score; hidden tests
# check the same functions on other inputs (masked attention among them).

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
# ## 1. Soft attention with the gate
#
# $$e_i = w^\top \tanh(W_a a_i + b + W_h h),\quad \alpha = \mathrm{softmax}(e),\quad
#   c = \sum_i \alpha_i a_i,\quad \beta = \sigma(h W_\beta + b_\beta),\quad z = \beta c$$
#
# Masked locations get $e_i = -\infty$ (weight exactly 0). Backward: $dc = \beta\,dz$,
# $d\beta = dz \cdot c$, then $d\alpha_i \mathrel{+}= dc \cdot a_i$, and through the softmax
# $de = \alpha \odot (d\alpha - \sum_i \alpha_i d\alpha_i)$.

# %%
check("soft_attention_forward")
check("soft_attention_backward")

# %% [markdown]
# ## 2. The doubly stochastic penalty
#
# $$P = \frac1N \sum_n \sum_i \Big(1 - \sum_t m_{nt}\, \alpha_{nti}\Big)^2$$
#
# Padded steps ($m_{nt} = 0$) must stay out of the sum over $t$ (the original code did not mask them).

# %%
check("doubly_stochastic_penalty_forward")

# %% [markdown]
# ## 3. One decoder step
#
# From $h_{t-1}$: attend, gate ($z_t = \beta c_t$), then one LSTM step on $[x_t; z_t]$
# (`backend.get("soft_attention_forward")` and `backend.get("lstm_step_forward")` give you the layers).

# %%
check("decoder_step")

# %% [markdown]
# ## 4. Beam search
#
# Keep the $k$ best partial sequences: every candidate is a beam extended by one token, scored by
# $\log p(\text{beam}) + \log p(\text{token} \mid \text{beam})$; a finished beam has one continuation,
# itself, at no cost. Return something even when no beam reaches `<END>`.

# %%
beam_ok = check("beam_search")

# %% [markdown]
# ## 5. What your attention does
#
# With your layers, one step of a random captioner: the attention weights over the 4 x 4 grid.

# %%
try:
    from minicap.assignments.cases import CASES
    case = CASES["decoder_step"](np.random.default_rng(0))
    (h, c, z, alpha), _ = case.forward(*case.args)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(alpha), figsize=(2 * len(alpha), 2))
    for ax, a in zip(axes, alpha):
        side = int(round(np.sqrt(a.size)))
        ax.imshow(a.reshape(side, side), cmap="gray", vmin=0)
        ax.axis("off")
    fig.savefig(FOLDER / "attention_weights.png", dpi=100)
    print("alpha sums to", alpha.sum(axis=1), "- figure:", FOLDER / "attention_weights.png")
except NotImplementedError as err:
    print("not yet:", err)
