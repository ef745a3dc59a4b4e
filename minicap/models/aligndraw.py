"""alignDRAW: draw an image from a caption, attending over its words (Mansimov et al. 2016).

alignDRAW is DRAW (minicap.models.draw) with two changes: the generator is told what to draw by an
attention over the caption's words, and the prior over the latents is learned instead of N(0, I).

The caption y = (y_1 .. y_L) (word ids, padded, with a 0/1 mask) is read once by a bidirectional LSTM:

    h^lang_j = [h^fwd_j ; h^bwd_j]                        (Bt, L, 2 H_lang)   the words, in context

(or, with config caption_encoder="bilstm+words", h^lang_j = [h^fwd_j ; h^bwd_j ; E y_j]: the word itself
beside it; with caption_encoder="words", h^lang_j = [E y_j ; P_j]: each word's embedding beside a
learned vector for its position, nothing mixed; see encode_caption_forward.)

Then, for t = 1..T, with h^gen_{t-1} the previous generator ("decoder") state:

    x_hat_t  = x - sigmoid(c_{t-1})                           the error image
    r_t      = read(x, x_hat_t, h^gen_{t-1})                  DRAW's filterbank read   (Bt, R)
    h^inf_t  = LSTM_inf([r_t, h^gen_{t-1}], h^inf_{t-1})      the inference network    (Bt, enc)
    Q:  mu_t = h^inf_t W_mu + b_mu,   log sigma_t = h^inf_t W_ls + b_ls                (Bt, Z)
    P:  mu'_t = tanh(h^gen_{t-1} W'_mu + b'_mu), log sigma'_t = tanh(h^gen_{t-1} W'_ls + b'_ls)
        (P(Z_1) = N(0, I): there is no previous state to condition on)
    z_t      = mu_t + sigma_t eps_t,  eps_t ~ N(0, I)         the reparameterisation trick
    e_j^t    = v^T tanh(U h^lang_j + b + W h^gen_{t-1})       the alignment score of word j
    alpha^t  = softmax_j(e^t) over the real words             padding gets exactly zero weight
    s_t      = sum_j alpha_j^t h^lang_j                        the sentence context     (Bt, S)
    h^gen_t  = LSTM_gen([z_t, s_t], h^gen_{t-1})              the generator            (Bt, dec)
    c_t      = c_{t-1} + write(h^gen_t)                       DRAW's filterbank write  (Bt, B, A)

The alignment is minicap.nn.soft_attention_forward with a = h^lang, a_proj = h^lang U + b (computed
once per caption) and mask = the caption's mask. The no-alignment variant of the paper's table
(config align=False) replaces s_t by the mean of h^lang over the real words, the same at every step.

The loss is the negative variational lower bound, in nats per image, averaged over the batch:

    L^x = -log p(x | c_T) = sum_pixels softplus(c_T) - x c_T        Bernoulli(sigmoid(c_T))
    L^z = sum_t KL(Q(Z_t | ..) || P(Z_t | ..))
    KL(N(mu, sigma^2) || N(mu', sigma'^2)) = sum_j log sigma'_j - log sigma_j
                                             + (sigma_j^2 + (mu_j - mu'_j)^2) / (2 sigma'_j^2) - 1/2
    loss = mean over the batch of L^x + L^z   >=  -log p(x | y)

With config kl_weight = beta != 1 (the default is 1, the paper's bound) the training loss is
mean(L^x + beta L^z), as in a beta-VAE: beta > 1 makes information in the latents cost more, so the
generator leans on the caption for what to draw (the bound, parts["bound"], stays L^x + L^z).

With config layout=True (an experiment, not the paper's) the write window of step t comes from a
second, small LSTM that reads only the caption (layout_forward: h^lay_t, its own attention over the
words) while the patch still comes from h^gen_t: where a glimpse is written cannot depend on the
latents or the image, only on the words. With layout_to_generator=True as well, the generator is told
where it is writing: h^lay_t joins its alignment query and its input,

    e_j^t = v^T tanh(U h^lang_j + b + W [h^gen_{t-1} ; h^lay_t]),  h^gen_t = LSTM_gen([z_t, s_t, h^lay_t], h^gen_{t-1})

so it can pick the word (the digit) that belongs under this step's window.

The canvas and the generator and inference states start from learned values (canvas0, dec_h0,
dec_c0, enc_h0, enc_c0); the canvas starts near -6, so sigmoid(c_0) is black, not grey (REFERENCE
notes the authors' -10). To generate, run the generator alone: z_t ~ P(Z_t | Z_{1:t-1}, y).

DRAW's pieces are reused, not copied: draw.read_step / write_step (the filterbank read and write),
draw.bernoulli_nll_forward/backward, and draw.init_params for the parameters they share.

Functions:

    default_config(**overrides) -> config;  init_params(config, rng, dtype) -> params
    encode_words(captions, vocab) -> (ids (N, L) int64, mask (N, L) bool)   words only, no <START>/<END>
    forward(params, x, words, mask, eps, config) -> (loss, parts), cache;  backward(cache) -> grads
    loss(params, batch, rng, config) -> (loss, grads)     batch = {"x", "words", "mask"}
    bound(params, x, words, mask, config, rng) -> (N,)   the bound of each image, nats
    generate(params, words, mask, config, rng, record) -> images (N, B, A) (and the history)
    gaussian_kl_forward/backward, prior_forward/backward  the two new layers (in `minicap gradcheck`)
"""
import numpy as np

from minicap import backend, nn
from minicap.data.vocab import NULL, UNK
from minicap.errors import MinicapError
from minicap.models import draw
from minicap.nn.filterbank import attention_window_backward, attention_window_forward


