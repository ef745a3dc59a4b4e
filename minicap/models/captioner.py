"""Show, Attend and Tell (Xu et al. 2015): an LSTM that captions an image from its annotation vectors.

The frozen encoder turns an image into L CNN feature vectors, one per image location. The decoder
attends over the annotation vectors a_i = [s * features_i ; (row_i, col_i)]: the features scaled by
a constant s to about unit size, plus the location's grid coordinates in [-1, 1] (a CNN says WHAT it
sees at a location, hardly WHERE; the coordinates let a glimpse say where it looked). D counts both.
The decoder writes the caption one word at a time. Three models share it:

    none  (baseline)  no attention: z_t = g, the same global image vector at every step
                      (with image_every_step=False the image only initialises the LSTM: z_t is empty)
    soft              z_t = beta_t sum_i alpha_ti a_i, the expected annotation under the attention
    hard              z_t = beta_t a_{s_t}, one location s_t ~ Multinoulli(alpha_t)  (hard_attention.py)

One decoder step, from the previous word y_{t-1} and state (h_{t-1}, c_{t-1}):

    x_t        = E y_{t-1}                                       word embedding          (N, E)
    alpha_t    = softmax_i(w^T tanh(Wa a_i + b_a + Wh h_{t-1}))  where to look           (N, L)
    beta_t     = sigmoid(h_{t-1} W_beta + b_beta)                the gate: how much      (N, 1)
    z_t        = beta_t * glimpse_t                              the context             (N, D)
    h_t, c_t   = LSTM([x_t; z_t], h_{t-1}, c_{t-1})
    p(y_t)     = softmax(Lo tanh(x_t + Lh dropout(h_t) + Lz z_t) + bo)   the deep output layer

The state starts from the image: g = mean_i a_i (or, image_feature="flat", g = W_img [a_1; ..; a_L]
+ b_img, which keeps the layout), m = relu(g W_init + b_init), h_0 = tanh(m W_h0 + b_h0),
c_0 = tanh(m W_c0 + b_c0) (a 2-layer MLP each, as in the authors' code). Wa a_i + b_a does not
depend on t, so it is computed once per image (a_proj).

Training loss of the soft model (the baseline has no penalty):

    loss = -(1/N) sum_n sum_t log p(y_nt)  +  lambda (1/N) sum_n sum_i (1 - sum_t alpha_nti)^2

where padded steps count in neither sum. The penalty (doubly stochastic attention) asks every
location to be looked at about once over the caption.

Shapes: N batch, T time steps (caption length + 1), L locations, D annotation size, E embedding,
H LSTM size, A attention size, V vocabulary. Parameters live in a flat dict (see init_params).
"""
from dataclasses import asdict, dataclass, fields

import numpy as np

from minicap import backend
from minicap.data.vocab import END, NULL, START
from minicap.nn import (affine_backward, affine_forward, deep_output_backward, deep_output_forward,
                        doubly_stochastic_penalty_backward, doubly_stochastic_penalty_forward,
                        dropout_backward, dropout_forward, embedding_backward, embedding_forward, lstm_input_grads,
                        lstm_weight_grads, relu_backward, relu_forward, sigmoid, tanh_backward, tanh_forward,
                        stacked_weights_T, temporal_affine_backward, temporal_affine_forward)
from minicap.nn.temporal import log_softmax
from minicap.optim import cosine_lr

ATTENTIONS = ("none", "soft", "hard")


@dataclass(frozen=True)
class CaptionerConfig:
    """Everything that defines a captioner (saved in its checkpoint)."""
    attention: str = "soft"          # none | soft | hard
    embed: int = 64                  # E
    hidden: int = 256                # H
    attention_size: int = 64         # A
    gate: bool = True                # the beta gate (soft, hard)
    deep_tanh: bool = True           # tanh in the deep output layer (the authors' code)
    image_every_step: bool = True    # baseline: feed mean_i a_i at every step (else only h_0, c_0)
    dropout: float = 0.5             # on h_t before the output layer
    penalty: float = 1.0             # lambda of the doubly stochastic penalty (soft, hard)
    reward_weight: float = 0.1       # lambda_r (hard): scales the REINFORCE term
    entropy_weight: float = 0.002    # lambda_e (hard): entropy bonus on alpha
    sample_prob: float = 0.5         # hard: a minibatch samples locations with this probability,
                                     #       else it trains on the expected context (as soft)
    baseline_decay: float = 0.9      # hard: b <- decay b + (1 - decay) mean log p(y|s, a)
    feature_scale: float = 1.0       # the CNN features are multiplied by this (set from the training data)
    coordinates: bool = True         # append each location's (row, col) in [-1, 1] to its annotation
    image_feature: str = "mean"      # the global image vector g: "mean" mean_i a_i (the paper), or "flat"
                                     # a learned projection of all L annotations (keeps the layout)

    def __post_init__(self):
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {self.attention!r}")
        if self.image_feature not in ("mean", "flat"):
            raise ValueError(f"image_feature must be 'mean' or 'flat', got {self.image_feature!r}")

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def annotation_size(config, feature_size):
    """D: the CNN's feature size, plus 2 with the location coordinates."""
    return feature_size + 2 * config.coordinates


