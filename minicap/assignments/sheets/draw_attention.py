# %% [markdown]
# # Assignment: DRAW's attention
#
# You write DRAW's Gaussian filterbank (forward and backward), the read and write operations, and
# the KL divergence between two diagonal Gaussians. The functions raise `NotImplementedError`: they
# are in `minicap/nn/filterbank.py` (`filter_offsets`, `_bank`, `filterbank_forward`,
# `_bank_backward`, `filterbank_backward`, `read_*`, `write_*`) and `minicap/models/aligndraw.py`
# (`gaussian_kl_*`). `python -m minicap assignment check` runs the public checks and gives your score.

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
# ## 1. The filterbank
#
# Pixel coordinates count from 1 ($a = 1..A$), filters too ($i = 1..N$):
#
# $$\mu_i = g + (i - N/2 - 0.5)\,\delta,\qquad
#   F[i, a] = \frac{\exp\big(-(a - \mu_i)^2 / (2\sigma^2)\big)}{\sum_{a'} \exp\big(-(a' - \mu_i)^2 / (2\sigma^2)\big) + \epsilon}$$
#
# Backward, with $K = \exp(\dots)$ and $F = K/Z$: $dK\,K = (dF - \sum_a dF\,F)\,F$,
# $d\mu_i = \sum_a dK\,K\,(a - \mu_i)/\sigma^2$, $d\sigma^2 = \sum_{i,a} dK\,K\,(a-\mu_i)^2/(2\sigma^4)$.

# %%
check("filterbank_forward")

# %% [markdown]
# ## 2. Read and write
#
# $$\mathrm{read}(x) = \gamma\, F_y\, x\, F_x^\top, \qquad \mathrm{write}(w) = \frac1\gamma F_y^\top w\, F_x$$

# %%
check("read_forward")
check("read_backward")
check("write_forward")

# %% [markdown]
# ## 3. The Gaussian KL
#
# $$\mathrm{KL} = \sum_j \log\sigma_p - \log\sigma_q + \frac{\sigma_q^2 + (\mu_q - \mu_p)^2}{2\sigma_p^2} - \frac12$$

# %%
check("gaussian_kl_forward")

# %% [markdown]
# ## 4. A glimpse with your filterbank
#
# A 3 x 3 grid of filters over a digit, and what `read` sees through it.

# %%
try:
    import minicap
    from minicap.nn import filterbank as fb
    with np.load(minicap.DATA_DIR / "mnist_5k.npz") as data:
        image = data["images"][0] / 255.0
    x = image[None].astype(np.float64)
    (Fx, Fy), _ = fb.filterbank_forward(np.array([14.5]), np.array([14.5]), np.array([1.0]), np.array([4.0]), 28, 28, 5)
    glimpse, _ = fb.read_forward(x, Fx, Fy, np.array([1.0]))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(4, 2))
    axes[0].imshow(image, cmap="gray")
    axes[1].imshow(glimpse[0], cmap="gray")
    for ax in axes:
        ax.axis("off")
    fig.savefig(FOLDER / "glimpse.png", dpi=100)
    print("figure:", FOLDER / "glimpse.png")
except NotImplementedError as err:
    print("not yet:", err)