def default_config(**overrides):
    """alignDRAW's sizes. The paper's MNIST model: T = 32, read and write 8x8, LSTMs 300, Z = 150,
    language LSTMs 128 each way, alignment 512. The defaults here are smaller, to train in about 30
    minutes on two CPU cores (see docs/aligndraw.md)."""
    config = dict(width=60, height=60, T=16, read_n=8, write_n=8, enc_size=256, dec_size=256, z_size=100,
                  embed_size=64, lang_size=64, align_size=128, vocab_size=None, attention=True, align=True,
                  canvas_init=-6.0, caption_encoder="bilstm", position_size=64, max_words=16, kl_weight=1.0,
                  layout=False, layout_size=128, layout_encoder=None, layout_hidden=(), layout_max_span=0.0,
                  layout_to_generator=False)
    unknown = set(overrides) - set(config)
    if unknown:
        raise ValueError(f"unknown alignDRAW config keys: {', '.join(sorted(unknown))}")
    config.update(overrides)
    if not config["kl_weight"] > 0:
        raise ValueError(f"kl_weight must be positive, got {config['kl_weight']!r}")
    if config["layout"] and not config["attention"]:
        raise ValueError("layout=True needs attention=True: the layout path sets the write windows")
    if config["layout_to_generator"] and not config["layout"]:
        raise ValueError("layout_to_generator=True needs layout=True: it shows the layout path's state to the generator")
    if config["layout_encoder"] not in (None, *CAPTION_ENCODERS):
        raise ValueError(f"layout_encoder must be None or one of {', '.join(CAPTION_ENCODERS)}, "
                         f"got {config['layout_encoder']!r}")
    if config["caption_encoder"] not in CAPTION_ENCODERS:
        raise ValueError(f"caption_encoder must be one of {', '.join(CAPTION_ENCODERS)}, got {config['caption_encoder']!r}")
    return config


CAPTION_ENCODERS = ("bilstm", "words", "bilstm+words")


def lang_width(config):
    """The width of h^lang_j (and of the sentence context s_t): 2 H_lang for the bidirectional LSTM,
    E + P for the words encoder (the word's embedding beside its position's), 2 H_lang + E for
    bilstm+words (the LSTM states beside the word's own embedding)."""
    if config["caption_encoder"] == "words":
        return config["embed_size"] + config["position_size"]
    if config["caption_encoder"] == "bilstm+words":
        return 2 * config["lang_size"] + config["embed_size"]
    return 2 * config["lang_size"]


def layout_encoder(config):
    """The caption encoder the layout path reads (config layout_encoder; None: the generator's own)."""
    return config["layout_encoder"] or config["caption_encoder"]


def init_params(config, rng, dtype=np.float32):
    """DRAW's parameters (draw.init_params) with the generator's input widened to [z, s], plus:

    embed_W (V, E); lang_f_Wx (E, 4 H_lang), lang_f_Wh, lang_f_b and lang_b_* (the two directions), or
    with caption_encoder="words" position_W (max_words, P) instead; prior_mu_W (dec, Z), prior_mu_b,
    prior_ls_W, prior_ls_b; dec_h0, dec_c0 (dec,), enc_h0, enc_c0 (enc,); and with align=True
    align_U (S, Aa), align_b (Aa,), align_W (dec, Aa), align_v (Aa,), S = lang_width(config). With
    layout=True the layout path's lay_* (LSTM, start states, alignment) and write_att_W (Dl, 5), the
    window now read from h^lay; with layout_to_generator also Dl more rows of dec_Wx and of align_W.
    """
    if not config.get("vocab_size"):
        raise ValueError("config['vocab_size'] must be set (the size of the caption vocabulary)")
    params = {k: v.astype(np.float64) for k, v in draw.init_params(config, rng, np.float64).items()}
    E, H, Aa = config["embed_size"], config["lang_size"], config["align_size"]
    D, Z, V = config["dec_size"], config["z_size"], config["vocab_size"]

    def weight(fan_in, fan_out, scale=1.0):
        return rng.standard_normal((fan_in, fan_out)) * scale / np.sqrt(fan_in)

    def lstm_bias(size):
        b = np.zeros(4 * size)
        b[size:2 * size] = 1.0  # forget gate open
        return b

    def add_encoder(encoder):   # a caption encoder's parameters (the word embedding is made once, above)
        if encoder == "words":
            if "position_W" not in params:
                params["position_W"] = rng.standard_normal((config["max_words"], config["position_size"])) * 0.1
        elif "lang_f_Wx" not in params:
            params.update({"lang_f_Wx": weight(E, 4 * H), "lang_f_Wh": weight(H, 4 * H), "lang_f_b": lstm_bias(H),
                           "lang_b_Wx": weight(E, 4 * H), "lang_b_Wh": weight(H, 4 * H), "lang_b_b": lstm_bias(H)})

    S = lang_width(config)
    params["dec_Wx"] = weight(Z + S, 4 * D)
    params["embed_W"] = rng.standard_normal((V, E)) * 0.1
    add_encoder(config["caption_encoder"])
    # the prior starts near N(0, I): small weights, zero biases
    params.update({"prior_mu_W": weight(D, Z, 0.1), "prior_mu_b": np.zeros(Z),
                   "prior_ls_W": weight(D, Z, 0.1), "prior_ls_b": np.zeros(Z),
                   "dec_h0": np.zeros(D), "dec_c0": np.zeros(D),
                   "enc_h0": np.zeros(config["enc_size"]), "enc_c0": np.zeros(config["enc_size"])})
    if config["align"]:
        params.update({"align_U": weight(S, Aa), "align_b": np.zeros(Aa),
                       "align_W": weight(D, Aa), "align_v": weight(Aa, 1)[:, 0]})
    if config["layout"]:   # drawn last, so a model without the layout path starts exactly as before
        Dl, lay_encoder = config["layout_size"], layout_encoder(config)
        add_encoder(lay_encoder)           # the layout path's own encoder, if another (the embedding is shared)
        S = lang_width(dict(config, caption_encoder=lay_encoder))
        params.update({"lay_Wx": weight(S, 4 * Dl), "lay_Wh": weight(Dl, 4 * Dl), "lay_b": lstm_bias(Dl),
                       "lay_h0": np.zeros(Dl), "lay_c0": np.zeros(Dl),
                       "lay_align_U": weight(S, Aa), "lay_align_b": np.zeros(Aa),
                       "lay_align_W": weight(Dl, Aa), "lay_align_v": weight(Aa, 1)[:, 0],
                       "write_att_W": weight(Dl, 5, 0.1)})   # the write window now comes from h^lay
        if config["layout_to_generator"]:   # h^lay_t joins the generator's input and its alignment query
            params["dec_Wx"] = np.vstack([params["dec_Wx"], weight(Dl, 4 * D)])
            if config["align"]:
                params["align_W"] = np.vstack([params["align_W"], weight(Dl, Aa)])
    return {k: v.astype(dtype) for k, v in params.items()}


