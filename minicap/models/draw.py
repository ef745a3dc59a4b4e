"""DRAW: a recurrent variational auto-encoder that draws an image glimpse by glimpse (Gregor et al. 2015).

An image x (Bt, B, A) in {0, 1} (B rows, A columns) is read and drawn over T steps. At step t:

    x_hat_t = x - sigmoid(c_{t-1})                       the error image: what is still missing
    r_t     = read(x, x_hat_t, h_dec_{t-1})              (Bt, R): a glimpse of both (or all of both)
    h_enc_t = LSTM_enc([r_t, h_dec_{t-1}], h_enc_{t-1})  (Bt, enc)
    mu_t    = h_enc_t W_mu + b_mu,   log sigma_t = h_enc_t W_ls + b_ls                (Bt, Z) each
    z_t     = mu_t + sigma_t * eps_t,  eps_t ~ N(0, I)    the reparameterisation trick: z is a
                                                          differentiable function of mu, sigma
    h_dec_t = LSTM_dec(z_t, h_dec_{t-1})                 (Bt, dec)
    c_t     = c_{t-1} + write(h_dec_t)                   (Bt, B, A): the canvas, in logits

With attention, read is gamma [Fy x Fx^T, Fy x_hat Fx^T] through an N x N Gaussian filterbank whose
window comes from h_dec_{t-1}, and write paints an N x N patch through a window from h_dec_t
(minicap.nn.filterbank). Without attention, read passes the whole of x and x_hat, and write adds a
whole B x A canvas (h_dec W + b).

The canvas starts at c_0, a learned (B, A) array initialised to a negative value (config
canvas_init, -6): sigmoid(-6) = 0.0025, so the empty canvas is black like an MNIST background. (A
zero canvas would start grey: sigmoid(0) = 0.5 everywhere.) The encoder and decoder states start at 0.

The loss is the negative variational lower bound, in nats per image (averaged over the batch):

    L^x = -log p(x | c_T) = sum_pixels [softplus(c_T) - x c_T]       Bernoulli(sigmoid(c_T)), from the
                                                                      logits, so it is never log(0)
    L^z = sum_t KL(N(mu_t, sigma_t^2) || N(0, I))
        = sum_t 0.5 sum_j (mu_tj^2 + sigma_tj^2 - 2 log sigma_tj - 1)
    loss = mean over the batch of L^x + L^z  >=  -log p(x)

(The -1 inside the KL is the constant reimplementations get wrong: with it the KL is 0 exactly when
q = N(0, I).) The gradient of the loss with respect to c_T is (sigmoid(c_T) - x) / Bt; everything else
is backpropagated by hand through the T steps, including through x_hat_t into the earlier canvas.

Functions:

    default_config(**overrides) -> config          sizes and switches (a JSON-able dict)
    init_params(config, rng, dtype) -> params      a flat dict of arrays
    forward(params, x, eps, config) -> (loss, parts), cache;  backward(cache) -> grads
    loss(params, batch, rng, config) -> (loss, grads)        batch = {"x": (Bt, B, A)}; eps from rng
    bound(params, x, config, rng, batch_size) -> (Bt,)       the bound of each image, nats
    paired_bound_difference(model_a, model_b, x)              two models on the same images
    generate(params, config, n, rng, record) -> images (n, B, A) in [0, 1] (and the canvas history)
    read_step / write_step / sample_latent_*            the pieces one step is made of (alignDRAW
                                                          reuses them)
"""
import numpy as np

from minicap import backend, nn
from minicap.nn import filterbank as fb


def default_config(**overrides):
    """DRAW's sizes. The paper's MNIST model: T = 64, read_n = 2, write_n = 5, enc = dec = 256, z = 100."""
    config = dict(width=28, height=28, T=16, read_n=2, write_n=5, enc_size=256, dec_size=256, z_size=100,
                  attention=True, canvas_init=-6.0)
    unknown = set(overrides) - set(config)
    if unknown:
        raise ValueError(f"unknown DRAW config keys: {', '.join(sorted(unknown))}")
    config.update(overrides)
    return config


