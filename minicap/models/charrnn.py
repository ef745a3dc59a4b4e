"""Language models over a token sequence: Karpathy's min-char-rnn and an LSTM language model.

Both read a long text as a stream of token ids (characters, or words for the LSTM) and learn
p(next token | tokens so far). Training uses *truncated* backpropagation through time: the stream is
cut into chunks of T tokens; each chunk starts from the hidden state the previous chunk ended with
(so the model sees context across chunks) but the gradient stops at the chunk boundary (so one step
costs O(T), however long the text).

Vanilla RNN (min-char-rnn: one-hot input, H = 100, T = 25, Adagrad lr 0.1, gradients clipped to [-5, 5]):

    x_t = onehot(token_t)                       (N, V)
    h_t = tanh(x_t Wxh + h_{t-1} Whh + bh)      (N, H)
    s_t = h_t Why + by                          (N, V) scores
    loss = -(1/N) sum_{n,t} log softmax(s_t)[target_t]

LSTM language model (embedding E, LSTM with H units, the gates of minicap.nn.lstm):

    x_t = W_embed[token_t]                      (N, E)
    h_t, c_t = LSTM(x_t, h_{t-1}, c_{t-1})      (N, H) each
    s_t = h_t W_out + b_out                     (N, V)

The loss is summed over the T steps of a chunk and averaged over the N chunks of the batch (the
convention of nn.temporal_softmax_loss, and min-char-rnn's with N = 1); divide by T for nats per token.

Every model here is a small set of functions:

    init(vocab_size, rng, ...) -> params            a flat dict of arrays
    zero_state(params, N) -> state                  dict of (N, H) arrays: {"h"} or {"h", "c"}
    forward_backward(params, x, y, state0)          -> loss, grads, final state, d loss / d state0
    loss(params, batch, rng) -> (loss, grads)       batch = {"x", "y", "h0"[, "c0"]}: the shared API
    make_step(params) -> step                       for minicap.decode: step(tokens, (h[, c]))
"""
from types import SimpleNamespace

import numpy as np

from minicap import nn


# --- vanilla RNN (min-char-rnn) -----------------------------------------------------------------
def rnn_init(vocab_size, rng, hidden_size=100, dtype=np.float64):
    """min-char-rnn's initialisation: weights N(0, 0.01^2), biases zero.

    Returns {"Wxh": (V, H), "Whh": (H, H), "bh": (H,), "Why": (H, V), "by": (V,)}.
    """
    V, H = vocab_size, hidden_size
    return {"Wxh": (rng.standard_normal((V, H)) * 0.01).astype(dtype),
            "Whh": (rng.standard_normal((H, H)) * 0.01).astype(dtype),
            "bh": np.zeros(H, dtype=dtype),
            "Why": (rng.standard_normal((H, V)) * 0.01).astype(dtype),
            "by": np.zeros(V, dtype=dtype)}


def rnn_zero_state(params, N):
    return {"h": np.zeros((N, params["Whh"].shape[0]), dtype=params["Whh"].dtype)}


def _one_hot(tokens, V, dtype):
    """tokens: int array of shape S. Returns S + (V,) with a 1 at each token's index."""
    return np.eye(V, dtype=dtype)[tokens]


def rnn_forward_backward(params, x, y, state0):
    """One chunk of truncated BPTT through the vanilla RNN.

    x, y: (N, T) int inputs and targets (y is x shifted by one token). state0: {"h": (N, H)}.
    Returns loss (float), grads (dict like params), the final state {"h": h_T} to carry into the next
    chunk, and {"h": d loss / d h0} (not used in training, where the gradient stops at the chunk
    boundary; the gradient check uses it).
    """
    Wxh, Whh, bh, Why, by = (params[k] for k in ("Wxh", "Whh", "bh", "Why", "by"))
    V = Wxh.shape[0]
    h, rnn_cache = nn.rnn_forward(_one_hot(x, V, Wxh.dtype), state0["h"], Wxh, Whh, bh)
    scores, affine_cache = nn.temporal_affine_forward(h, Why, by)
    loss, loss_cache = nn.temporal_softmax_loss_forward(scores, y, np.ones(y.shape))

    dscores = nn.temporal_softmax_loss_backward(1.0, loss_cache)
    dh, dWhy, dby = nn.temporal_affine_backward(dscores, affine_cache)
    _, dh0, dWxh, dWhh, dbh = nn.rnn_backward(dh, rnn_cache)
    grads = {"Wxh": dWxh, "Whh": dWhh, "bh": dbh, "Why": dWhy, "by": dby}
    return float(loss), grads, {"h": h[:, -1]}, {"h": dh0}