def encode_words(captions, vocab):
    """Captions -> word ids (N, L) int64 padded with <NULL>, and mask (N, L) bool (True on real words).

    Only the words: no <START>/<END> (the encoder reads the whole caption at once). A word that is not
    in the vocabulary raises MinicapError naming it and listing the vocabulary.
    """
    from collections import Counter
    if not len(captions):
        raise MinicapError("no captions to encode: give at least one, e.g. 'the digit three is at the top of the digit one'")
    unknown = Counter()
    rows = [vocab.encode(c, unknown) for c in captions]
    if unknown:
        known = " ".join(w for w in vocab.words if not w.startswith("<"))
        raise MinicapError(f"unknown word{'s' if len(unknown) > 1 else ''} in the caption: "
                           f"{', '.join(repr(w) for w in sorted(unknown))}. Write it with the words the model was trained "
                           f"on: {known}")
    empty = [k for k, r in enumerate(rows) if not r]
    if empty:
        raise MinicapError(f"caption {empty[0]} ({captions[empty[0]]!r}) has no words; give a caption such as "
                           f"'the digit three is at the top of the digit one'")
    L = max(len(r) for r in rows)
    ids = np.full((len(rows), L), NULL, dtype=np.int64)
    for k, r in enumerate(rows):
        ids[k, :len(r)] = r
    return ids, ids != NULL


# --- the two new layers: the learned prior and the KL between two diagonal Gaussians ---------------
def prior_forward(h, W_mu, b_mu, W_ls, b_ls):
    """P(Z_t | Z_{1:t-1}, y) from the previous generator state: mu' = tanh(h W_mu + b_mu),
    log sigma' = tanh(h W_ls + b_ls). h: (Bt, dec), W_*: (dec, Z), b_*: (Z,).
    Returns (mu' (Bt, Z), log sigma' (Bt, Z)) and the cache. (tanh keeps sigma' in [1/e, e].)"""
    mu = np.tanh(h @ W_mu + b_mu)
    log_sigma = np.tanh(h @ W_ls + b_ls)
    return (mu, log_sigma), (h, W_mu, W_ls, mu, log_sigma)


def prior_backward(dmu, dlog_sigma, cache):
    """dmu, dlog_sigma: (Bt, Z). Returns dh (Bt, dec), dW_mu, db_mu, dW_ls, db_ls."""
    h, W_mu, W_ls, mu, log_sigma = cache
    da_mu = dmu * (1 - mu * mu)
    da_ls = dlog_sigma * (1 - log_sigma * log_sigma)
    dh = da_mu @ W_mu.T + da_ls @ W_ls.T
    return dh, h.T @ da_mu, da_mu.sum(axis=0), h.T @ da_ls, da_ls.sum(axis=0)


def gaussian_kl_forward(mu_q, log_sigma_q, mu_p, log_sigma_p):
    """KL(N(mu_q, sigma_q^2) || N(mu_p, sigma_p^2)) of diagonal Gaussians, summed over the last axis:

        kl = sum_j log sigma_p - log sigma_q + (sigma_q^2 + (mu_q - mu_p)^2) / (2 sigma_p^2) - 1/2

    (0 exactly when the two are equal; with mu_p = log sigma_p = 0 it is DRAW's KL to N(0, I).)
    All inputs (Bt, Z). Returns kl (Bt,) and the cache.
    """
    # BEGIN SOLUTION
    diff = mu_q - mu_p
    ratio = np.exp(2 * (log_sigma_q - log_sigma_p))            # sigma_q^2 / sigma_p^2
    scaled = diff * diff * np.exp(-2 * log_sigma_p)            # (mu_q - mu_p)^2 / sigma_p^2
    kl = (log_sigma_p - log_sigma_q + 0.5 * (ratio + scaled) - 0.5).sum(axis=1)
    return kl, (diff, ratio, scaled, log_sigma_p)
    # END SOLUTION


def gaussian_kl_backward(dkl, cache):
    """dkl: (Bt,). Returns dmu_q, dlog_sigma_q, dmu_p, dlog_sigma_p, each (Bt, Z):

        d/dmu_q = (mu_q - mu_p) / sigma_p^2 = -d/dmu_p
        d/dlog sigma_q = sigma_q^2 / sigma_p^2 - 1
        d/dlog sigma_p = 1 - (sigma_q^2 + (mu_q - mu_p)^2) / sigma_p^2
    """
    # BEGIN SOLUTION
    diff, ratio, scaled, log_sigma_p = cache
    d = dkl[:, None]
    dmu_q = d * diff * np.exp(-2 * log_sigma_p)
    return dmu_q, d * (ratio - 1), -dmu_q, d * (1 - ratio - scaled)
    # END SOLUTION