def read_size(config):
    """R, the width of r_t: 2 N^2 with attention (two N x N glimpses), 2 B A without (x and x_hat)."""
    if config["attention"]:
        return 2 * config["read_n"] ** 2
    return 2 * config["width"] * config["height"]


def tiling_window_bias(A, B, N, write=False):
    """The bias (g~x, g~y, log sigma^2, log delta~, log gamma) of a window whose N x N filters tile the
    whole image: centred, stride delta = max(A, B) / N, blur sigma = delta / 2. (5,)

    gamma = 1 for a read (a glimpse value is a weighted mean of pixels). For a write, gamma = 1 / delta^2:
    each normalised filter spreads a patch value over a delta x delta cell, so with gamma = 1 a value w
    adds only ~w / delta^2 to each pixel's logit, and the patch values (and the weights making them) would
    have to grow to hundreds before a stroke shows; 1 / gamma = delta^2 makes w ~ the logit it paints.

    Why not 0? Bias 0 gives sigma = 1 and delta = (max(A, B) - 1) / (N - 1): for a 2 x 2 read of a 28 x 28
    digit, four sharp filters on the four corner pixels, which are always background. The encoder then
    sees nothing, the latents carry nothing, and training sits at the "average digit" for hundreds of
    steps. Filters that overlap and cover the image pass a blurred summary of it from the first step.
    """
    delta = max(A, B) / N
    delta_tilde = delta * max(N - 1, 1) / (max(A, B) - 1)
    log_gamma = -2 * np.log(delta) if write else 0.0
    return np.array([0.0, 0.0, np.log((delta / 2) ** 2), np.log(delta_tilde), log_gamma])


def init_params(config, rng, dtype=np.float32):
    """Weights N(0, 1/fan_in), biases 0 (the LSTM forget gates: 1). The attention heads start with small
    weights and a bias that tiles the image (tiling_window_bias), so the first windows cover it all.

    Returns enc_Wx (R + dec, 4 enc), enc_Wh, enc_b; mu_W (enc, Z), mu_b, ls_W, ls_b; dec_Wx (Z, 4 dec),
    dec_Wh, dec_b; canvas0 (B, A); and with attention read_W (dec, 5), read_b, write_att_W (dec, 5),
    write_att_b, write_W (dec, N_w^2), write_b; without, write_W (dec, B A), write_b.
    """
    A, B, R = config["width"], config["height"], read_size(config)
    E, D, Z = config["enc_size"], config["dec_size"], config["z_size"]

    def weight(fan_in, fan_out, scale=1.0):
        return rng.standard_normal((fan_in, fan_out)) * scale / np.sqrt(fan_in)

    def lstm_bias(H):
        b = np.zeros(4 * H)
        b[H:2 * H] = 1.0  # gates i, f, o, g: remember by default
        return b

    params = {"enc_Wx": weight(R + D, 4 * E), "enc_Wh": weight(E, 4 * E), "enc_b": lstm_bias(E),
              "mu_W": weight(E, Z), "mu_b": np.zeros(Z), "ls_W": weight(E, Z, 0.1), "ls_b": np.zeros(Z),
              "dec_Wx": weight(Z, 4 * D), "dec_Wh": weight(D, 4 * D), "dec_b": lstm_bias(D),
              "canvas0": np.full((B, A), float(config["canvas_init"]))}
    if config["attention"]:
        Nw = config["write_n"]
        params.update({"read_W": weight(D, 5, 0.1), "read_b": tiling_window_bias(A, B, config["read_n"]),
                       "write_att_W": weight(D, 5, 0.1), "write_att_b": tiling_window_bias(A, B, Nw, write=True),
                       "write_W": weight(D, Nw * Nw), "write_b": np.zeros(Nw * Nw)})
    else:
        params.update({"write_W": weight(D, B * A), "write_b": np.zeros(B * A)})
    return {k: v.astype(dtype) for k, v in params.items()}


def _lstm_step():
    """The LSTM step: the backend's twin if the seam has one, else the NumPy reference."""
    if "lstm_step_forward" in backend.HOT_FUNCTIONS:
        return backend.get("lstm_step_forward"), backend.get("lstm_step_backward")
    return nn.lstm_step_forward, nn.lstm_step_backward