def context_size(config, D):
    """Width of z_t: D, or 0 for a baseline whose image only initialises the LSTM."""
    return 0 if config.attention == "none" and not config.image_every_step else D


def location_coordinates(L, dtype=np.float32):
    """(L, 2): the (row, col) of each location of a square g x g grid (l = g row + col), scaled to [-1, 1].

    A CNN is translation-equivariant: the feature vector of a digit says WHAT it is, hardly WHERE.
    Appended to the annotation vectors, the coordinates let the context z_t tell the decoder where
    it looked ("top left", "on the right of")."""
    g = int(round(np.sqrt(L)))
    if g * g != L:
        raise ValueError(f"location coordinates need a square grid of locations, got L = {L}")
    r, c = np.divmod(np.arange(L), g)
    return (np.stack([r, c], axis=1) * (2 / max(g - 1, 1)) - 1).astype(dtype)


def annotations(config, features):
    """The annotation vectors the decoder attends over: features (N, L, D_cnn) -> a (N, L, D).

    a_i = [feature_scale * CNN features at i ; (row_i, col_i)]: the scale brings the features to
    about unit size (so tanh and sigmoid units do not start saturated)."""
    a = features * np.asarray(config.feature_scale, features.dtype)
    if config.coordinates:
        coords = np.broadcast_to(location_coordinates(a.shape[1], a.dtype), a.shape[:2] + (2,))
        a = np.concatenate([a, coords], axis=2)
    return a