# --- the caption encoder and the alignment ---------------------------------------------------------
def encode_caption_forward(params, words, mask, config):
    """The words in context, h^lang (Bt, L, S), zero at padding; and with align=True its projection
    a_proj = h^lang U + b (Bt, L, Aa), used by every step's alignment.

    caption_encoder "bilstm" (the paper's): h^lang_j = [h^fwd_j ; h^bwd_j], a bidirectional LSTM.
    caption_encoder "words": h^lang_j = [E y_j ; P_j], the word's embedding beside a learned vector for
    its position j in the caption; nothing mixes the words, so what a word is and where it stands
    reach the generator separately (docs/aligndraw.md: composing novel captions).
    caption_encoder "bilstm+words": h^lang_j = [h^fwd_j ; h^bwd_j ; E y_j], the words in context beside
    the word itself: attending to a digit's word gives its identity whatever the words around it."""
    emb, emb_cache = nn.embedding_forward(words, params["embed_W"], null_idx=NULL)
    if config["caption_encoder"] == "words":
        L = words.shape[1]
        if L > config["max_words"]:
            raise MinicapError(f"a caption has {L} words; this model reads at most {config['max_words']} "
                               f"(its position vectors); shorten the caption")
        positions = np.broadcast_to(params["position_W"][:L], (words.shape[0], L, config["position_size"]))
        h_lang = np.concatenate([emb, positions], axis=2) * mask[:, :, None].astype(emb.dtype)
        lang_cache = (mask, config["embed_size"], config["max_words"])
    else:
        h_lang, lang_cache = nn.bilstm_forward(emb, mask, params["lang_f_Wx"], params["lang_f_Wh"],
                                               params["lang_f_b"], params["lang_b_Wx"], params["lang_b_Wh"],
                                               params["lang_b_b"])
        if config["caption_encoder"] == "bilstm+words":
            h_lang = np.concatenate([h_lang, emb * mask[:, :, None].astype(emb.dtype)], axis=2)
            lang_cache = (lang_cache, mask, 2 * config["lang_size"])
    a_proj, proj_cache = None, None
    if config["align"]:
        a_proj, proj_cache = nn.temporal_affine_forward(h_lang, params["align_U"], params["align_b"])
    return (h_lang, a_proj), (emb_cache, config["caption_encoder"], lang_cache, proj_cache)


def encode_caption_backward(dh_lang, da_proj, cache):
    """dh_lang: (Bt, L, S), da_proj: (Bt, L, Aa) or None. Returns a dict of parameter grads."""
    emb_cache, encoder, lang_cache, proj_cache = cache
    grads = {}
    if da_proj is not None:
        dh, grads["align_U"], grads["align_b"] = nn.temporal_affine_backward(da_proj, proj_cache)
        dh_lang = dh_lang + dh
    if encoder == "words":
        mask, E, max_words = lang_cache
        dh_lang = dh_lang * mask[:, :, None].astype(dh_lang.dtype)     # padding was zeroed
        demb = dh_lang[:, :, :E]
        grads["position_W"] = np.zeros((max_words, dh_lang.shape[2] - E), dh_lang.dtype)
        grads["position_W"][:dh_lang.shape[1]] = dh_lang[:, :, E:].sum(axis=0)
    elif encoder == "bilstm+words":
        lang_cache, mask, width = lang_cache
        demb, *dlang = nn.bilstm_backward(np.ascontiguousarray(dh_lang[:, :, :width]), lang_cache)
        demb = demb + dh_lang[:, :, width:] * mask[:, :, None].astype(dh_lang.dtype)
        grads.update(zip(["lang_f_Wx", "lang_f_Wh", "lang_f_b", "lang_b_Wx", "lang_b_Wh", "lang_b_b"], dlang))
    else:
        demb, *dlang = nn.bilstm_backward(dh_lang, lang_cache)
        grads.update(zip(["lang_f_Wx", "lang_f_Wh", "lang_f_b", "lang_b_Wx", "lang_b_Wh", "lang_b_b"], dlang))
    grads["embed_W"] = nn.embedding_backward(np.ascontiguousarray(demb), emb_cache)
    return grads


def mean_words_forward(h_lang, mask):
    """The no-alignment sentence vector: the mean of h^lang over the real words. (Bt, L, S) -> (Bt, S)."""
    weights = mask / mask.sum(axis=1, keepdims=True)              # (Bt, L), each row sums to 1
    weights = weights.astype(h_lang.dtype)
    return np.einsum("nl,nld->nd", weights, h_lang), weights


def align_step(params, h_lang, a_proj, mask, h_gen_prev):
    """s_t and alpha^t from the previous generator state: ((Bt, S), (Bt, L)), and the cache."""
    attend = backend.get("soft_attention_forward")       # minicap.nn.soft_attention_forward or its twin
    return attend(h_lang, a_proj, h_gen_prev, params["align_W"], params["align_v"], mask=mask)


# --- the layout path (config layout=True): where to write comes from the caption alone ------------
def _layout_words(params, words, mask, config, h_lang):
    """The word states the layout path attends over: the generator's h_lang, or with a different
    config layout_encoder that encoder's own (Bt, L, S_lay), and its cache (None when shared).

    config layout_hidden: word ids the layout path does not see: each is read as <UNK> (a word whose
    identity is hidden), so where a glimpse goes cannot depend on which of these words the caption has
    (the command's --layout-hides-digits: the ten digit words)."""
    hidden = list(config["layout_hidden"])
    if layout_encoder(config) == config["caption_encoder"] and not hidden:
        return h_lang, None
    if hidden:
        words = np.where(np.isin(words, hidden), UNK, words)
    (h_lay_lang, _), cache = encode_caption_forward(params, words, mask,
                                                    dict(config, caption_encoder=layout_encoder(config), align=False))
    return h_lay_lang, cache


def layout_forward(params, h_lang, mask, T):
    """The write windows' states, from a small LSTM that reads only the caption:

        e_j^t = v_l^T tanh(U_l h^lang_j + b_l + W_l h^lay_{t-1}),  alpha^t = softmax_j(e^t),  s^lay_t = sum_j alpha_j^t h^lang_j
        h^lay_t = LSTM_lay(s^lay_t, h^lay_{t-1})                  (Bt, Dl)   its own attention over the words
        write window_t = h^lay_t W_write_att + b_write_att           (the patch still comes from h^gen_t)

    Neither the image, nor the latents, nor the generator reach h^lay: where each glimpse is written
    cannot depend on what the latents say, only on the caption's words (docs/aligndraw.md: why novel
    captions are hard). h_lang: (Bt, L, S), mask: (Bt, L). Returns the T states [(Bt, Dl)], the
    alignments [(Bt, L)] and the cache."""
    attend = backend.get("soft_attention_forward")
    lstm_step = backend.get("lstm_step_forward")
    a_proj, proj_cache = nn.temporal_affine_forward(h_lang, params["lay_align_U"], params["lay_align_b"])
    Bt = h_lang.shape[0]
    h = np.broadcast_to(params["lay_h0"], (Bt, params["lay_h0"].shape[0])).copy()
    c = np.broadcast_to(params["lay_c0"], h.shape).copy()
    states, alphas, steps = [], [], []
    for _ in range(T):
        (s, alpha), att_cache = attend(h_lang, a_proj, h, params["lay_align_W"], params["lay_align_v"], mask=mask)
        (h, c), lstm_cache = lstm_step(s, h, c, params["lay_Wx"], params["lay_Wh"], params["lay_b"])
        states.append(h), alphas.append(alpha), steps.append((att_cache, lstm_cache))
    return states, alphas, (params, h_lang, proj_cache, steps)


