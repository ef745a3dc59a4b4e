"""Visual question answering: given an image and a question, pick the answer from a closed set.

Five models, one interface (a params dict, forward, backward, loss), from the same layers:

    question   the question alone:    x = q
    image      the image alone:       x = g = tanh(mean_i(a_i) W_g + b_g)
    naive      both, combined:        x = g * tanh(q W_q + b_q)   (elementwise product; or "concat": [g, q])
    memnet     a memory network over the regions, K hops:
                   m_i = tanh(a_i W_A + b_m) + P_A[i],  c_i = tanh(a_i W_C + b_c) + P_C[i]   input / output memories
                   p = softmax_i(u_k . m_i),  o = sum_i p_i c_i,  u_{k+1} = u_k + o,  u_0 = q,  x = u_K
    san        a stacked attention network (Yang et al. 2016), K layers:
                   v_i = tanh(a_i W_v + b_v) + P_v[i]                    the regions
                   h = tanh(W_I v_i (+) (W_Q u_{k-1} + b_A)),  p = softmax(w_P . h),
                   u_k = sum_i p_i v_i + u_{k-1},  u_0 = q,  x = u_K     (one layer per k, own weights)

and every model answers with the same MLP:  logits = tanh(x W_1 + b_1) W_2 + b_2,  softmax over the
answers; the loss is the mean cross-entropy of the true answers.

The question vector q (N, H) is the last state of an LSTM over the embedded question words (padding
masked, so a short question ends with its own last word). The image is the frozen encoder's L = 49
annotation vectors a_i (N, L, D) (minicap.models.encoder, the captioner's features), times
feature_scale. A region's vector says WHAT is there, not WHERE: the position embeddings P (L, H), one
learned vector per grid location (the "temporal encoding" of memory networks), let a question about
"the top left" find its regions. The memory network's memories get the same tanh as the SAN's
regions: with memories linear in the features (m_i = a_i W_A + P_A[i], the textbook form), its
dot-product scores start flat and it learned slowly; 2 hops scored 60.5% on test against 85.0% with
the tanh (6,000 steps, one seed each). The SAN adds P_v outside the tanh, so what a layer reads,
sum_i p_i v_i, carries sum_i p_i P_v[i], where it looked, unsquashed into the next layer's query: with
P_v inside the tanh, SAN-2 answered 81.2% of the test relate questions ("what digit is left of the
seven ?": find the seven, then look beside it); outside, 84.1% (one seed each, 6,000 steps). The naive and image models average the regions, so they keep no
position at all: that is the point of the comparison.

The memory network's read is the dot-product attention of minicap.nn.question_attention; the stacked
attention layer is the captioner's soft attention (minicap.nn.attention and its Numba twin, through
minicap.backend) with a residual around it. The gradient that reaches the regions v is the sum over
the layers that read them.

Shapes: N batch, T question words, V question vocabulary, E embedding, H question/region size,
L regions, D annotation size, A attention size, M answer MLP size, C answers.
"""
import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from minicap.nn import affine_backward, affine_forward, embedding_backward, embedding_forward
from minicap.nn.lstm import lstm_backward, lstm_forward
from minicap.nn.question_attention import (dot_attention_backward, dot_attention_forward,
                                           stacked_attention_backward, stacked_attention_forward)
from minicap.nn.temporal import log_softmax
from minicap.optim import cosine_lr

MODELS = ("question", "image", "naive", "memnet", "san")
ATTENTION_MODELS = ("memnet", "san")


@dataclass
class VQAConfig:
    """Everything that defines a VQA model (saved in its checkpoint)."""
    model: str = "san"            # question | image | naive | memnet | san
    hops: int = 2                 # K: memory hops / attention layers (memnet, san)
    vocab_size: int = 31          # V: question words (index 0 = padding)
    n_answers: int = 17           # C
    locations: int = 49           # L
    feature_size: int = 64        # D
    embed: int = 32               # E
    hidden: int = 128             # H: question LSTM, regions, query
    attention_size: int = 64      # A (san)
    mlp: int = 128                # M
    combine: str = "product"      # naive: "product" (g * tanh(q W_q + b_q)) or "concat" ([g, q])
    feature_scale: float = 1.0    # the CNN features are multiplied by this (set from the training data)

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.combine not in ("product", "concat"):
            raise ValueError(f"combine must be 'product' or 'concat', got {self.combine!r}")
        if self.hops < 1:
            raise ValueError(f"hops must be >= 1, got {self.hops}")

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _uses_question(config):
    return config.model != "image"