# --- parameters ---------------------------------------------------------------------------------
def init_params(config, vocab_size, feature_size, rng, dtype=np.float32, locations=None):
    """Random initial parameters: weights ~ N(0, 1/fan_in), the word embeddings W_embed ~ N(0, 0.01)
    (standard deviation 0.1), biases 0 (LSTM forget gate 1).

    vocab_size V, feature_size: the CNN's (D adds the coordinates); locations L: needed only for
    image_feature="flat". Returns a flat dict of arrays (shapes in the comments).
    """
    V, D, E, H, A = vocab_size, annotation_size(config, feature_size), config.embed, config.hidden, config.attention_size
    Dz = context_size(config, D)

    def w(*shape):
        return (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(dtype)

    p = {"W_embed": (rng.standard_normal((V, E)) * 0.1).astype(dtype),          # (V, E)
         "W_init": w(D, D), "b_init": np.zeros(D, dtype),                        # g -> m
         "W_h0": w(D, H), "b_h0": np.zeros(H, dtype),                            # m -> h_0
         "W_c0": w(D, H), "b_c0": np.zeros(H, dtype),                            # m -> c_0
         "Wx": w(E + Dz, 4 * H), "Wh": w(H, 4 * H), "b": np.zeros(4 * H, dtype),  # LSTM
         "Lh": w(H, E), "Lo": w(E, V), "bo": np.zeros(V, dtype)}                  # deep output
    if Dz:
        p["Lz"] = w(Dz, E)
    if config.image_feature == "flat":
        p.update({"W_img": w(locations * D, D), "b_img": np.zeros(D, dtype)})  # all a_i -> g
    p["b"][H:2 * H] = 1  # forget gate bias 1: remember by default
    if config.attention != "none":
        p.update({"W_att": w(D, A), "b_att": np.zeros(A, dtype),   # a_proj = a W_att + b_att
                  "W_att_h": w(H, A), "w_att": w(A)})                # e = w_att . tanh(a_proj + h W_att_h)
        if config.gate:
            p.update({"W_beta": w(H, 1), "b_beta": np.zeros(1, dtype)})
    return p


# --- from the image to the initial state ----------------------------------------------------------
def image_forward(params, config, features):
    """CNN features (N, L, D_cnn) -> the per-image arrays the decoder needs, as a dict:
    h, c (N, H) the initial state; a (N, L, D) the annotations; g (N, D) the global image vector;
    a_proj (N, L, A) with attention."""
    features = annotations(config, features)
    cache_g = None
    if config.image_feature == "flat":
        g, cache_g = affine_forward(features.reshape(len(features), -1), params["W_img"], params["b_img"])
    else:
        g = features.mean(axis=1)
    m, cache_m = affine_forward(g, params["W_init"], params["b_init"])
    m, cache_relu = relu_forward(m)
    h0, cache_h = affine_forward(m, params["W_h0"], params["b_h0"])
    h0, cache_th = tanh_forward(h0)
    c0, cache_c = affine_forward(m, params["W_c0"], params["b_c0"])
    c0, cache_tc = tanh_forward(c0)
    image = {"h": h0, "c": c0, "a": features, "g": g}
    cache = [cache_g, cache_m, cache_relu, cache_h, cache_th, cache_c, cache_tc, None]
    if config.attention != "none":
        image["a_proj"], cache[-1] = temporal_affine_forward(features, params["W_att"], params["b_att"])
    return image, cache


def image_backward(dh0, dc0, da_proj, dg, cache, grads):
    """Adds the gradients of the initial-state MLPs, of a_proj's projection and (flat) of g's into grads.
    dg: (N, D) gradient reaching g from the steps (a baseline feeds z_t = g), or 0."""
    cache_g, cache_m, cache_relu, cache_h, cache_th, cache_c, cache_tc, cache_proj = cache
    dm_h, grads["W_h0"], grads["b_h0"] = affine_backward(tanh_backward(dh0, cache_th), cache_h)
    dm_c, grads["W_c0"], grads["b_c0"] = affine_backward(tanh_backward(dc0, cache_tc), cache_c)
    dg_init, grads["W_init"], grads["b_init"] = affine_backward(relu_backward(dm_h + dm_c, cache_relu), cache_m)
    if cache_g is not None:
        _, grads["W_img"], grads["b_img"] = affine_backward(dg_init + dg, cache_g)
    if cache_proj is not None:
        # the features are frozen: no gradient for them (need_dx=False skips a product as large as a Wa)
        _, grads["W_att"], grads["b_att"] = temporal_affine_backward(da_proj, cache_proj, need_dx=False)


# --- one decoder step ---------------------------------------------------------------------------
def sample_locations(alpha, rng):
    """s ~ Multinoulli(alpha) for each row: alpha (N, L) -> (N,) ints (one uniform per row)."""
    cdf = np.cumsum(alpha, axis=1)
    u = rng.random((alpha.shape[0], 1)) * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=1), alpha.shape[1] - 1)


def step_forward(params, config, x, h, c, image, glimpse="expected", rng=None, location=None):
    """One step: attend (from h_{t-1}), gate, and run the LSTM on [x_t; z_t].

    x: (N, E) the previous word's embedding; h, c: (N, H); image: image_forward's dict.
    glimpse (attention models): "expected" z = beta sum_i alpha_i a_i (soft attention);
        "sample" z = beta a_s with s = location (N,) if given, else s ~ alpha (drawn from rng);
        "argmax" z = beta a_s with s = argmax_i alpha_i (a deterministic hard glimpse, for decoding).
    Returns (h_next, c_next, z (N, Dz), alpha (N, L) or None, s (N,) or None) and the cache.
    """
    # BEGIN SOLUTION
    alpha = s = att_cache = beta = None
    if config.attention == "none":
        z = image["g"] if config.image_every_step else image["g"][:, :0]
    else:
        attend = backend.get("soft_attention_forward")
        (expected, alpha), att_cache = attend(image["a"], image["a_proj"], h, params["W_att_h"], params["w_att"])
        if glimpse == "expected":
            z = expected
        else:
            if location is not None:
                s = np.asarray(location)
            elif glimpse == "sample":
                s = sample_locations(alpha, rng)
            else:
                s = np.argmax(alpha, axis=1)
            z = image["a"][np.arange(len(s)), s]
        if config.gate:
            beta = sigmoid(h @ params["W_beta"] + params["b_beta"])       # (N, 1)
            z_in, z = z, beta * z
    lstm_step = backend.get("lstm_step_forward")
    (h_next, c_next), lstm_cache = lstm_step(np.concatenate([x, z], axis=1), h, c,
                                             params["Wx"], params["Wh"], params["b"])
    gate_cache = (h, z_in, beta, params["W_beta"]) if beta is not None else None
    cache = (x.shape[1], glimpse, att_cache, gate_cache, lstm_cache)
    return (h_next, c_next, z, alpha, s), cache
    # END SOLUTION