def layout_backward(dstates, cache):
    """dstates: the T gradients [(Bt, Dl)] reaching h^lay_t from the writes, last step first (as the
    model's backward pass meets them). Returns dh_lang (Bt, L, S)
    and the layout path's parameter gradients."""
    params, h_lang, proj_cache, steps = cache
    weights_T = nn.stacked_weights_T(params["lay_Wx"], params["lay_Wh"])
    dh = dc = np.zeros_like(dstates[0])
    dh_lang, da_proj, dW, dv, das = np.zeros_like(h_lang), None, 0, 0, []
    for (att_cache, lstm_cache), dstate in zip(reversed(steps), dstates):
        ds, dh, dc = draw.lstm_step_backward_keeping_da(dh + dstate, dc, lstm_cache, das, weights_T)
        dh_l, dap, dquery, dW_t, dv_t = backend.get("soft_attention_backward")(ds, np.zeros_like(h_lang[:, :, 0]),
                                                                               att_cache)
        dh, dh_lang, dW, dv = dh + dquery, dh_lang + dh_l, dW + dW_t, dv + dv_t
        da_proj = dap if da_proj is None else da_proj + dap
    grads = dict(zip(["lay_Wx", "lay_Wh", "lay_b"],
                     nn.lstm_weight_grads([step[1] for step in reversed(steps)], das)))
    dh_proj, grads["lay_align_U"], grads["lay_align_b"] = nn.temporal_affine_backward(da_proj, proj_cache)
    grads.update(lay_align_W=dW, lay_align_v=dv, lay_h0=dh.sum(axis=0), lay_c0=dc.sum(axis=0))
    return dh_lang + dh_proj, grads


def layout_write_forward(params, h_lay, h_dec, config):
    """DRAW's write with the window from h^lay_t (its span capped at config layout_max_span pixels when
    that is > 0) and the patch from h^gen_t: the canvas update (Bt, B, A) and a cache shaped like
    nn.attentive_write_forward's (so draw.write_window reads it)."""
    N, Bt = config["write_n"], h_dec.shape[0]
    w, patch_cache = nn.affine_forward(h_dec, params["write_W"], params["write_b"])
    (Fx, Fy, gamma), window_cache = attention_window_forward(h_lay, params["write_att_W"], params["write_att_b"],
                                                             config["width"], config["height"], N,
                                                             max_span=config["layout_max_span"])
    out, write_cache = backend.get("write_forward")(w.reshape(Bt, N, N), Fx, Fy, gamma)
    return out, (patch_cache, window_cache, write_cache)


def layout_write_backward(dout, cache):
    """dout: (Bt, B, A). Returns dh_lay (Bt, Dl), dh_dec (Bt, dec) and the write's parameter gradients."""
    patch_cache, window_cache, write_cache = cache
    dw, dFx, dFy, dgamma = backend.get("write_backward")(dout, write_cache)
    dh_lay, dW_att, db_att = attention_window_backward(dFx, dFy, dgamma, window_cache)
    dh_dec, dW, db = nn.affine_backward(dw.reshape(dw.shape[0], -1), patch_cache)
    return dh_lay, dh_dec, {"write_att_W": dW_att, "write_att_b": db_att, "write_W": dW, "write_b": db}


# --- the whole model -------------------------------------------------------------------------------
def _side_by_side(*parts):
    """The parts that are not None, concatenated along the features: (Bt, sum of widths). The alignment
    query [h^gen_{t-1} ; h^lay_t] and the generator's input [z_t, s_t, h^lay_t] with layout_to_generator,
    h^gen_{t-1} and [z_t, s_t] without (h^lay_t is None then)."""
    parts = [p for p in parts if p is not None]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def _start_states(params, Bt):
    def tile(v):
        return np.broadcast_to(v, (Bt, v.shape[0])).copy()
    return tile(params["enc_h0"]), tile(params["enc_c0"]), tile(params["dec_h0"]), tile(params["dec_c0"])