# --- the pieces of one step -------------------------------------------------------------------------
def read_step(params, x, x_hat, h_dec_prev, config):
    """r_t = read(x, x_hat, h_dec_{t-1}). x, x_hat: (Bt, B, A), h_dec_prev: (Bt, dec). Returns r (Bt, R), cache."""
    if config["attention"]:
        return fb.attentive_read_forward(x, x_hat, h_dec_prev, params["read_W"], params["read_b"], config["read_n"])
    return fb.read_no_attention_forward(x, x_hat)


def read_step_backward(dr, cache, config):
    """dr: (Bt, R). Returns dx_hat (Bt, B, A), dh_dec_prev (Bt, dec) or None, and a dict of param grads."""
    if config["attention"]:
        dx_hat, dh, dW, db = fb.attentive_read_backward(dr, cache)
        return dx_hat, dh, {"read_W": dW, "read_b": db}
    return fb.read_no_attention_backward(dr, cache), None, {}


def write_step(params, h_dec, config):
    """write(h_dec_t): the canvas update (Bt, B, A), and the cache."""
    A, B = config["width"], config["height"]
    if config["attention"]:
        return fb.attentive_write_forward(h_dec, params["write_att_W"], params["write_att_b"], params["write_W"],
                                          params["write_b"], A, B, config["write_n"])
    return fb.write_no_attention_forward(h_dec, params["write_W"], params["write_b"], A, B)


def write_step_backward(dout, cache, config):
    """dout: (Bt, B, A). Returns dh_dec (Bt, dec) and a dict of param grads."""
    if config["attention"]:
        dh, dW_att, db_att, dW, db = fb.attentive_write_backward(dout, cache)
        return dh, {"write_att_W": dW_att, "write_att_b": db_att, "write_W": dW, "write_b": db}
    dh, dW, db = fb.write_no_attention_backward(dout, cache)
    return dh, {"write_W": dW, "write_b": db}


def write_window(cache, config):
    """The window of a write_step (attention only): dict gx, gy, delta, sigma2, gamma (each (Bt,)), N."""
    _, window_cache, _ = cache
    return window_cache[-1]


def sample_latent_forward(h_enc, eps, mu_W, mu_b, ls_W, ls_b):
    """z = mu + sigma eps with mu = h W_mu + b_mu, log sigma = h W_ls + b_ls; and KL(q || N(0, I)).

    h_enc: (Bt, enc), eps: (Bt, Z). Returns z (Bt, Z), kl (Bt,) = 0.5 sum_j (mu^2 + sigma^2 - 2 log sigma - 1),
    and the cache.
    """
    mu = h_enc @ mu_W + mu_b
    log_sigma = h_enc @ ls_W + ls_b
    sigma = np.exp(log_sigma)
    z = mu + sigma * eps
    kl = 0.5 * (mu * mu + sigma * sigma - 2 * log_sigma - 1).sum(axis=1)
    return (z, kl), (h_enc, eps, mu_W, ls_W, mu, sigma)


def sample_latent_backward(dz, dkl, cache):
    """dz: (Bt, Z), dkl: (Bt,). Returns dh_enc, dmu_W, dmu_b, dls_W, dls_b.

    dmu = dz + dkl mu;  dsigma = dz eps + dkl sigma;  dlog sigma = dsigma sigma - dkl.
    """
    h_enc, eps, mu_W, ls_W, mu, sigma = cache
    dmu = dz + dkl[:, None] * mu
    dlog_sigma = (dz * eps + dkl[:, None] * sigma) * sigma - dkl[:, None]
    dh = dmu @ mu_W.T + dlog_sigma @ ls_W.T
    return dh, h_enc.T @ dmu, dmu.sum(axis=0), h_enc.T @ dlog_sigma, dlog_sigma.sum(axis=0)