def step_backward(dh_next, dc_next, dz, dalpha, cache, grads, weights_T=None):
    """Backward of step_forward. dz: (N, Dz) from the output layer; dalpha: (N, L) or None (from a
    penalty or REINFORCE). Adds the gate's and the attention's weight gradients into grads; returns
    dx, dh, dc, the gradient of the per-image input the step read (da_proj with attention, dg for the
    baseline's z_t = g, else 0) and da_lstm (N, 4H), the LSTM's gate gradient: the LSTM's weight
    gradients are sums over the steps, which backward() forms with one product over all of them.
    weights_T: nn.stacked_weights_T(Wx, Wh), which backward() makes once for all the steps (made here
    if not given); the LSTM's dx and dh are one product with it (nn.lstm_input_grads).

    A sampled glimpse a_s depends on alpha only through the sampling, which has no gradient: the
    attention is then trained by dalpha alone (REINFORCE), so it receives dz = 0.
    """
    E, glimpse, att_cache, gate_cache, lstm_cache = cache
    da_lstm, dc = backend.get("lstm_step_gate_grads")(dh_next, dc_next, lstm_cache)
    if weights_T is None:
        weights_T = stacked_weights_T(lstm_cache[3], lstm_cache[4])
    dxz, dh = lstm_input_grads(da_lstm, weights_T, lstm_cache[3].shape[0])   # what the inputs need now; dWx, dWh later
    dx, dz = dxz[:, :E], dxz[:, E:] + dz
    if att_cache is None:
        return dx, dh, dc, (dz if dz.shape[1] else 0), da_lstm   # the baseline's z_t is g: dz flows to g
    if gate_cache is not None:  # z = beta * z_in, beta = sigmoid(h W_beta + b_beta)
        h, z_in, beta, W_beta = gate_cache
        dlogit = np.sum(dz * z_in, axis=1, keepdims=True) * beta * (1 - beta)   # (N, 1)
        grads["W_beta"] += h.T @ dlogit
        grads["b_beta"] += dlogit.sum(axis=0)
        dh = dh + dlogit @ W_beta.T
        dz = beta * dz
    if glimpse != "expected":
        dz = np.zeros_like(dz)
    if dalpha is None:
        dalpha = np.zeros(att_cache[6].shape, dtype=dz.dtype)
    # need_da=False: the features come from a frozen CNN, so their gradient (N, L, D) is never formed
    _, da_proj, dh_att, dWh, dw = backend.get("soft_attention_backward")(dz, dalpha, att_cache, need_da=False)
    grads["W_att_h"] += dWh
    grads["w_att"] += dw
    return dx, dh + dh_att, dc, da_proj, da_lstm


# --- the whole caption (teacher forcing) ---------------------------------------------------------
def forward(params, config, features, captions, rng=None, train=False, glimpse="expected", locations=None):
    """Read a batch of captions word by word, predicting each next word.

    features: (N, L, D); captions: (N, T+1) ints <START> w_1 .. w_n <END> <NULL>...
    train: apply dropout (drawn from rng). glimpse / locations (N, T): see step_forward.
    Returns logits (N, T, V), alphas (N, T, L) or None, locations (N, T) or None, and the cache.
    """
    words_in = captions[:, :-1]
    emb, emb_cache = embedding_forward(words_in, params["W_embed"], null_idx=NULL)
    image, image_cache = image_forward(params, config, features)
    h, c = image["h"], image["c"]
    T = words_in.shape[1]
    hs, zs, alphas, locs, step_caches = [], [], [], [], []
    for t in range(T):
        loc_t = None if locations is None else locations[:, t]
        (h, c, z, alpha, s), cache = step_forward(params, config, emb[:, t], h, c, image, glimpse, rng, loc_t)
        hs.append(h)
        zs.append(z)
        alphas.append(alpha)
        locs.append(s)
        step_caches.append(cache)
    hs, zs = np.stack(hs, axis=1), np.stack(zs, axis=1)
    hs_drop, drop_cache = dropout_forward(hs, config.dropout, rng, train)
    logits, out_cache = output_forward(params, config, emb, hs_drop, zs)
    alphas = None if alphas[0] is None else np.stack(alphas, axis=1)
    locs = None if locs[0] is None else np.stack(locs, axis=1)
    cache = (emb_cache, image_cache, step_caches, drop_cache, out_cache, params)
    return logits, alphas, locs, cache