def forward(params, x, words, mask, eps, config):
    """The negative bound of a batch.

    x: (Bt, B, A) binary images; words: (Bt, L) ids, mask: (Bt, L) bool; eps: (T, Bt, Z) the noise.
    Returns (loss, parts) and the cache: loss = batch mean of L^x + beta L^z (beta = config["kl_weight"],
    1 by default: the negative bound in nats per image),
    parts = {"recon": mean L^x, "kl": mean L^z, "bound": (Bt,) L^x + L^z, "alphas": (T, Bt, L)}.
    """
    lstm_step = backend.get("lstm_step_forward")
    dtype = params["enc_Wh"].dtype
    Bt, T = x.shape[0], eps.shape[0]
    x = x.astype(dtype, copy=False)
    (h_lang, a_proj), enc_caption_cache = encode_caption_forward(params, words, mask, config)
    if not config["align"]:
        s_mean, mean_weights = mean_words_forward(h_lang, mask)
    lay_states, lay_cache = None, None
    if config["layout"]:
        h_lay_lang, lay_enc_cache = _layout_words(params, words, mask, config, h_lang)
        lay_states, _, lay_cache = layout_forward(params, h_lay_lang, mask, T)
        lay_cache = (lay_cache, lay_enc_cache)
    h_enc, c_enc, h_dec, c_dec = _start_states(params, Bt)
    canvas = np.broadcast_to(params["canvas0"], x.shape)
    zeros = np.zeros((Bt, config["z_size"]), dtype)
    kl, steps, alphas = np.zeros(Bt, dtype), [], []
    for t in range(T):
        sig = backend.get("sigmoid")(canvas)
        r, read_cache = draw.read_step(params, x, x - sig, h_dec, config)
        (h_enc, c_enc), enc_cache = lstm_step(np.concatenate([r, h_dec], axis=1), h_enc, c_enc,
                                              params["enc_Wx"], params["enc_Wh"], params["enc_b"])
        mu_q = h_enc @ params["mu_W"] + params["mu_b"]
        ls_q = h_enc @ params["ls_W"] + params["ls_b"]
        if t == 0:
            (mu_p, ls_p), prior_cache = (zeros, zeros), None     # P(Z_1) = N(0, I)
        else:
            (mu_p, ls_p), prior_cache = prior_forward(h_dec, params["prior_mu_W"], params["prior_mu_b"],
                                                      params["prior_ls_W"], params["prior_ls_b"])
        kl_t, kl_cache = gaussian_kl_forward(mu_q, ls_q, mu_p, ls_p)
        e = eps[t].astype(dtype, copy=False)
        sigma_q = np.exp(ls_q)
        z = mu_q + sigma_q * e
        guide = lay_states[t] if config["layout_to_generator"] else None     # where this step writes
        if config["align"]:
            (s, alpha), align_cache = align_step(params, h_lang, a_proj, mask, _side_by_side(h_dec, guide))
            alphas.append(alpha)
        else:
            s, align_cache = s_mean, None
        (h_dec, c_dec), dec_cache = lstm_step(_side_by_side(z, s, guide), h_dec, c_dec,
                                              params["dec_Wx"], params["dec_Wh"], params["dec_b"])
        if config["layout"]:
            update, write_cache = layout_write_forward(params, lay_states[t], h_dec, config)
        else:
            update, write_cache = draw.write_step(params, h_dec, config)
        canvas = canvas + update
        kl = kl + kl_t
        steps.append((sig, read_cache, enc_cache, (h_enc, e, sigma_q), prior_cache, kl_cache, align_cache,
                       dec_cache, write_cache))
    recon, nll_cache = draw.bernoulli_nll_forward(canvas, x)
    per_image = recon + kl
    beta = config["kl_weight"]
    objective = per_image if beta == 1 else recon + beta * kl
    parts = {"recon": float(recon.mean()), "kl": float(kl.mean()), "bound": per_image,
             "alphas": np.stack(alphas) if alphas else None}
    cache = (params, steps, nll_cache, enc_caption_cache, h_lang, None if config["align"] else mean_weights, config,
             lay_cache)
    return (float(objective.mean()), parts), cache


