# %% [markdown]
# # Lesson 8 — DRAW: a variational bound, drawn glimpse by glimpse
#
# **You will learn**
# - the variational lower bound on $\log p(x)$, and why maximising it trains both an encoder and a
#   decoder;
# - the reparameterisation trick and the closed-form KL divergence (the $-1$ people forget),
#   checked by Monte Carlo;
# - how DRAW (Gregor et al. 2015) turns the bound into a *sequence*: a canvas built over $T$ steps,
#   with the filterbank of Lesson 7 choosing where to read and where to write;
# - the backward pass through it all, checked by finite differences;
# - to watch a trained DRAW draw, step by step (a figure and an animated GIF).
#
# Everything calls `minicap.models.draw`. Set `MINICAP_FAST=1` to shrink the training.

# %%
import functools
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: one thread is faster than several
os.environ.setdefault("NUMBA_NUM_THREADS", "1")     # (measured 10x+ on a busy 2-core machine)
import matplotlib
if os.environ.get("MPLBACKEND") is None and not os.environ.get("DISPLAY"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import minicap
from minicap import backend
from minicap.data.mnist import load_mnist_5k
from minicap.experiments import train_bound_model
from minicap.gradcheck import check_layer, check_model
from minicap.models import draw
from minicap.viz import canvas_animation, window_box

FAST = os.environ.get("MINICAP_FAST") == "1"
FIGURES = os.environ.get("MINICAP_LESSON_FIGURES", str(minicap.DATA_DIR.parent / "lessons" / "figures"))
os.makedirs(FIGURES, exist_ok=True)
SEED = int(os.environ.get("MINICAP_LESSON_SEED", "0"))  # training seed; the text's ranges are over seeds 0, 1, 2

# %% [markdown]
# ## 1. The bound
#
# A latent-variable model generates an image $x$ from a code $z$: $p(x) = \int p(z)\, p(x \mid z)\, dz$,
# an integral we cannot compute. Bring in an *encoder* $q(z \mid x)$, any distribution we like, and
# use Jensen's inequality ($\log$ is concave):
#
# $$\log p(x) = \log \mathbb{E}_{q(z \mid x)}\Big[\frac{p(z)\, p(x \mid z)}{q(z \mid x)}\Big]
#   \;\ge\; \mathbb{E}_{q}\big[\log p(x \mid z)\big] - \mathrm{KL}\big(q(z \mid x)\,\|\,p(z)\big).$$
#
# The gap is $\mathrm{KL}(q(z \mid x) \| p(z \mid x))$: the bound is tight when the encoder matches the
# true posterior. So we minimise the **negative bound**, in nats per image,
#
# $$\mathcal{L} = \underbrace{-\mathbb{E}_q \log p(x \mid z)}_{L^x:\ \text{reconstruction}}
#   + \underbrace{\mathrm{KL}(q \| p)}_{L^z:\ \text{the cost of the code}} \;\ge\; -\log p(x),$$
#
# over the encoder and the decoder together: a **variational auto-encoder**.
#
# **The KL, in closed form.** With $q = \mathcal{N}(\mu, \mathrm{diag}\,\sigma^2)$ and
# $p = \mathcal{N}(0, I)$,
#
# $$\mathrm{KL}(q \| p) = \tfrac12 \sum_j \big(\mu_j^2 + \sigma_j^2 - 2\log\sigma_j - 1\big),$$
#
# zero exactly when $q = p$ (that is what the $-1$ is for). Check it against a Monte Carlo estimate of
# $\mathbb{E}_q[\log q(z) - \log p(z)]$:

# %%
r = np.random.default_rng(0)
mu, log_sigma = r.standard_normal(5), 0.5 * r.standard_normal(5)
sigma = np.exp(log_sigma)
closed = 0.5 * np.sum(mu ** 2 + sigma ** 2 - 2 * log_sigma - 1)
z = mu + sigma * r.standard_normal((200000, 5))
log_q = np.sum(-0.5 * ((z - mu) / sigma) ** 2 - log_sigma - 0.5 * np.log(2 * np.pi), axis=1)
log_p = np.sum(-0.5 * z ** 2 - 0.5 * np.log(2 * np.pi), axis=1)
print(f"KL closed form {closed:.4f}   Monte Carlo {np.mean(log_q - log_p):.4f} +- {np.std(log_q - log_p) / np.sqrt(len(z)):.4f}")

# %% [markdown]
# **The reparameterisation trick.** $\mathbb{E}_q \log p(x \mid z)$ depends on the encoder through the
# distribution we sample from. Write the sample as a function of the parameters and of noise that does
# not depend on them, $z = \mu + \sigma \odot \epsilon$ with $\epsilon \sim \mathcal{N}(0, I)$, and the
# gradient goes straight through: $\partial z / \partial \mu = 1$, $\partial z / \partial \sigma = \epsilon$.
# (Compare Lesson 5: a *discrete* choice has no such path, hence REINFORCE.)
#
# `draw.sample_latent_forward` computes $\mu$ and $\log\sigma$ from the encoder state, $z$, and the KL.
# Its backward pass, with $\bar z$ from the decoder and $\overline{\mathrm{KL}}$ from the loss:
#
# $$\bar\mu = \bar z + \overline{\mathrm{KL}}\,\mu, \qquad
#   \overline{\log\sigma} = (\bar z \odot \epsilon + \overline{\mathrm{KL}}\,\sigma)\odot\sigma - \overline{\mathrm{KL}} .$$

# %%
Bt, E, Z = 3, 4, 2
args = [r.standard_normal((Bt, E)), r.standard_normal((Bt, Z)), r.standard_normal((E, Z)), r.standard_normal(Z),
        0.5 * r.standard_normal((E, Z)), 0.3 * r.standard_normal(Z)]
errors = check_layer(draw.sample_latent_forward, draw.sample_latent_backward, args,
                     [("h_enc", 0), ("mu_W", 2), ("mu_b", 3), ("ls_W", 4), ("ls_b", 5)])
print("latent layer:", "  ".join(f"d{name} {err:.0e}" for name, err in errors.items()))
assert max(errors.values()) < 1e-6

# %% [markdown]
# ## 2. DRAW: the bound as a sequence
#
# DRAW builds the image on a **canvas** $c_t$ (logits of the pixels) over $T$ steps, and draws a
# new latent $z_t$ at each. With $\sigma$ the logistic sigmoid:
#
# $$\hat x_t = x - \sigma(c_{t-1}) \qquad \text{the error image: what is still missing}$$
# $$r_t = \mathrm{read}(x, \hat x_t, h^{dec}_{t-1}) \qquad \text{two } N \times N \text{ glimpses, window from the decoder}$$
# $$h^{enc}_t = \mathrm{LSTM}^{enc}([r_t, h^{dec}_{t-1}], h^{enc}_{t-1}), \qquad
#   z_t \sim q(Z_t \mid h^{enc}_t) = \mathcal{N}(\mu_t, \sigma_t^2)$$
# $$h^{dec}_t = \mathrm{LSTM}^{dec}(z_t, h^{dec}_{t-1}), \qquad c_t = c_{t-1} + \mathrm{write}(h^{dec}_t).$$
#
# The image is Bernoulli with means $\sigma(c_T)$ and the prior is $\mathcal{N}(0, I)$ at every step:
#
# $$L^x = \sum_{\text{pixels}} \mathrm{softplus}(c_T) - x\, c_T, \qquad
#   L^z = \sum_{t=1}^T \mathrm{KL}\big(\mathcal{N}(\mu_t, \sigma_t^2)\,\|\,\mathcal{N}(0, I)\big).$$
#
# ($-\log \mathrm{Bernoulli}(x \mid \sigma(c)) = \mathrm{softplus}(c) - x c$, computed from the logits so it is
# never $\log 0$.) The canvas starts at $c_0 = -6$: $\sigma(-6) \approx 0.0025$, black like the background.
# A canvas started at 0 is grey ($\sigma(0) = 0.5$), a classic reimplementation bug.
#
# To **generate**, drop the encoder: draw $z_t \sim \mathcal{N}(0, I)$ and run the decoder and the
# writes. The backward pass runs the $T$ steps in reverse; the error image passes gradient from step
# $t$ back into the canvas of step $t - 1$. Check the whole model, end to end, on a tiny non-square
# image (float64, NumPy backend, random non-zero biases and canvas). One change from the layer checks:
# the step $h = 10^{-4}$. The loss is ~30 nats computed through $T$ steps of exps and LSTMs, so its
# round-off, divided by $2h = 2 \times 10^{-6}$, is ~$10^{-7}$ of the gradient: too close to our
# $10^{-6}$ tolerance. With $h = 10^{-4}$ round-off shrinks 100 times, and the centred difference's own
# $O(h^2)$ error is still negligible.

# %%
tiny_config = draw.default_config(width=7, height=6, T=3, read_n=2, write_n=3, enc_size=5, dec_size=4, z_size=3)
tiny = {k: v + 0.3 * r.standard_normal(v.shape) for k, v in draw.init_params(tiny_config, r, np.float64).items()}
tiny_batch = {"x": (r.random((4, 6, 7)) < 0.5).astype(np.float64)}
with backend.using("numpy"):
    errors = check_model(functools.partial(draw.loss, config=tiny_config), tiny, tiny_batch, h=1e-4)
print("DRAW:", "  ".join(f"d{name} {err:.0e}" for name, err in errors.items()))
assert max(errors.values()) < 1e-6

# %% [markdown]
# ## 3. Train it on MNIST
#
# The 4,000 training digits of the shipped MNIST subset, **binarised afresh for every batch**
# (pixel $\sim$ Bernoulli(intensity), "dynamically binarised MNIST"); a fixed binarisation of the 500
# validation digits for the bound. The model is the `minicap train draw` default: $T = 16$ glimpses,
# read $2 \times 2$, write $5 \times 5$, LSTMs of 256, $z$ of 100 per step (the paper: $T = 64$).
#
# The run is set up by `minicap.experiments.train_bound_model` (Lesson 9 uses it too; read it, it is
# short): one rng for the initial parameters and the batches, Adam at $10^{-3}$, gradients clipped
# to a global norm of 10, the shared training loop of `minicap.train` in a temporary folder, and every
# 250 steps the bound on the validation digits, always with the same noise $\epsilon$, so the curve
# moves only because the parameters do.

# %%
config = draw.default_config()   # T=16, read 2x2, write 5x5, LSTMs 256, z 100
steps, eval_every = (20, 10) if FAST else (1500, 250)
train_images, _ = load_mnist_5k("train")
val = draw.held_out_digits("val")
trained = train_bound_model(draw, config, (train_images,), (val,), steps, eval_every, clip=("global", 10.0),
                            seed=SEED)
run = trained.run
print(trained.summary("digit"))

# %% [markdown]
# ## 4. Watch it draw
#
# Generate from the prior and record the canvas after every step, with the write window.

# %%
n_show = 6
images, history = draw.generate(run.params, config, n_show, np.random.default_rng(3), record=True)
frames = canvas_animation(history, cols=n_show, scale=4)
gif_path = os.path.join(FIGURES, "08_draw_canvas.gif")
frames[0].save(gif_path, save_all=True, append_images=frames[1:] + [frames[-1]] * 4, duration=200, loop=0)
print("animation:", gif_path)

# %%
T = config["T"]
shown_steps = list(range(0, T, 2)) + ([T - 1] if (T - 1) % 2 else [])
width, height = 1.3 * len(shown_steps), 1.4 * n_show + 3.6
fig = plt.figure(figsize=(width, height))
strip = fig.add_gridspec(n_show, len(shown_steps), top=1 - 3.9 / height, bottom=0.01, left=0.01, right=0.99,
                         wspace=0.05, hspace=0.05)
for col, t in enumerate(shown_steps):
    for k in range(n_show):
        ax = fig.add_subplot(strip[k, col])
        ax.imshow(history[t]["canvas"][k], cmap="gray", vmin=0, vmax=1)
        left, top, right, bottom = window_box(history[t]["window"], k)
        ax.add_patch(plt.Rectangle((left, top), right - left, bottom - top, fill=False, color="red", lw=1))
        ax.set_xlim(-0.5, config["width"] - 0.5)
        ax.set_ylim(config["height"] - 0.5, -0.5)
        ax.axis("off")
        if k == 0:
            ax.set_title(f"t = {t + 1}", fontsize=8)
top_row = fig.add_gridspec(1, 2, top=0.97, bottom=1 - 3.3 / height, left=0.06, right=0.99, wspace=0.15,
                           width_ratios=[1, 1.4])
ax = fig.add_subplot(top_row[0])
ax.plot(trained.steps, trained.bound, "o-", label="bound (nats per digit)")
ax.plot(trained.steps, trained.recon, "s--", label="reconstruction L^x")
ax.plot(trained.steps, trained.kl, "^:", label="KL L^z")
ax.set(xlabel="training step", title="validation digits")
ax.legend(fontsize=7)
ax = fig.add_subplot(top_row[1])
ax.imshow(np.concatenate([np.pad(im, 1, constant_values=0.3) for im in images], axis=1), cmap="gray", vmin=0, vmax=1)
ax.set_title("samples from the prior: sigmoid(c_T); below, how each was drawn", fontsize=9)
ax.axis("off")
plt.savefig(os.path.join(FIGURES, "08_draw.png"), dpi=100)
print("figure:", os.path.join(FIGURES, "08_draw.png"))

# %% [markdown]
# **What you should see.** Over three full runs (training seeds 0, 1, 2) the bound falls from
# several hundred nats per digit (an untrained model) to 189-191 by step 250, almost all of it
# reconstruction, and is still falling at step 1,500 (151-155). The KL stays small and grows
# steadily, from about 5 nats at step 250 to 13-14 at step 1,500: the cheapest way to lower the bound
# early is a good "average digit" drawn by the decoder alone, and information is put into the codes
# only where it pays for its KL cost. Each column of the strip is one step of drawing, the red box
# the write window: the canvas stays nearly black for the first steps and the digit then builds up,
# blurry strokes first, over the second half of the steps, while the window shrinks from most of the
# canvas towards the digit. Samples from the prior are blurry, most of them recognisable digits (0,
# 7, 9, 5, 6 in our runs), with now and then a blob between two digits. $T = 16$ steps and 1,500
# updates are far from the paper's $T = 64$ and hours of training (its bound: 80.97 nats with
# attention on binarised MNIST). The GIF plays the same canvases in order. Train longer with
# `minicap train draw --steps N`; Lesson 9 gives the generator a caption.