def backward(dlogits, dalphas, cache):
    """dlogits: (N, T, V); dalphas: (N, T, L) or None. Returns grads, a dict like params."""
    emb_cache, image_cache, step_caches, drop_cache, out_cache, params = cache
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    demb, dhs_drop, dzs, grads["Lh"], dLz, grads["Lo"], grads["bo"] = deep_output_backward(dlogits, out_cache)
    if "Lz" in params:
        grads["Lz"] = dLz
    dhs = dropout_backward(dhs_drop, drop_cache)
    dh, dc = np.zeros_like(dhs[:, 0]), np.zeros_like(dhs[:, 0])
    dimage = 0  # attention models: the gradient of a_proj; the baseline: of g (through every z_t)
    das = []
    weights_T = stacked_weights_T(params["Wx"], params["Wh"])   # once for all the steps
    for t in reversed(range(len(step_caches))):
        dalpha = None if dalphas is None else dalphas[:, t]
        dx, dh, dc, dimage_t, da_lstm = step_backward(dh + dhs[:, t], dc, dzs[:, t], dalpha, step_caches[t], grads,
                                                      weights_T)
        demb[:, t] += dx
        dimage = dimage + dimage_t
        das.append(da_lstm)
    # The LSTM's weight gradients are sums over time, dWx = sum_t x_t^T da_t: one product over all
    # N T rows (several times faster than T products of N rows each, and the same numbers).
    dWx, dWh, db = lstm_weight_grads([cache[4] for cache in reversed(step_caches)], das)   # das run backwards
    grads["Wx"] += dWx
    grads["Wh"] += dWh
    grads["b"] += db
    attention = step_caches[0][2] is not None
    image_backward(dh, dc, dimage if attention else None, 0 if attention else dimage, image_cache, grads)
    grads["W_embed"] = embedding_backward(demb, emb_cache)
    return grads


def output_forward(params, config, emb, h, z):
    """The deep output layer: logits = Lo tanh(emb + Lh h + Lz z) + bo, any leading dims.

    A baseline without a context (image_every_step=False) has no Lz: it gets one zero column for z
    and a zero Lz, so the Lz z term vanishes."""
    Lz = params.get("Lz")
    if Lz is None:
        z, Lz = np.zeros(z.shape[:-1] + (1,), h.dtype), np.zeros((1, emb.shape[-1]), h.dtype)
    return deep_output_forward(emb, h, z, params["Lh"], Lz, params["Lo"], params["bo"], use_tanh=config.deep_tanh)


def caption_mask(captions):
    """(N, T) bool: which targets captions[:, 1:] are real words (or <END>), not padding."""
    return captions[:, 1:] != NULL


def loss_and_grads(params, config, features, captions, rng, train=True, glimpse="expected", locations=None,
                   dalphas_extra=None):
    """Cross-entropy (+ lambda * penalty with attention) and its gradients; the shared part of
    every model's loss. dalphas_extra(alphas, logp_caption) -> (N, T, L) lets the hard model add
    its REINFORCE and entropy terms. Returns loss, grads, and a dict of what the forward pass saw."""
    logits, alphas, locs, cache = forward(params, config, features, captions, rng, train, glimpse, locations)
    targets, mask = captions[:, 1:], caption_mask(captions)
    ce, ce_cache = backend.get("temporal_softmax_loss_forward")(logits, targets, mask)
    dlogits = backend.get("temporal_softmax_loss_backward")(1.0, ce_cache)
    loss, dalphas = float(ce), None
    if alphas is not None and config.penalty:
        penalty, pen_cache = doubly_stochastic_penalty_forward(alphas, mask)
        loss += config.penalty * float(penalty)
        dalphas = doubly_stochastic_penalty_backward(config.penalty, pen_cache)
    info = {"ce": float(ce), "alphas": alphas, "locations": locs}
    if dalphas_extra is not None:
        info["logp_caption"] = caption_log_likelihood(logits, targets, mask)
        extra = dalphas_extra(alphas, locs, info["logp_caption"])
        dalphas = extra if dalphas is None else dalphas + extra
    return loss, backward(dlogits, dalphas, cache), info