def bernoulli_nll_forward(logits, x):
    """-log Bernoulli(x | sigmoid(logits)) summed over pixels: softplus(c) - x c, computed stably as
    max(c, 0) - x c + log(1 + exp(-|c|)). logits, x: (Bt, B, A). Returns (Bt,) and the cache."""
    nll = (np.maximum(logits, 0) - x * logits + np.log1p(np.exp(-np.abs(logits)))).sum(axis=(1, 2))
    return nll, (logits, x)


def bernoulli_nll_backward(dnll, cache):
    """dnll: (Bt,). Returns dlogits (Bt, B, A) = dnll (sigmoid(c) - x)."""
    logits, x = cache
    return dnll[:, None, None] * (backend.get("sigmoid")(logits) - x)


# --- the whole model ----------------------------------------------------------------------------------
def forward(params, x, eps, config):
    """The negative bound of a batch.

    x: (Bt, B, A) binary images, eps: (T, Bt, Z) the noise. Returns (loss, parts) and the cache, where
    loss is the batch mean of L^x + L^z (nats per image) and parts = {"recon": mean L^x, "kl": mean L^z,
    "bound": (Bt,) L^x + L^z of each image}.
    """
    lstm_step, _ = _lstm_step()
    Bt, T = x.shape[0], eps.shape[0]
    dtype = params["enc_Wh"].dtype
    x = x.astype(dtype, copy=False)
    h_enc = c_enc = np.zeros((Bt, config["enc_size"]), dtype)
    h_dec = c_dec = np.zeros((Bt, config["dec_size"]), dtype)
    canvas = np.broadcast_to(params["canvas0"], x.shape)
    kl, steps = np.zeros(Bt, dtype), []
    for t in range(T):
        sig = backend.get("sigmoid")(canvas)
        r, read_cache = read_step(params, x, x - sig, h_dec, config)
        (h_enc, c_enc), enc_cache = lstm_step(np.concatenate([r, h_dec], axis=1), h_enc, c_enc,
                                              params["enc_Wx"], params["enc_Wh"], params["enc_b"])
        (z, kl_t), latent_cache = sample_latent_forward(h_enc, eps[t].astype(dtype, copy=False), params["mu_W"],
                                                        params["mu_b"], params["ls_W"], params["ls_b"])
        (h_dec, c_dec), dec_cache = lstm_step(z, h_dec, c_dec, params["dec_Wx"], params["dec_Wh"], params["dec_b"])
        update, write_cache = write_step(params, h_dec, config)
        canvas = canvas + update
        kl = kl + kl_t
        steps.append((sig, read_cache, enc_cache, latent_cache, dec_cache, write_cache))
    recon, nll_cache = bernoulli_nll_forward(canvas, x)
    per_image = recon + kl
    parts = {"recon": float(recon.mean()), "kl": float(kl.mean()), "bound": per_image}
    return (float(per_image.mean()), parts), (steps, nll_cache, config, read_size(config))


def lstm_step_backward_keeping_da(dnext_h, dnext_c, lstm_cache, das, weights_T):
    """One LSTM step back without its weight gradients: returns dx, dprev_h, dprev_c and appends the
    gate gradient da_t (N, 4H) to das, for nn.lstm_weight_grads over all the steps after the loop
    (DRAW's and alignDRAW's two LSTMs). weights_T: nn.stacked_weights_T(Wx, Wh), made once per
    backward pass: dx and dprev_h come from one product (nn.lstm_input_grads)."""
    da, dprev_c = backend.get("lstm_step_gate_grads")(dnext_h, dnext_c, lstm_cache)
    das.append(da)
    dx, dprev_h = nn.lstm_input_grads(da, weights_T, lstm_cache[0].shape[1])
    return dx, dprev_h, dprev_c