def init_params(config, rng, dtype=np.float32):
    """Parameters of `config`'s model: weights N(0, 1/fan_in), LSTM forget-gate bias 1, other biases
    and position embeddings small random (non-zero, so gradient checks see them)."""
    V, E, H, D, L, A, M, C = (config.vocab_size, config.embed, config.hidden, config.feature_size,
                              config.locations, config.attention_size, config.mlp, config.n_answers)

    def w(fan_in, *shape):
        return rng.standard_normal(shape) / math.sqrt(fan_in)

    p = {}
    if _uses_question(config):
        p["W_embed"] = rng.standard_normal((V, E)) * 0.1
        p["Wx"], p["Wh"] = w(E, E, 4 * H), w(H, H, 4 * H)
        p["b"] = np.zeros(4 * H)
        p["b"][H:2 * H] = 1.0   # forget gate open at the start
    if config.model in ("image", "naive"):
        p["W_g"], p["b_g"] = w(D, D, H), np.zeros(H)
    if config.model == "naive" and config.combine == "product":
        p["W_q"], p["b_q"] = w(H, H, H), np.zeros(H)
    if config.model == "memnet":
        p["W_A"], p["W_C"] = w(D, D, H), w(D, D, H)
        p["b_m"], p["b_c"] = np.zeros(H), np.zeros(H)
        p["P_A"], p["P_C"] = rng.standard_normal((L, H)) * 0.1, rng.standard_normal((L, H)) * 0.1
    if config.model == "san":
        p["W_v"], p["b_v"], p["P_v"] = w(D, D, H), np.zeros(H), rng.standard_normal((L, H)) * 0.1
        for k in range(config.hops):
            p[f"W_I{k}"], p[f"b_A{k}"] = w(H, H, A), np.zeros(A)
            p[f"W_Q{k}"], p[f"w_P{k}"] = w(H, H, A), w(A, A)
    X = 2 * H if (config.model == "naive" and config.combine == "concat") else H
    p["W_1"], p["b_1"] = w(X, X, M), np.zeros(M)
    p["W_2"], p["b_2"] = w(M, M, C), np.zeros(C)
    return {k: v.astype(dtype) for k, v in p.items()}


# --- forward ----------------------------------------------------------------------------------------
def question_forward(params, tokens):
    """q (N, H): the LSTM state after each question's last word. tokens: (N, T) int, 0 = padding."""
    mask = tokens != 0
    lengths = mask.sum(axis=1)
    x, emb_cache = embedding_forward(tokens, params["W_embed"], null_idx=0)            # (N, T, E)
    H = params["Wh"].shape[0]
    zeros = np.zeros((len(tokens), H), dtype=params["Wh"].dtype)
    (h, _), lstm_cache = lstm_forward(x, zeros, zeros, params["Wx"], params["Wh"], params["b"], mask=mask)
    q = h[np.arange(len(tokens)), lengths - 1]
    return q, (emb_cache, lstm_cache, lengths, h.shape)


def question_backward(dq, cache, grads):
    emb_cache, lstm_cache, lengths, shape = cache
    dh = np.zeros(shape, dtype=dq.dtype)
    dh[np.arange(len(dq)), lengths - 1] = dq
    dx, _, _, grads["Wx"], grads["Wh"], grads["b"] = lstm_backward(dh, np.zeros_like(dq), lstm_cache)
    grads["W_embed"] = embedding_backward(dx, emb_cache)