def caption_log_likelihood(logits, targets, mask):
    """log p(y_n | image) summed over each caption's words: (N,)."""
    logp = np.take_along_axis(log_softmax(logits), targets[..., None], axis=2)[..., 0]
    return np.sum(logp * mask, axis=1)


def loss(params, batch, rng, config):
    """The baseline's or soft model's training loss: (loss, grads).

    batch: {"features": (N, L, D), "captions": (N, T+1) ints}. Dropout masks come from rng.
    (The hard model's loss is hard_attention.loss.)
    """
    if config.attention == "hard":
        raise ValueError("use minicap.models.hard_attention.loss for the hard-attention model")
    value, grads, _ = loss_and_grads(params, config, batch["features"], batch["captions"], rng, train=True)
    return value, grads


# --- decoding -----------------------------------------------------------------------------------
def initial_state(params, config, features):
    """The decoding state for images features (N, L, D): a dict of batch-first arrays."""
    image, _ = image_forward(params, config, features)
    return image


def make_step(params, config, glimpse=None, rng=None):
    """The decode step of minicap.decode: step(tokens (B,), state) -> (log_probs (B, V), state, extras).

    glimpse: how the step looks (default: "expected" for soft, "argmax" for hard: the single most
    likely location, so decoding is deterministic; "sample" draws each location from rng, a
    np.random.Generator). extras["alpha"] (B, L) is the attention that predicted the token; a hard
    glimpse also reports extras["location"] (B,).
    """
    glimpse = glimpse or ("argmax" if config.attention == "hard" else "expected")
    if glimpse == "sample" and rng is None:
        raise ValueError('glimpse="sample" draws the locations at random: pass rng, a np.random.Generator')

    def step(tokens, state):
        x, _ = embedding_forward(np.asarray(tokens), params["W_embed"])
        (h, c, z, alpha, s), _ = step_forward(params, config, x, state["h"], state["c"], state, glimpse, rng)
        logits, _ = output_forward(params, config, x, h, z)
        extras = {}
        if alpha is not None:
            extras["alpha"] = alpha
        if s is not None:
            extras["location"] = s
        return log_softmax(logits), dict(state, h=h, c=c), extras

    return step


def generate(params, config, features, beam_size=1, max_len=20, batch_size=500, glimpse=None, rng=None):
    """Caption images: features (N, L, D) -> list of N decode.Hypothesis (tokens without <START>/<END>,
    extras["alpha"] (n, L) per generated token). beam_size 1 is greedy decoding. glimpse, rng: see
    make_step (rng is needed only for glimpse="sample")."""
    from minicap.decode import beam_search, greedy
    step = make_step(params, config, glimpse, rng)
    out = []
    for i in range(0, len(features), batch_size):
        state = initial_state(params, config, features[i:i + batch_size].astype(params["Wx"].dtype))
        if beam_size == 1:
            out += greedy(step, state, START, END, max_len)
        else:
            out += [beams[0] for beams in beam_search(step, state, START, END, max_len, beam_size)]
    return out


def make_train_step(config, features, captions, batch_size, lr=None, steps=None):
    """train_step(run) -> (loss, grads) for minicap.train.train: a random minibatch from run.rng.
    The hard model keeps its REINFORCE baseline b in run.state["baseline"] (saved, so resuming is exact).
    With lr and steps, the learning rate follows a cosine from lr down to 0 at `steps` (a function of
    run.step, so a resumed run follows the same schedule)."""
    from minicap.data import sample_minibatch
    from minicap.models import hard_attention

    def train_step(run):
        if lr is not None:
            run.optimizer.lr = cosine_lr(lr, run.step, steps)
        idx = sample_minibatch(len(features), batch_size, run.rng)
        batch = {"features": features[idx], "captions": captions[idx]}
        if config.attention != "hard":
            return loss(run.params, batch, run.rng, config)
        b = float(run.state["baseline"]) if "baseline" in run.state else None
        value, grads, info = hard_attention.forward_backward(run.params, batch, run.rng, config, b)
        if info["sampled"]:
            run.state["baseline"] = np.array(hard_attention.update_baseline(b, info["logp_caption"],
                                                                            config.baseline_decay))
        return value, grads

    return train_step