def backward(cache, per_step_weight_grads=False):
    """Gradients of forward's loss with respect to every parameter (a dict like params).

    The encoder's and decoder's LSTM weight gradients are sums over the T steps, dWx = sum_t x_t^T da_t
    (and dWh, db alike). The loop computes only each step's gate gradient da_t (lstm_step_gate_grads)
    and the products the recurrence needs now (da_t Wx^T, da_t Wh^T); dWx, dWh, db are then formed as
    ONE product over all T Bt rows after the loop (nn.lstm_weight_grads, as the captioner does): the
    same sums, faster than T thin products accumulated into the weight-sized arrays (a whole draw_step
    iteration takes ~0.8 of the time, docs/performance.md), for T Bt rows of da held until the end.
    per_step_weight_grads=True forms them step by step with lstm_step_backward instead, accumulating
    in place (the textbook form and the code before this change, kept to test the two against each
    other and to time them).
    """
    steps, nll_cache, config, R = cache
    _, lstm_step_backward = _lstm_step()
    Bt = nll_cache[1].shape[0]
    dnll = np.full(Bt, 1.0 / Bt, dtype=nll_cache[0].dtype)   # loss = mean over the batch
    dcanvas = bernoulli_nll_backward(dnll, nll_cache)
    grads = {}

    def add(name, value):   # sum a parameter's gradient over the T steps (in place: fewer temporaries)
        if name in grads:
            grads[name] += value
        else:
            grads[name] = value.copy()

    # each LSTM's [Wx; Wh]^T, made once for all T steps (nn.lstm_input_grads); an LSTM cache holds Wx, Wh at 3, 4
    weights_T = {prefix: nn.stacked_weights_T(steps[0][index][3], steps[0][index][4])
                 for prefix, index in (("enc_", 2), ("dec_", 4))}

    def lstm_backward(dnext_h, dnext_c, lstm_cache, das, prefix):
        """One LSTM step back: dx, dprev_h, dprev_c; keeps da_t in das for the products after the loop."""
        if per_step_weight_grads:
            dx, dprev_h, dprev_c, dWx, dWh, db = lstm_step_backward(dnext_h, dnext_c, lstm_cache)
            add(prefix + "Wx", dWx), add(prefix + "Wh", dWh), add(prefix + "b", db)
            return dx, dprev_h, dprev_c
        return lstm_step_backward_keeping_da(dnext_h, dnext_c, lstm_cache, das, weights_T[prefix])

    dtype = dcanvas.dtype
    dh_dec = dc_dec = np.zeros((Bt, config["dec_size"]), dtype)   # gradients flowing in from step t + 1
    dh_enc = dc_enc = np.zeros((Bt, config["enc_size"]), dtype)
    enc_das, dec_das = [], []   # each step's gate gradient da_t, last step first
    for sig, read_cache, enc_cache, latent_cache, dec_cache, write_cache in reversed(steps):
        # c_t = c_{t-1} + write(h_dec_t): the canvas gradient passes through unchanged
        dh_write, dparams = write_step_backward(dcanvas, write_cache, config)
        for k, v in dparams.items():
            add(k, v)
        dz, dh_dec, dc_dec = lstm_backward(dh_dec + dh_write, dc_dec, dec_cache, dec_das, "dec_")
        dh_latent, dmu_W, dmu_b, dls_W, dls_b = sample_latent_backward(dz, dnll, latent_cache)
        add("mu_W", dmu_W), add("mu_b", dmu_b), add("ls_W", dls_W), add("ls_b", dls_b)
        dinput, dh_enc, dc_enc = lstm_backward(dh_enc + dh_latent, dc_enc, enc_cache, enc_das, "enc_")
        dh_dec = dh_dec + dinput[:, R:]          # h_dec_{t-1} fed the encoder ...
        dx_hat, dh_read, dparams = read_step_backward(np.ascontiguousarray(dinput[:, :R]), read_cache, config)
        for k, v in dparams.items():
            add(k, v)
        if dh_read is not None:                  # ... and chose the read window
            dh_dec = dh_dec + dh_read
        # x_hat_t = x - sigmoid(c_{t-1}): the error image carries gradient back into the earlier canvas
        dcanvas = dcanvas - dx_hat * sig * (1 - sig)
    # the LSTMs' weight gradients: sum_t x_t^T da_t as one product over all steps (das run backwards)
    for prefix, das, index in (("enc_", enc_das, 2), ("dec_", dec_das, 4)):
        if not per_step_weight_grads:
            grads[prefix + "Wx"], grads[prefix + "Wh"], grads[prefix + "b"] = nn.lstm_weight_grads(
                [step[index] for step in reversed(steps)], das)
    grads["canvas0"] = dcanvas.sum(axis=0)
    return grads