def backward(cache):
    """Gradients of forward's loss with respect to every parameter (a dict like params)."""
    params, steps, nll_cache, enc_caption_cache, h_lang, mean_weights, config, lay_cache = cache
    Z, R, D, S = config["z_size"], draw.read_size(config), config["dec_size"], h_lang.shape[2]
    Bt = nll_cache[1].shape[0]
    dnll = np.full(Bt, 1.0 / Bt, dtype=nll_cache[0].dtype)        # loss = mean over the batch
    dkl = dnll * config["kl_weight"]
    dcanvas = draw.bernoulli_nll_backward(dnll, nll_cache)
    dtype = dcanvas.dtype
    grads = {}

    def add(name, value):   # sum a parameter's gradient over the T steps (in place: fewer temporaries)
        if name in grads:
            grads[name] += value
        else:
            grads[name] = value.copy()

    def add_all(names, values):
        for name, value in zip(names, values):
            add(name, value)

    dh_lang = np.zeros_like(h_lang)
    da_proj = None
    ds_mean = np.zeros((Bt, h_lang.shape[2]), dtype)
    dh_dec = dc_dec = np.zeros((Bt, config["dec_size"]), dtype)   # flowing in from step t + 1
    dh_enc = dc_enc = np.zeros((Bt, config["enc_size"]), dtype)
    enc_das, dec_das = [], []   # each step's LSTM gate gradient da_t, last step first
    # each LSTM's [Wx; Wh]^T, made once for all T steps (nn.lstm_input_grads: one product per step)
    enc_weights_T = nn.stacked_weights_T(params["enc_Wx"], params["enc_Wh"])
    dec_weights_T = nn.stacked_weights_T(params["dec_Wx"], params["dec_Wh"])

    dlay_states = []   # the gradient reaching each h^lay_t (layout=True), last step first
    for (sig, read_cache, enc_cache, latent, prior_cache, kl_cache, align_cache, dec_cache,
         write_cache) in reversed(steps):
        # c_t = c_{t-1} + write(h_gen_t): the canvas gradient passes through unchanged
        if lay_cache is not None:
            dh_lay, dh_write, dparams = layout_write_backward(dcanvas, write_cache)
            dlay_states.append(dh_lay)
        else:
            dh_write, dparams = draw.write_step_backward(dcanvas, write_cache, config)
        add_all(dparams.keys(), dparams.values())
        dinput, dh_dec, dc_dec = draw.lstm_step_backward_keeping_da(dh_dec + dh_write, dc_dec, dec_cache, dec_das,
                                                                     dec_weights_T)
        dz, ds = dinput[:, :Z], dinput[:, Z:Z + S]
        if config["layout_to_generator"]:                 # h^lay_t was the generator's input too
            dlay_states[-1] = dlay_states[-1] + dinput[:, Z + S:]
        # the sentence context s_t chose its words with h_gen_{t-1} (and h^lay_t)
        if align_cache is not None:
            dh_l, dap, dh_align, dW, dv = backend.get("soft_attention_backward")(
                ds, np.zeros_like(h_lang[:, :, 0]), align_cache)
            dh_lang = dh_lang + dh_l
            da_proj = dap if da_proj is None else da_proj + dap
            dh_dec = dh_dec + dh_align[:, :D]
            if config["layout_to_generator"]:
                dlay_states[-1] = dlay_states[-1] + dh_align[:, D:]
            add_all(["align_W", "align_v"], [dW, dv])
        else:
            ds_mean = ds_mean + ds
        # z = mu_q + sigma_q eps, and the KL term (weight beta/Bt; the reconstruction's is 1/Bt)
        h_enc, e, sigma_q = latent
        dmu_q, dls_q, dmu_p, dls_p = gaussian_kl_backward(dkl, kl_cache)
        dmu_q = dmu_q + dz
        dls_q = dls_q + dz * e * sigma_q
        if prior_cache is not None:
            dh_prior, *dprior = prior_backward(dmu_p, dls_p, prior_cache)
            dh_dec = dh_dec + dh_prior
            add_all(["prior_mu_W", "prior_mu_b", "prior_ls_W", "prior_ls_b"], dprior)
        add_all(["mu_W", "mu_b", "ls_W", "ls_b"],
                [h_enc.T @ dmu_q, dmu_q.sum(axis=0), h_enc.T @ dls_q, dls_q.sum(axis=0)])
        dh_enc = dh_enc + dmu_q @ params["mu_W"].T + dls_q @ params["ls_W"].T
        dinput, dh_enc, dc_enc = draw.lstm_step_backward_keeping_da(dh_enc, dc_enc, enc_cache, enc_das,
                                                                     enc_weights_T)
        dh_dec = dh_dec + dinput[:, R:]                   # h_gen_{t-1} fed the inference network ...
        dx_hat, dh_read, dparams = draw.read_step_backward(np.ascontiguousarray(dinput[:, :R]), read_cache, config)
        add_all(dparams.keys(), dparams.values())
        if dh_read is not None:                           # ... and chose the read window
            dh_dec = dh_dec + dh_read
        # x_hat_t = x - sigmoid(c_{t-1}): the error image carries gradient back into the earlier canvas
        dcanvas = dcanvas - dx_hat * sig * (1 - sig)
    # the LSTMs' weight gradients dWx = sum_t x_t^T da_t (and dWh, db) as ONE product over all T Bt rows
    # (as draw.backward and the captioner): faster than T thin products added into weight-sized arrays
    for prefix, das, index in (("enc_", enc_das, 2), ("dec_", dec_das, 7)):
        grads[prefix + "Wx"], grads[prefix + "Wh"], grads[prefix + "b"] = nn.lstm_weight_grads(
            [step[index] for step in reversed(steps)], das)
    grads["canvas0"] = dcanvas.sum(axis=0)
    for name, d in (("dec_h0", dh_dec), ("dec_c0", dc_dec), ("enc_h0", dh_enc), ("enc_c0", dc_enc)):
        grads[name] = d.sum(axis=0)
    if mean_weights is not None:                          # s = sum_j weights_j h^lang_j at every step
        dh_lang = dh_lang + mean_weights[:, :, None] * ds_mean[:, None, :]
    lay_encoder_grads = {}
    if lay_cache is not None:                             # the layout path read the words too
        lay_cache, lay_enc_cache = lay_cache
        dh_lay_lang, lay_grads = layout_backward(dlay_states, lay_cache)
        grads.update(lay_grads)
        if lay_enc_cache is None:                         # the generator's own word states
            dh_lang = dh_lang + dh_lay_lang
        else:                                             # its own encoder (the embedding is shared)
            lay_encoder_grads = encode_caption_backward(dh_lay_lang, None, lay_enc_cache)
    grads.update(encode_caption_backward(dh_lang, da_proj, enc_caption_cache))
    for name, value in lay_encoder_grads.items():
        grads[name] = grads[name] + value if name in grads else value
    for name, value in params.items():      # the prior is unused when T = 1: its gradient is zero
        if name not in grads:
            grads[name] = np.zeros_like(value)
    return grads


def loss(params, batch, rng, config):
    """The shared model API: batch = {"x": (Bt, B, A), "words": (Bt, L), "mask": (Bt, L)}; eps ~ N(0, I)
    comes from rng. Returns (loss, grads): the negative bound in nats per image and its gradients.
    For minicap.gradcheck.check_model, bind the config: functools.partial(loss, config=config)."""
    x = batch["x"]
    eps = rng.standard_normal((config["T"], x.shape[0], config["z_size"]))
    (value, _), cache = forward(params, x, batch["words"], batch["mask"], eps, config)
    return value, backward(cache)


def bound(params, x, words, mask, config, rng, batch_size=100):
    """The variational bound of each image given its caption (nats), one eps sample each: (M,).

    Its mean over a test set is the number the alignDRAW paper's table reports (an upper bound on
    -log p(x | y); lower is better)."""
    out = []
    for start in range(0, len(x), batch_size):
        sl = slice(start, start + batch_size)
        eps = rng.standard_normal((config["T"], len(x[sl]), config["z_size"]))
        (_, parts), _ = forward(params, x[sl], words[sl], mask[sl], eps, config)
        out.append(parts["bound"])
    return np.concatenate(out)