def forward(params, features, tokens, config):
    """features: (N, L, D) annotation vectors (unscaled), tokens: (N, T) question word ids.

    Returns logits (N, C), the attention of every hop (a list of K arrays (N, L); empty for the
    models without attention), and the cache for backward."""
    a = features.astype(params["W_1"].dtype) * config.feature_scale
    N, L, D = a.shape
    cache = {}
    attentions = []
    if _uses_question(config):
        q, cache["question"] = question_forward(params, tokens)
    if config.model == "question":
        x = q
    elif config.model in ("image", "naive"):
        mean = a.mean(axis=1)
        g_pre, cache["g_affine"] = affine_forward(mean, params["W_g"], params["b_g"])
        g = np.tanh(g_pre)
        cache["g"], cache["L"] = g, L
        if config.model == "image":
            x = g
        elif config.combine == "product":
            f_pre, cache["f_affine"] = affine_forward(q, params["W_q"], params["b_q"])
            f = np.tanh(f_pre)
            cache["f"] = f
            x = g * f
        else:
            x = np.concatenate([g, q], axis=1)
    elif config.model == "memnet":
        m_content = np.tanh(a @ params["W_A"] + params["b_m"])                   # (N, L, H)
        c_content = np.tanh(a @ params["W_C"] + params["b_c"])
        m = m_content + params["P_A"]                                             # what is there, and where
        c = c_content + params["P_C"]
        cache["m_content"], cache["c_content"] = m_content, c_content
        u, hops = q, []
        for _ in range(config.hops):
            (o, p), hop_cache = dot_attention_forward(m, c, u)
            u = u + o
            attentions.append(p)
            hops.append(hop_cache)
        cache["a"], cache["hops"] = a, hops
        x = u
    else:   # san
        content = np.tanh(a @ params["W_v"] + params["b_v"])                     # (N, L, H): what is there
        v = content + params["P_v"]                                               # ... and where
        cache["content"] = content
        u, layers = q, []
        for k in range(config.hops):
            (u, p), layer_cache = stacked_attention_forward(v, u, params[f"W_I{k}"], params[f"b_A{k}"],
                                                            params[f"W_Q{k}"], params[f"w_P{k}"])
            attentions.append(p)
            layers.append(layer_cache)
        cache["a"], cache["v"], cache["layers"] = a, v, layers
        x = u
    hid_pre, cache["mlp1"] = affine_forward(x, params["W_1"], params["b_1"])
    hid = np.tanh(hid_pre)
    logits, cache["mlp2"] = affine_forward(hid, params["W_2"], params["b_2"])
    cache["hid"] = hid
    return logits, attentions, cache