def loss(params, batch, rng, config):
    """The shared model API: batch = {"x": (Bt, B, A)}; eps ~ N(0, I) is drawn from rng.

    Returns (loss, grads): the negative bound in nats per image, and its gradients. For
    minicap.gradcheck.check_model, bind the config: functools.partial(loss, config=config).
    """
    x = batch["x"]
    eps = rng.standard_normal((config["T"], x.shape[0], config["z_size"]))
    (value, _), cache = forward(params, x, eps, config)
    return value, backward(cache)


def bound(params, x, config, rng, batch_size=250):
    """The variational bound of each image (nats), one eps sample each: x (M, B, A) -> (M,).

    An unbiased estimate of the bound (the expectation over q); its mean over a test set is what
    the DRAW paper reports as the negative log-likelihood upper bound.
    """
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        eps = rng.standard_normal((config["T"], len(xb), config["z_size"]))
        (_, parts), _ = forward(params, xb, eps, config)
        out.append(parts["bound"])
    return np.concatenate(out)


def paired_bound_difference(model_a, model_b, x, samples=5, seed=100):
    """Compare two models on the same images: the mean over images of bound_a - bound_b (nats) and its
    standard error. model_a, model_b: (params, config). Each image's bound is averaged over `samples`
    eps draws (the same seeds for both models); pairing by image removes the spread between easy and
    hard digits, which dominates the standard error of each model's own mean.
    Returns (mean difference, standard error, fraction of images where a is lower)."""
    def per_image(params, config):
        return np.mean([bound(params, x, config, np.random.default_rng(seed + k)) for k in range(samples)], axis=0)
    d = per_image(*model_a) - per_image(*model_b)
    return float(d.mean()), float(d.std() / np.sqrt(len(d))), float(np.mean(d < 0))


def generate(params, config, n, rng, record=False, temperature=1.0):
    """Draw n images from the prior: z_t ~ N(0, I), h_dec_t = LSTM_dec(z_t, h_dec_{t-1}), c_t += write(h_dec_t).

    temperature tau scales the noise, z_t = tau eps_t: 1 samples the model's prior, 0 draws its mean
    image, values between trade variety for legibility. Returns images (n, B, A) = sigmoid(c_T), the Bernoulli means. With record=True also returns a
    list of T dicts {"canvas": sigmoid(c_t) (n, B, A), "window": the write window or None}.
    """
    lstm_step, _ = _lstm_step()
    dtype = params["dec_Wh"].dtype
    h_dec = c_dec = np.zeros((n, config["dec_size"]), dtype)
    canvas = np.broadcast_to(params["canvas0"], (n, config["height"], config["width"]))
    history = []
    for _ in range(config["T"]):
        z = (temperature * rng.standard_normal((n, config["z_size"]))).astype(dtype)
        (h_dec, c_dec), _ = lstm_step(z, h_dec, c_dec, params["dec_Wx"], params["dec_Wh"], params["dec_b"])
        update, cache = write_step(params, h_dec, config)
        canvas = canvas + update
        if record:
            history.append({"canvas": backend.get("sigmoid")(canvas),
                            "window": write_window(cache, config) if config["attention"] else None})
    images = backend.get("sigmoid")(canvas)
    return (images, history) if record else images


# --- data and training ---------------------------------------------------------------------------
HELD_OUT_BINARIZE_SEED = 9  # the held-out digits are binarised once, with this seed: fixed forever


def binarize(images, rng):
    """Stochastic binarisation: pixel ~ Bernoulli(intensity / 255). images: uint8 (M, B, A) -> float32 0/1.

    Training draws a fresh binarisation of every batch (as in the widely used "dynamically binarised"
    MNIST); held-out digits are binarised once with HELD_OUT_BINARIZE_SEED so every evaluation sees
    the same images.
    """
    return (rng.random(images.shape) < images / 255.0).astype(np.float32)