def rnn_make_step(params):
    """The decoding step: step(tokens (B,), (h,)) -> (log_probs (B, V), (h_next,))."""
    Wxh, Whh, bh, Why, by = (params[k] for k in ("Wxh", "Whh", "bh", "Why", "by"))

    def step(tokens, state):
        h, _ = nn.rnn_step_forward(_one_hot(tokens, Wxh.shape[0], Wxh.dtype), state[0], Wxh, Whh, bh)
        return nn.log_softmax(h @ Why + by), (h,)
    return step


# --- LSTM language model ------------------------------------------------------------------------
def lstm_init(vocab_size, rng, hidden_size=128, embed_size=64, dtype=np.float64):
    """Weights scaled by 1/sqrt(fan-in), biases zero except the forget gate's (1: remember by default).

    Returns {"W_embed": (V, E), "Wx": (E, 4H), "Wh": (H, 4H), "b": (4H,), "W_out": (H, V), "b_out": (V,)}.
    """
    V, H, E = vocab_size, hidden_size, embed_size
    b = np.zeros(4 * H)
    b[H:2 * H] = 1.0  # gates are ordered i, f, o, g
    params = {"W_embed": rng.standard_normal((V, E)) * 0.1,
              "Wx": rng.standard_normal((E, 4 * H)) / np.sqrt(E),
              "Wh": rng.standard_normal((H, 4 * H)) / np.sqrt(H),
              "b": b,
              "W_out": rng.standard_normal((H, V)) / np.sqrt(H),
              "b_out": np.zeros(V)}
    return {k: v.astype(dtype) for k, v in params.items()}


def lstm_zero_state(params, N):
    H = params["Wh"].shape[0]
    return {"h": np.zeros((N, H), dtype=params["Wh"].dtype), "c": np.zeros((N, H), dtype=params["Wh"].dtype)}


def lstm_forward_backward(params, x, y, state0):
    """One chunk of truncated BPTT through the LSTM LM.

    x, y: (N, T) ints. state0: {"h": (N, H), "c": (N, H)}. Returns loss, grads, the final state
    {"h", "c"} and {"h": d loss / d h0, "c": d loss / d c0}.
    """
    emb, emb_cache = nn.embedding_forward(x, params["W_embed"])
    (h, c_last), lstm_cache = nn.lstm_forward(emb, state0["h"], state0["c"], params["Wx"], params["Wh"], params["b"])
    scores, affine_cache = nn.temporal_affine_forward(h, params["W_out"], params["b_out"])
    loss, loss_cache = nn.temporal_softmax_loss_forward(scores, y, np.ones(y.shape))

    dscores = nn.temporal_softmax_loss_backward(1.0, loss_cache)
    dh, dW_out, db_out = nn.temporal_affine_backward(dscores, affine_cache)
    # the loss does not read the final cell (the next chunk's gradient is truncated): dc_last = 0
    demb, dh0, dc0, dWx, dWh, db = nn.lstm_backward(dh, np.zeros_like(c_last), lstm_cache)
    dW_embed = nn.embedding_backward(demb, emb_cache)
    grads = {"W_embed": dW_embed, "Wx": dWx, "Wh": dWh, "b": db, "W_out": dW_out, "b_out": db_out}
    return float(loss), grads, {"h": h[:, -1], "c": c_last}, {"h": dh0, "c": dc0}