def backward(dlogits, cache, params, config, features_grad=False):
    """Gradients of every parameter, given dlogits (N, C) = d loss / d logits.

    With features_grad=True, returns (grads, dfeatures): dfeatures (N, L, D) = d loss / d features,
    what an image encoder trained with the model (minicap.models.vqa_pixels) continues from. The
    image enters only through linear maps of a = features * feature_scale (W_g on the mean, W_A and
    W_C, W_v), so da is the gradient at each map's output times its weights transposed."""
    grads = {}
    dhid, grads["W_2"], grads["b_2"] = affine_backward(dlogits, cache["mlp2"])
    dhid_pre = dhid * (1 - cache["hid"] ** 2)
    dx, grads["W_1"], grads["b_1"] = affine_backward(dhid_pre, cache["mlp1"])
    dq = None
    if config.model == "question":
        dq = dx
    elif config.model in ("image", "naive"):
        g = cache["g"]
        if config.model == "image":
            dg = dx
        elif config.combine == "product":
            f = cache["f"]
            dg = dx * f
            df_pre = dx * g * (1 - f ** 2)
            dq, grads["W_q"], grads["b_q"] = affine_backward(df_pre, cache["f_affine"])
        else:
            H = g.shape[1]
            dg, dq = dx[:, :H], dx[:, H:]
        dmean, grads["W_g"], grads["b_g"] = affine_backward(dg * (1 - g ** 2), cache["g_affine"])
    elif config.model == "memnet":
        a = cache["a"]
        du = dx
        dm = dc = 0
        for hop_cache in reversed(cache["hops"]):
            dm_k, dc_k, du_att = dot_attention_backward(du, np.zeros_like(hop_cache[3]), hop_cache)
            dm, dc = dm + dm_k, dc + dc_k           # the memories are read by every hop: gradients add up
            du = du + du_att                        # u_{k+1} = u_k + o: the residual and the read
        grads["P_A"], grads["P_C"] = dm.sum(axis=0), dc.sum(axis=0)
        dm_pre = dm * (1 - cache["m_content"] ** 2)
        dc_pre = dc * (1 - cache["c_content"] ** 2)
        D, H = params["W_A"].shape
        grads["W_A"] = a.reshape(-1, D).T @ dm_pre.reshape(-1, H)
        grads["W_C"] = a.reshape(-1, D).T @ dc_pre.reshape(-1, H)
        grads["b_m"], grads["b_c"] = dm_pre.sum(axis=(0, 1)), dc_pre.sum(axis=(0, 1))
        dq = du
    else:   # san
        a, v = cache["a"], cache["v"]
        du = dx
        dv = np.zeros_like(v)
        for k in reversed(range(config.hops)):
            layer_cache = cache["layers"][k]
            dp = np.zeros(v.shape[:2], dtype=v.dtype)
            dv_k, du, grads[f"W_I{k}"], grads[f"b_A{k}"], grads[f"W_Q{k}"], grads[f"w_P{k}"] = \
                stacked_attention_backward(du, dp, layer_cache)
            dv += dv_k                              # the regions are shared by every layer: gradients add up
        grads["P_v"] = dv.sum(axis=0)
        dv_pre = dv * (1 - cache["content"] ** 2)
        D, H = params["W_v"].shape
        grads["W_v"] = a.reshape(-1, D).T @ dv_pre.reshape(-1, H)
        grads["b_v"] = dv_pre.sum(axis=(0, 1))
        dq = du
    if dq is not None:
        question_backward(dq, cache["question"], grads)
    if not features_grad:
        return grads
    # d loss / d a, from the gradient at the output of each linear map that reads the image (above)
    N = len(dlogits)
    if config.model == "question":
        da = np.zeros((N, config.locations, config.feature_size), dtype=dlogits.dtype)   # the image is never read
    elif config.model in ("image", "naive"):
        da = np.broadcast_to(dmean[:, None, :] / cache["L"], (N, cache["L"], dmean.shape[1]))   # a mean over L
    elif config.model == "memnet":   # m = tanh(a W_A + b_m) + P_A, c = tanh(a W_C + b_c) + P_C
        da = dm_pre @ params["W_A"].T + dc_pre @ params["W_C"].T
    else:   # san: v = tanh(a W_v + b_v) + P_v
        da = dv_pre @ params["W_v"].T
    return grads, da * config.feature_scale


def loss(params, batch, rng=None, config=None):
    """Mean cross-entropy of the answers. batch: {"features": (N, L, D), "tokens": (N, T),
    "answers": (N,)}. rng is unused (the models are deterministic); it is there for the common API.
    Returns (loss, grads)."""
    logits, _, cache = forward(params, batch["features"], batch["tokens"], config)
    logp = log_softmax(logits)
    N = len(logits)
    y = batch["answers"]
    value = -float(logp[np.arange(N), y].mean())
    dlogits = np.exp(logp)
    dlogits[np.arange(N), y] -= 1
    return value, backward(dlogits / N, cache, params, config)


def predict(params, features, tokens, config, batch_size=500):
    """Answer probabilities (N, C) and the attention of every hop (K arrays (N, L)), in bounded batches."""
    probs, atts = [], []
    for start in range(0, len(features), batch_size):
        logits, attentions, _ = forward(params, features[start:start + batch_size],
                                        tokens[start:start + batch_size], config)
        probs.append(np.exp(log_softmax(logits)))
        atts.append(attentions)
    hops = [np.concatenate([a[k] for a in atts]) for k in range(len(atts[0]))] if atts else []
    C = config.n_answers
    return (np.concatenate(probs) if probs else np.zeros((0, C))), hops


def make_train_step(config, features, tokens, answers, batch_size, lr=None, steps=None):
    """train_step(run) -> (loss, grads) for minicap.train.train: a random minibatch from run.rng.
    With lr and steps, the learning rate follows a cosine from lr down to 0 at `steps` (a function of
    run.step, so a resumed run follows the same schedule)."""
    from minicap.data import sample_minibatch

    def train_step(run):
        if lr is not None:
            run.optimizer.lr = cosine_lr(lr, run.step, steps)
        idx = sample_minibatch(len(features), batch_size, run.rng)
        batch = {"features": features[idx], "tokens": tokens[idx], "answers": answers[idx]}
        return loss(run.params, batch, run.rng, config)

    return train_step