def held_out_digits(split):
    """The 'val' or 'test' digits of the shipped MNIST subset, binarised with the fixed seed: (M, 28, 28)."""
    from minicap.data.mnist import load_mnist_5k
    images, _ = load_mnist_5k(split)
    return binarize(images, np.random.default_rng([HELD_OUT_BINARIZE_SEED, {"val": 0, "test": 1}[split]]))


def make_train_step(config, train_images, batch_size):
    """A train_step(run) for minicap.train.train: a random batch of digits, freshly binarised, fresh eps.

    train_images: uint8 (M, B, A). Everything random comes from run.rng, so resuming is exact.
    """
    def train_step(run):
        idx = run.rng.integers(0, len(train_images), size=batch_size)
        x = binarize(train_images[idx], run.rng)
        return loss(run.params, {"x": x}, run.rng, config)
    return train_step


# --- the draw_step workload of `minicap bench` ---------------------------------------------------------
def bench_step(dtype, quick=False):
    """One DRAW training iteration (forward + backward, no optimizer) at the PyTorch peer's sizes
    (/work/shared/bench/torch_peer.py, draw_step): 28 x 28 binary images, B = 64, T = 16 glimpses, read
    2 x 2, write 5 x 5, encoder and decoder LSTMs 256, latent 100; fixed eps. As in the peer, weights
    are U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's default; the LSTMs use their hidden size) and the
    canvas starts at 0. quick=True: tiny sizes for a smoke test. Returns step() -> loss."""
    B, T, H, Z = (4, 2, 8, 3) if quick else (64, 16, 256, 100)
    config = default_config(T=T, read_n=2, write_n=5, enc_size=H, dec_size=H, z_size=Z, attention=True)
    rng = np.random.default_rng(0)
    params = {}
    for name, value in init_params(config, rng, np.float64).items():
        fan_in = H if name.startswith(("enc_", "dec_")) else value.shape[0]
        params[name] = rng.uniform(-1, 1, value.shape) / np.sqrt(fan_in)
    params["canvas0"] = np.zeros_like(params["canvas0"])
    params = {k: v.astype(dtype) for k, v in params.items()}
    x = (rng.random((B, 28, 28)) < 0.5).astype(dtype)
    eps = rng.standard_normal((T, B, Z)).astype(dtype)

    def step():
        (value, _), cache = forward(params, x, eps, config)
        backward(cache)
        return value
    return step


def bench_flops(dtype, quick=False):
    """The floating-point operations of one bench_step iteration, counting the matrix products only
    (2 m n k each; see minicap/bench.py). Per image and glimpse, with image 28 x 28, N_r = 2, N_w = 5:

        read window h W (2 H 5); glimpses Fy x Fx^T of x and x_hat (2 (2 N 28 28 + 2 N 28 N) each)
        encoder LSTM [r, h_dec] Wx + h Wh (2 (2 N_r^2 + H + H) 4H); mu and log sigma (2 x 2 H Z)
        decoder LSTM z Wx + h Wh (2 (Z + H) 4H)
        write window (2 H 5), patch h W (2 H N_w^2), Fy^T w Fx (2 28 N N + 2 28 N 28)

    each x 3 (forward, and the gradients of both factors), except Fy x of the image x, which needs no
    gradient: x 2."""
    B, T, H, Z = (4, 2, 8, 3) if quick else (64, 16, 256, 100)
    side, Nr, Nw = 28, 2, 5
    read_x = 2 * Nr * side * side                             # Fy x: x is data, no gradient
    glimpse = 2 * Nr * side * side + 2 * Nr * side * Nr      # Fy x_hat Fx^T (and Fy x Fx^T)
    read = 2 * H * 5 + 2 * glimpse
    lstms = 2 * (2 * Nr * Nr + 2 * H) * 4 * H + 2 * 2 * H * Z + 2 * (Z + H) * 4 * H
    write = 2 * H * 5 + 2 * H * Nw * Nw + 2 * side * Nw * Nw + 2 * side * Nw * side
    return T * B * (3 * (read + lstms + write) - read_x)