def lstm_make_step(params):
    """The decoding step: step(tokens (B,), (h, c)) -> (log_probs (B, V), (h_next, c_next))."""
    def step(tokens, state):
        (h, c), _ = nn.lstm_step_forward(params["W_embed"][tokens], state[0], state[1],
                                         params["Wx"], params["Wh"], params["b"])
        return nn.log_softmax(h @ params["W_out"] + params["b_out"]), (h, c)
    return step


# --- the two models behind one interface --------------------------------------------------------
MODELS = {
    "rnn": SimpleNamespace(name="rnn", init=rnn_init, zero_state=rnn_zero_state,
                           forward_backward=rnn_forward_backward, make_step=rnn_make_step, state_keys=("h",)),
    "lstm": SimpleNamespace(name="lstm", init=lstm_init, zero_state=lstm_zero_state,
                            forward_backward=lstm_forward_backward, make_step=lstm_make_step,
                            state_keys=("h", "c")),
}


def _loss_fn(model):
    def loss(params, batch, rng=None):
        """batch = {"x": (N, T), "y": (N, T), "h0": (N, H)[, "c0": (N, H)]}. Returns (loss, grads)."""
        state0 = {k: batch[k + "0"] for k in model.state_keys}
        value, grads, _, _ = model.forward_backward(params, batch["x"], batch["y"], state0)
        return value, grads
    return loss


rnn_loss = _loss_fn(MODELS["rnn"])
lstm_loss = _loss_fn(MODELS["lstm"])


# --- training data: B streams through the text, chunk by chunk ----------------------------------
def make_train_step(model_name, data, seq_len, batch_size):
    """A train_step(run) for minicap.train.train: the next chunk of each of batch_size streams.

    data: 1-D int array, the whole text as token ids. Stream b starts at offset b * (len // B) and
    reads the text forward seq_len tokens per step (inputs data[p : p+T], targets data[p+1 : p+T+1]);
    its hidden state is carried from chunk to chunk in run.state. A stream that reaches the end of the
    text starts again at 0 with a zero state, as min-char-rnn does. With batch_size 1 this is exactly
    min-char-rnn's data order. run.state holds "pos" (B,) and the model's state arrays ("h", "c").

    Returns train_step(run) -> (loss per token in nats, grads). (The gradient is that of the
    model's loss, summed over the chunk's T steps and averaged over the B streams; the loss is reported
    per token so the numbers read the same whatever T is.)
    """
    model = MODELS[model_name]
    data = np.asarray(data)
    n, T, B = len(data), seq_len, batch_size
    if n < T + 1:
        raise ValueError(f"the text has {n} tokens; it needs at least seq_len + 1 = {T + 1}")
    offsets = np.arange(T + 1)

    def train_step(run):
        if "pos" not in run.state:
            run.state = {"pos": np.arange(B, dtype=np.int64) * (n // B), **model.zero_state(run.params, B)}
        pos = run.state["pos"]
        state = {k: run.state[k] for k in model.state_keys}
        wrap = pos + T + 1 > n
        if wrap.any():
            pos = np.where(wrap, 0, pos)
            state = {k: np.where(wrap[:, None], 0, v).astype(v.dtype) for k, v in state.items()}
        chunk = data[pos[:, None] + offsets]  # (B, T+1)
        loss, grads, final, _ = model.forward_backward(run.params, chunk[:, :-1], chunk[:, 1:], state)
        run.state = {"pos": pos + T, **final}  # new arrays: the loop may roll run.state back on Ctrl-C
        return loss / T, grads

    return train_step


def generate(model_name, params, prime, n, temperature=1.0, rng=None):
    """Sample n tokens after the prime tokens (a non-empty list of ids), one at a time, feeding each back.

    The prime is read by the model first (its state warms up on it); the last prime token is the
    first input. temperature 0 is greedy. Returns the list of n sampled ids.
    """
    from minicap import decode

    model = MODELS[model_name]
    step = model.make_step(params)
    state = tuple(model.zero_state(params, 1)[k] for k in model.state_keys)
    for token in prime[:-1]:
        _, state = step(np.array([token]), state)
    hyp = decode.sample(step, state, start=prime[-1], end=None, max_len=n, temperature=temperature, rng=rng)[0]
    return hyp.tokens