def generate(params, words, mask, config, rng, record=False, temperature=1.0):
    """Draw one image per caption from the prior: z_t ~ P(Z_t | Z_{1:t-1}, y), then the generator step.

    temperature tau scales the prior's spread, z_t = mu'_t + tau sigma'_t eps_t: 1 samples the learned
    prior, 0 follows its mean (one image per caption), in between trades variety for legibility.

    words, mask: (N, L). Returns images (N, B, A) = sigmoid(c_T), the Bernoulli means. With record=True
    also returns a list of T dicts {"canvas": sigmoid(c_t) (N, B, A), "alpha": (N, L) the alignment
    (None without it), "window": the write window (dict of (N,) arrays)}.
    """
    lstm_step = backend.get("lstm_step_forward")
    dtype = params["dec_Wh"].dtype
    N = words.shape[0]
    (h_lang, a_proj), _ = encode_caption_forward(params, words, mask, config)
    if not config["align"]:
        s_mean, _ = mean_words_forward(h_lang, mask)
    if config["layout"]:
        h_lay_lang, _ = _layout_words(params, words, mask, config, h_lang)
        lay_states, _, _ = layout_forward(params, h_lay_lang, mask, config["T"])
    _, _, h_dec, c_dec = _start_states(params, N)
    canvas = np.broadcast_to(params["canvas0"], (N, config["height"], config["width"]))
    history = []
    for t in range(config["T"]):
        eps = (temperature * rng.standard_normal((N, config["z_size"]))).astype(dtype)
        if t == 0:
            z = eps                                                   # P(Z_1) = N(0, I)
        else:
            (mu_p, ls_p), _ = prior_forward(h_dec, params["prior_mu_W"], params["prior_mu_b"],
                                            params["prior_ls_W"], params["prior_ls_b"])
            z = mu_p + np.exp(ls_p) * eps
        alpha = None
        guide = lay_states[t] if config["layout_to_generator"] else None
        if config["align"]:
            (s, alpha), _ = align_step(params, h_lang, a_proj, mask, _side_by_side(h_dec, guide))
        else:
            s = s_mean
        (h_dec, c_dec), _ = lstm_step(_side_by_side(z, s, guide), h_dec, c_dec,
                                      params["dec_Wx"], params["dec_Wh"], params["dec_b"])
        if config["layout"]:
            update, write_cache = layout_write_forward(params, lay_states[t], h_dec, config)
        else:
            update, write_cache = draw.write_step(params, h_dec, config)
        canvas = canvas + update
        if record:
            history.append({"canvas": backend.get("sigmoid")(canvas), "alpha": alpha,
                            "window": draw.write_window(write_cache, config) if config["attention"] else None})
    images = backend.get("sigmoid")(canvas)
    return (images, history) if record else images


# --- data and training -----------------------------------------------------------------------------
HELD_OUT_BINARIZE_SEED = 10  # val/test/novel images are binarised once, with this seed: fixed forever


def binarize(images, rng):
    """Stochastic binarisation: pixel ~ Bernoulli(intensity). images: float [0, 1] (M, B, A) -> float32 0/1.

    Training binarises every batch afresh; held-out images are binarised once (HELD_OUT_BINARIZE_SEED),
    so the bound is a likelihood of fixed binary images, comparable between runs and variants."""
    return (rng.random(images.shape) < images).astype(np.float32)


# The caption families alignDRAW trains on (the --data choices); data_functions gives their functions.
DATA_FAMILIES = ("mnist-captions", "mnist-corners")
DEFAULT_DATA = "mnist-captions"


def data_functions(data=DEFAULT_DATA):
    """(make(split, n, seed), sample(rng, n, split)) of a caption family of DATA_FAMILIES:
    captioned_mnist's make_captioned_mnist / sample_captioned_mnist, or corner_mnist's."""
    from minicap.data import captioned_mnist, corner_mnist
    functions = {"mnist-captions": (captioned_mnist.make_captioned_mnist, captioned_mnist.sample_captioned_mnist),
                 "mnist-corners": (corner_mnist.make_corner_mnist, corner_mnist.sample_corner_mnist)}
    if data not in functions:
        raise MinicapError(f"unknown alignDRAW data {data!r}: choose one of {', '.join(DATA_FAMILIES)}")
    return functions[data]


def held_out_set(split, n, vocab, seed=0, data=DEFAULT_DATA):
    """A fixed evaluation set: (data, x binary (n, 60, 60), words, mask) for split 'val', 'test' or 'novel'
    of the caption family `data` (DATA_FAMILIES; captioned MNIST by default)."""
    make, _ = data_functions(data)
    examples = make(split, n=n, seed=seed)
    x = binarize(examples.images, np.random.default_rng([HELD_OUT_BINARIZE_SEED, ["val", "test", "novel"].index(split)]))
    words, mask = encode_words(examples.captions, vocab)
    return examples, x, words, mask


def learning_rate(base_lr, step, halflife):
    """The step-decay schedule of the learning rate: base_lr 2^(-step / halflife), halved every
    `halflife` steps (0 or None: constant). A function of the step alone, so a resumed run (and a run
    resumed to a larger --steps) follows the same curve as a straight one."""
    return base_lr if not halflife else base_lr * 2.0 ** (-step / halflife)


def make_train_step(config, images, words, mask, batch_size, vocab=None, lr=None, lr_halflife=None,
                    data=DEFAULT_DATA):
    """A train_step(run) for minicap.train.train: a random batch of captioned images (freshly
    binarised) with their captions, and fresh eps. Everything random comes from run.rng.

    images, words, mask: a fixed training set to draw batches from; or images=None and a Vocabulary
    `vocab`: every batch is a set of NEW canvases, drawn from run.rng by
    captioned_mnist.sample_captioned_mnist (the training digits, the held-out combinations excluded),
    so the model never sees the same canvas twice and resuming continues exactly.
    lr, lr_halflife: if lr is given, the optimizer's learning rate is set to
    learning_rate(lr, run.step, lr_halflife) before each step.
    data: the caption family of the fresh canvases (DATA_FAMILIES: "mnist-corners" draws them with
    corner_mnist.sample_corner_mnist instead)."""
    _, sample = data_functions(data)
    if images is None and vocab is None:
        raise ValueError("make_train_step needs a fixed training set (images, words, mask) or a vocab for fresh canvases")

    def train_step(run):
        if lr is not None:
            run.optimizer.lr = learning_rate(lr, run.step, lr_halflife)
        if images is None:
            fresh = sample(run.rng, batch_size, "train")
            x = binarize(fresh.images, run.rng)
            batch_words, batch_mask = encode_words(fresh.captions, vocab)
        else:
            idx = run.rng.integers(0, len(images), size=batch_size)
            x = binarize(images[idx], run.rng)
            batch_words, batch_mask = words[idx], mask[idx]
        return loss(run.params, {"x": x, "words": batch_words, "mask": batch_mask}, run.rng, config)
    return train_step
