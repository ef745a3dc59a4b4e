# %% [markdown]
# # Lesson 7 — The DRAW filterbank: reading and writing a window of an image
#
# **You will learn**
# - how five numbers become an $N \times N$ grid of Gaussian filters: a window with a centre, a stride,
#   a blur and an intensity (Gregor et al. 2015, *DRAW*, section 3);
# - how *read* ($\gamma F_y x F_x^\top$) cuts an $N \times N$ glimpse out of an image and *write*
#   ($F_y^\top w F_x / \gamma$) paints an $N \times N$ patch back onto a canvas;
# - how to derive the backward pass through the normalised Gaussians, and check it by finite
#   differences;
# - that the window is differentiable in *where* it looks: gradient descent on the five numbers moves
#   the window onto a digit and zooms in.
#
# Everything calls `minicap.nn.filterbank`, the code the DRAW and alignDRAW models use. Set
# `MINICAP_FAST=1` to shorten the optimisation at the end (that is what the tests do).

# %%
import os
import time

import matplotlib
if os.environ.get("MPLBACKEND") is None and not os.environ.get("DISPLAY"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import minicap
from minicap.data import make_captioned_mnist
from minicap.gradcheck import check_layer
from minicap.nn import filterbank as fb
from minicap.optim import Adam

FAST = os.environ.get("MINICAP_FAST") == "1"
FIGURES = os.environ.get("MINICAP_LESSON_FIGURES", str(minicap.DATA_DIR.parent / "lessons" / "figures"))
os.makedirs(FIGURES, exist_ok=True)

# %% [markdown]
# ## 1. An image to look at
#
# A 60 x 60 canvas from captioned MNIST (Lesson 9 generates these from their captions). The image
# has $A$ columns ($x$, the width) and $B$ rows ($y$, the height); pixel coordinates count from 1, as
# in the paper, so pixel $(a, b)$ is `image[b - 1, a - 1]`.

# %%
data = make_captioned_mnist("train", n=8, seed=0)
k = 6  # a two-digit example
image = data.images[k].astype(np.float64)
B, A = image.shape
x = image[None]  # (Bt=1, B, A): the layers work on batches
print(data.captions[k], "| image", image.shape)

# %% [markdown]
# ## 2. Five numbers make a window
#
# In DRAW the decoder state $h$ emits five numbers through an affine layer,
# $(\tilde g_x, \tilde g_y, \log\sigma^2, \log\tilde\delta, \log\gamma) = W h + b$, and they become
#
# $$g_x = \frac{A+1}{2}(\tilde g_x + 1), \qquad g_y = \frac{B+1}{2}(\tilde g_y + 1), \qquad
#   \delta = \frac{\max(A,B) - 1}{N - 1}\,\tilde\delta .$$
#
# $\tilde g = 0$ is the centre of the image, and $\tilde\delta = 1$ spreads the $N$ filters over
# all of it. Variances, strides and intensities must be positive, hence the logs. The grid of filter
# centres, for $i, j = 1..N$:
#
# $$\mu_x^i = g_x + (i - N/2 - 0.5)\,\delta, \qquad \mu_y^j = g_y + (j - N/2 - 0.5)\,\delta.$$
#
# Each filter is a Gaussian over the pixel coordinates, normalised so each row sums to 1:
#
# $$F_x[i, a] = \frac{1}{Z_x^i}\exp\left(-\frac{(a - \mu_x^i)^2}{2\sigma^2}\right), \qquad
#   Z_x^i = \sum_a \exp\left(-\frac{(a - \mu_x^i)^2}{2\sigma^2}\right) + \epsilon,$$
#
# and the same for $F_y$ over rows. ($\epsilon$ is *added*, not a `max(Z, eps)` guard: a max has a
# kink, and finite differences fail at kinks.) Three windows, by hand:

# %%
N = 12


def window(gx_t, gy_t, log_sigma2, log_delta_t, log_gamma=0.0):
    """The raw five numbers, as a (1, 5) batch."""
    return np.array([[gx_t, gy_t, log_sigma2, log_delta_t, log_gamma]], dtype=np.float64)


def filters(p):
    """p: (Bt, 5) -> Fx (Bt, N, A), Fy (Bt, N, B), gamma, and the window for drawing it."""
    (gx, gy, sigma2, delta, gamma), _ = fb.filter_params_forward(p, A, B, N)
    (Fx, Fy), _ = fb.filterbank_forward(gx, gy, sigma2, delta, A, B, N)
    return Fx, Fy, gamma, dict(gx=gx[0], gy=gy[0], sigma=np.sqrt(sigma2[0]), delta=delta[0])


windows = {
    "whole image, blurred": window(0.0, 0.0, np.log(2.5 ** 2), 0.0),
    "left digit, sharp": window(-0.4, 0.1, np.log(0.6 ** 2), np.log(0.3)),
    "right digit, sharp": window(0.4, 0.1, np.log(0.6 ** 2), np.log(0.3)),
}
for name, p in windows.items():
    Fx, Fy, gamma, w = filters(p)
    print(f"{name:<22} centre ({w['gx']:.1f}, {w['gy']:.1f})  stride {w['delta']:.2f} px  sigma {w['sigma']:.2f} px"
          f"  rows of Fx sum to {Fx[0].sum(axis=1).min():.4f}..{Fx[0].sum(axis=1).max():.4f}")

# %% [markdown]
# ## 3. Read and write
#
# A glimpse is two matrix products: $F_x$ ($N \times A$) pools the columns, $F_y$ ($N \times B$) the
# rows. Each glimpse pixel $(j, i)$ is a Gaussian-weighted average of the image around
# $(\mu_x^i, \mu_y^j)$, scaled by $\gamma$:
#
# $$\mathrm{read}(x) = \gamma\, F_y\, x\, F_x^\top \quad (N \times N), \qquad
#   \mathrm{write}(w) = \frac{1}{\gamma} F_y^\top\, w\, F_x \quad (B \times A).$$
#
# Write uses the transposed filters: each patch pixel is spread back over the image as a small
# Gaussian blob. `write(read(x))` shows what a window *keeps* of the image.

# %%
glimpses, rewrites = {}, {}
for name, p in windows.items():
    Fx, Fy, gamma, _ = filters(p)
    glimpses[name], _ = fb.read_forward(x, Fx, Fy, gamma)                       # (1, N, N)
    rewrites[name], _ = fb.write_forward(glimpses[name], Fx, Fy, gamma)        # (1, B, A)
    print(f"{name:<22} glimpse {glimpses[name].shape[1:]}, mean ink {glimpses[name].mean():.3f};"
          f" ||write(read(x)) - x||^2 / 2 = {0.5 * np.sum((rewrites[name] - x) ** 2):.1f}")

# %% [markdown]
# ## 4. The backward pass, and a finite-difference check
#
# **read and write** are products of matrices, so their gradients are products too. With
# $T = F_y x$ and $G = T F_x^\top$ (so $\mathrm{read} = \gamma G$), and $\bar g = \partial L/\partial\,\mathrm{read}$:
#
# $$\frac{\partial L}{\partial\gamma} = \sum \bar g \odot G, \quad \bar G = \gamma \bar g, \quad
#   \bar T = \bar G F_x, \quad \bar F_x = \bar G^\top T, \quad \bar F_y = \bar T x^\top, \quad
#   \bar x = F_y^\top \bar T.$$
#
# **The filters.** Write $K[i,a] = \exp(-(a-\mu_i)^2/2\sigma^2)$ and $F = K / Z$. The quotient rule
# gives $\bar K[i,a] = (\bar F[i,a] - \sum_{a'} \bar F[i,a'] F[i,a']) / Z_i$: a filter's mass is fixed
# at 1, so only the part of $\bar F$ that *moves mass around* matters. Then, since
# $\partial K/\partial\mu = K (a - \mu)/\sigma^2$ and $\partial K/\partial\sigma^2 = K (a-\mu)^2 / 2\sigma^4$,
#
# $$\bar\mu_i = \sum_a \bar K[i,a] K[i,a] \frac{a - \mu_i}{\sigma^2}, \qquad
#   \bar{\sigma^2} = \sum_{i,a} \bar K[i,a] K[i,a] \frac{(a-\mu_i)^2}{2\sigma^4} \;(\text{from } F_x \text{ and } F_y),$$
#
# $$\bar g_x = \sum_i \bar\mu_x^i, \qquad \bar\delta = \sum_i (i - N/2 - 0.5)(\bar\mu_x^i + \bar\mu_y^i).$$
#
# Finally the log-parameterised numbers get $\overline{\log v} = \bar v \cdot v$. Check each piece
# in float64 on a small non-square image (7 wide, 6 high: a swapped axis cannot pass):

# %%
r = np.random.default_rng(1)
Bt, As, Bs, Ns = 3, 7, 6, 4
win = [r.uniform(3, 5, Bt), r.uniform(2.5, 4, Bt), r.uniform(0.5, 1.5, Bt), r.uniform(0.5, 1.2, Bt)]
checks = {
    "filterbank": check_layer(lambda gx, gy, s2, d: fb.filterbank_forward(gx, gy, s2, d, As, Bs, Ns),
                              fb.filterbank_backward, win, [("gx", 0), ("gy", 1), ("sigma2", 2), ("delta", 3)]),
}
(Fx_s, Fy_s), _ = fb.filterbank_forward(*win, As, Bs, Ns)
gamma_s = r.uniform(0.5, 2, Bt)
checks["read"] = check_layer(fb.read_forward, fb.read_backward,
                             [r.standard_normal((Bt, Bs, As)), Fx_s.copy(), Fy_s.copy(), gamma_s.copy()],
                             [("x", 0), ("Fx", 1), ("Fy", 2), ("gamma", 3)])
checks["write"] = check_layer(fb.write_forward, fb.write_backward,
                              [r.standard_normal((Bt, Ns, Ns)), Fx_s.copy(), Fy_s.copy(), gamma_s.copy()],
                              [("w", 0), ("Fx", 1), ("Fy", 2), ("gamma", 3)])
for layer, errors in checks.items():
    print(f"{layer:<10}", "  ".join(f"d{name} {err:.1e}" for name, err in errors.items()))
assert max(e for errors in checks.values() for e in errors.values()) < 1e-6

# %% [markdown]
# ## 5. Learning where to look
#
# Chain the pieces: five numbers $p$ $\to$ window $\to$ filters $\to$ read $\to$ write, and ask the
# window to keep as much of the image as an $N \times N$ patch can:
#
# $$L(p) = \tfrac12 \lVert \mathrm{write}(\mathrm{read}(x)) - x \rVert^2 .$$
#
# (The intensity $\gamma$ cancels between read and write, so it gets no gradient here.) A window
# spread over the whole image must blur; a window on one digit can keep it sharp. The backward pass is
# the forward chain reversed; the filters feed both read and write, so their gradients **add**.


# %%
def reconstruction_forward(p, x):
    """p: (Bt, 5) raw window numbers, x: (Bt, B, A). Returns L and the cache."""
    Bt, B, A = x.shape
    (gx, gy, sigma2, delta, gamma), params_cache = fb.filter_params_forward(p, A, B, N)
    (Fx, Fy), bank_cache = fb.filterbank_forward(gx, gy, sigma2, delta, A, B, N)
    glimpse, read_cache = fb.read_forward(x, Fx, Fy, gamma)
    painted, write_cache = fb.write_forward(glimpse, Fx, Fy, gamma)
    residual = painted - x
    return 0.5 * np.sum(residual ** 2), (params_cache, bank_cache, read_cache, write_cache, residual)


def reconstruction_backward(dL, cache):
    """Returns dL/dp: (Bt, 5)."""
    params_cache, bank_cache, read_cache, write_cache, residual = cache
    dglimpse, dFx_w, dFy_w, dgamma_w = fb.write_backward(dL * residual, write_cache)
    _, dFx_r, dFy_r, dgamma_r = fb.read_backward(dglimpse, read_cache)  # x is data: its gradient is unused
    dgx, dgy, dsigma2, ddelta = fb.filterbank_backward(dFx_w + dFx_r, dFy_w + dFy_r, bank_cache)
    return fb.filter_params_backward(dgx, dgy, dsigma2, ddelta, dgamma_w + dgamma_r, params_cache)


# the whole chain, checked in front of you (x is held fixed; only p is checked)
p_check = window(-0.2, 0.1, np.log(1.5), np.log(0.4), 0.3)
errors = check_layer(lambda p: reconstruction_forward(p, x), reconstruction_backward, [p_check], [("p", 0)])
print(f"dL/dp through params -> filterbank -> read -> write: relative error {errors['p']:.1e}")
assert errors["p"] < 1e-6

# %% [markdown]
# Now descend. We start at the centre with the whole-image stride and a blur of half a stride,
# and take Adam steps on the five numbers. Two digits compete for the window; it can only take one.

# %%
steps = 60 if FAST else 400
one_digit = data.images[0:1].astype(np.float64)  # "the digit zero is at the top left of the image ."
start = window(0.0, 0.0, np.log((59 / 11 / 2) ** 2), 0.0)
runs = {}
t0 = time.time()
for label, target in (("one digit", one_digit), ("two digits", x)):
    params, opt = {"p": start.copy()}, Adam(lr=0.03)
    losses, path = [], []
    for step in range(steps):
        loss, cache = reconstruction_forward(params["p"], target)
        losses.append(loss)
        path.append(params["p"].copy())
        opt.step(params, {"p": reconstruction_backward(1.0, cache)})
    runs[label] = dict(target=target, losses=losses, path=path, p=params["p"])
    w = filters(params["p"])[3]
    print(f"{label}: L {losses[0]:.1f} -> {losses[-1]:.1f}; window centre ({w['gx']:.1f}, {w['gy']:.1f}),"
          f" stride {w['delta']:.2f} px, sigma {w['sigma']:.2f} px")
print(f"{2 * steps} Adam steps in {time.time() - t0:.1f} s")
print("ink boxes (row, col, height, width, 0-based):", data.ink_boxes[0, 0].tolist(), "and",
      data.ink_boxes[k].tolist())

# %% [markdown]
# ## 6. The picture
#
# Top row: the three hand-set windows drawn on the image (the dots are the filter centres
# $(\mu_x^i, \mu_y^j)$, the box spans them), and the glimpse each one reads. Bottom row: the filters
# $F_x$ of the blurred window as curves, `write(read(x))` for the whole-image window, and the learned
# windows (the path of the window centre over the descent, and its final box) with what they keep.


# %%
def draw_window(ax, p, color, label=None, dots=True):
    _, _, _, w = filters(p)
    mu_x = w["gx"] + fb.filter_offsets(N) * w["delta"] - 1  # pixel coordinates from 1 -> imshow from 0
    mu_y = w["gy"] + fb.filter_offsets(N) * w["delta"] - 1
    if dots:
        gx_grid, gy_grid = np.meshgrid(mu_x, mu_y)
        ax.plot(gx_grid.ravel(), gy_grid.ravel(), ".", ms=2, color=color)
    ax.add_patch(plt.Rectangle((mu_x[0], mu_y[0]), mu_x[-1] - mu_x[0], mu_y[-1] - mu_y[0], fill=False,
                               color=color, lw=1.5, label=label))


colors = ["tab:orange", "tab:red", "tab:cyan"]
fig, axes = plt.subplots(3, 4, figsize=(13, 9.6))
axes[0, 0].imshow(image, cmap="gray")
for (name, p), color in zip(windows.items(), colors):
    draw_window(axes[0, 0], p, color, name)
axes[0, 0].set_title(data.captions[k][:-2], fontsize=8)
axes[0, 0].legend(fontsize=7, loc="lower left")
for ax, ((name, glimpse), color) in zip(axes[0, 1:], zip(glimpses.items(), colors)):
    ax.imshow(glimpse[0], cmap="gray")
    ax.set_title(f"read: {name} ({N}x{N})", fontsize=9, color=color)
Fx_blur = filters(windows["whole image, blurred"])[0][0]
axes[1, 0].plot(np.arange(1, A + 1), Fx_blur.T)
axes[1, 0].set(xlabel="column a", ylabel="Fx[i, a]", title=f"the {N} filters Fx of the blurred window")
axes[1, 1].imshow(rewrites["whole image, blurred"][0], cmap="gray")
axes[1, 1].set_title("write(read(x)), whole image blurred", fontsize=9)
axes[1, 2].imshow(rewrites["left digit, sharp"][0], cmap="gray")
axes[1, 2].set_title("write(read(x)), left digit sharp", fontsize=9)
for label, run in runs.items():
    axes[1, 3].plot(run["losses"], label=label)
axes[1, 3].set(xlabel="Adam step", ylabel="L = ||write(read(x)) - x||^2 / 2", title="learning where to look")
axes[1, 3].legend(fontsize=8)
for col, (label, run) in enumerate(runs.items()):
    ax = axes[2, 2 * col]
    ax.imshow(run["target"][0], cmap="gray")
    centres = np.array([[filters(p)[3]["gx"], filters(p)[3]["gy"]] for p in run["path"]]) - 1
    ax.plot(centres[:, 0], centres[:, 1], "-", color="yellow", lw=1, label="centre during descent")
    draw_window(ax, start, "tab:blue", "start", dots=False)
    draw_window(ax, run["p"], "tab:red", "learned")
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(f"{label}: learned window", fontsize=9)
    Fx, Fy, gamma, _ = filters(run["p"])
    kept, _ = fb.write_forward(fb.read_forward(run["target"], Fx, Fy, gamma)[0], Fx, Fy, gamma)
    axes[2, 2 * col + 1].imshow(kept[0], cmap="gray")
    axes[2, 2 * col + 1].set_title(f"{label}: write(read(x))\nat the learned window", fontsize=9)
for ax in axes.ravel():
    if ax is not axes[1, 0] and ax is not axes[1, 3]:
        ax.set_xticks([])
        ax.set_yticks([])
plt.tight_layout()
plt.savefig(os.path.join(FIGURES, "07_draw_filterbank.png"), dpi=90)
print("figure:", os.path.join(FIGURES, "07_draw_filterbank.png"))

# %% [markdown]
# **What you should see.** The blurred window's glimpse is the whole image at $12 \times 12$: both
# digits, smeared (and dim: each glimpse pixel is an *average* over a wide Gaussian, mostly black).
# The sharp windows each hold one digit at roughly its own resolution. The filters of the blurred
# window are twelve overlapping bumps spread evenly over the 60 columns; the first and last are
# taller because part of their Gaussian falls off the image and the normalisation gives the rest more
# weight. Written back, the whole-image glimpse is a blurry copy; the sharp one keeps one digit crisply
# and drops the other.
#
# Gradient descent on the five numbers, from the centre of the image, walks the window onto a digit,
# shrinks the stride until the grid covers it, and narrows $\sigma$ below the stride (sharp samples
# beat blur here): the loss falls by more than half on the one-digit image. With two digits a
# $12 \times 12$ patch cannot hold both sharply, so the window commits to one, here the upper part of
# the seven (nothing here is random: every run ends there): a local minimum, because the loss is not
# convex in where the window looks. DRAW learns these five numbers from its decoder state at every
# step (Lesson 8).
