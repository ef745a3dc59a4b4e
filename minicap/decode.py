"""Decoding a sequence model: greedy, temperature sampling and beam search, written once for every model.

A model plugs in through one function, its *step*:

    step(tokens, state) -> (log_probs, new_state)              or
    step(tokens, state) -> (log_probs, new_state, extras)

    tokens     (B,) int       the previous token of each row (the start token at the first step)
    state      the recurrent state: an array, or a tuple / list / dict of arrays (nested freely),
               and EVERY array in it has the batch as its first axis (B, ...). Leaves that are not
               arrays (None, numbers, strings) are passed through untouched.
    log_probs  (B, V) float   log p(next token | everything so far), each row a normalised log-softmax
    extras     optional dict name -> (B, ...) array: anything to report per generated token, e.g. the
               attention weights alpha (B, L) a captioner used to predict this token.

The decoders never look inside the state: beam search only *reorders* it, `state[rows]` on every
array, when beams are kept, dropped or copied. So a step must not keep per-row information anywhere
else (things shared by all rows, like a vocabulary or parameters, belong in the step's closure;
per-image things, like the annotation vectors of a captioner, go in the state so they follow their
beam).

Every decoder returns, for each of the B rows, a `Hypothesis` (beam search: a list of the k best):

    tokens     list[int]: the generated tokens, without the start token and without <END>
    log_prob   float: sum of log p of every generated token, <END> included (under the model, at T=1)
    score      float: what the search ranked by: log_prob / length**length_norm (= log_prob by default)
    finished   bool: whether <END> was generated; False when max_len ran out first
    extras     dict name -> (n, ...) array: the step's extras for each generated token, in order,
               n = len(tokens) + finished (the last row belongs to <END> when it was generated)

Beam search with a start token, k beams and length normalisation alpha, for one input:

    beams = [(start, log p = 0)]
    repeat up to max_len times:
        every candidate = a beam extended by one token, score = log p(beam) + log p(token | beam)
        a finished beam (it ended with <END>) has exactly one candidate: itself, unchanged
        keep the k candidates with the best  score / length^alpha
    stop early when all k beams are finished

Finished beams stay among the k and compete with the live ones, so the result is the best complete
sequence the search saw, and when no beam reaches <END> within max_len the k best unfinished ones come
back (flagged finished=False) instead of nothing.
"""
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Hypothesis:
    """One decoded sequence (see the module docstring for each field)."""
    tokens: list
    log_prob: float
    score: float
    finished: bool
    extras: dict = field(default_factory=dict)


# --- the state: a pytree of batch-first arrays --------------------------------------------------
def map_state(fn, state):
    """Apply fn to every array in a nested tuple / list / dict, keeping the structure; other leaves pass through."""
    if isinstance(state, np.ndarray):
        return fn(state)
    if isinstance(state, tuple):
        return tuple(map_state(fn, s) for s in state)
    if isinstance(state, list):
        return [map_state(fn, s) for s in state]
    if isinstance(state, dict):
        return {k: map_state(fn, v) for k, v in state.items()}
    return state


def select_rows(state, rows):
    """state with every array indexed by `rows` along its first (batch) axis: reorder, copy or drop rows."""
    return map_state(lambda a: a[rows], state)


def _call(step, tokens, state):
    """Run the step; returns (log_probs, new_state, extras) with extras {} when the step gives none."""
    out = step(tokens, state)
    if len(out) == 2:
        return out[0], out[1], {}
    if len(out) == 3:
        return out[0], out[1], dict(out[2] or {})
    raise ValueError(f"a step must return (log_probs, state) or (log_probs, state, extras), got {len(out)} items")


def _start_tokens(start, batch):
    start = np.asarray(start)
    return np.full(batch, int(start)) if start.ndim == 0 else start.astype(np.int64)


def _batch_size(state, start):
    start = np.asarray(start)
    if start.ndim == 1:
        return start.shape[0]
    sizes = []
    map_state(lambda a: sizes.append(a.shape[0]), state)
    if not sizes:
        raise ValueError("cannot tell the batch size: give start as a (B,) array or a state with arrays")
    return sizes[0]


# --- greedy and sampling ------------------------------------------------------------------------
def _decode_one_token_at_a_time(step, state, start, end, max_len, choose):
    """Shared loop of greedy and sampling: choose(log_probs) -> (B,) next tokens."""
    B = _batch_size(state, start)
    tokens = _start_tokens(start, B)
    chosen, logps, extras_steps = [], [], []
    done = np.zeros(B, dtype=bool)
    for _ in range(max_len):
        log_probs, state, extras = _call(step, tokens, state)
        tokens = choose(log_probs)
        chosen.append(tokens)
        logps.append(log_probs[np.arange(B), tokens])
        extras_steps.append(extras)
        if end is not None:
            done |= tokens == end
            if done.all():
                break
    chosen, logps = np.stack(chosen, axis=1), np.stack(logps, axis=1)  # (B, n)
    results = []
    for b in range(B):
        row = chosen[b].tolist()
        n = row.index(end) + 1 if end is not None and end in row else len(row)
        finished = end is not None and end in row
        log_prob = float(np.sum(logps[b, :n]))
        extras = {k: np.stack([e[k][b] for e in extras_steps[:n]]) for k in extras_steps[0]}
        results.append(Hypothesis(row[:n - finished], log_prob, log_prob, finished, extras))
    return results


def greedy(step, state, start, end=None, max_len=20):
    """Pick the most likely token at every step (argmax; ties go to the lower index).

    state: the initial state (batch B). start: the start token, an int or a (B,) array (for a
    character model, the last character of the prime text). end: the <END> token, or None to always
    generate max_len tokens. Returns a list of B Hypothesis.
    """
    return _decode_one_token_at_a_time(step, state, start, end, max_len, lambda lp: np.argmax(lp, axis=1))


def sample(step, state, start, end=None, max_len=20, temperature=1.0, rng=None):
    """Draw each token from p^(1/T), renormalised: T=1 samples the model, T<1 sharpens, T->0 is greedy.

    With log_probs = log softmax(logits), softmax(log_probs / T) = softmax(logits / T): the usual
    temperature on the scores. temperature=0 means greedy. rng: np.random.Generator (required for T>0).
    The reported log_prob is under the model itself (T=1), whatever T was used to draw.
    Returns a list of B Hypothesis.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return greedy(step, state, start, end, max_len)
    if rng is None:
        raise ValueError("sampling needs an rng (np.random.Generator)")

    def choose(log_probs):
        scaled = log_probs / temperature
        p = np.exp(scaled - scaled.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        # inverse-CDF draw, one uniform per row (a vectorised rng.choice): token j is picked when
        # cdf[j-1] <= u < cdf[j], so a token of probability 0 never is, and u < cdf[-1] keeps j < V
        cdf = np.cumsum(p, axis=1)
        u = rng.random((p.shape[0], 1)) * cdf[:, -1:]
        return (cdf <= u).sum(axis=1)

    return _decode_one_token_at_a_time(step, state, start, end, max_len, choose)


# --- beam search --------------------------------------------------------------------------------
def _top_k(scores, k):
    """Indices of the k largest entries of each row of scores (R, M), best first; ties -> lower index.

    O(M) per row: a partition finds the k-th largest value, a stable sort of a small integer key
    (0 above it, 1 equal, 2 below) picks the winners in index order; only those k are then sorted.
    """
    if k == 1:
        return np.argmax(scores, axis=1)[:, None]  # argmax: the same tie rule as greedy
    k = min(k, scores.shape[1])
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1:k]                     # (R, 1)
    key = np.where(scores > kth, 0, np.where(scores == kth, 1, 2)).astype(np.int8)
    winners = np.argsort(key, axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(scores, winners, axis=1)
    order = np.lexsort((winners, -values), axis=1)  # by value, descending; then by index
    return np.take_along_axis(winners, order, axis=1)


def beam_search(step, state, start, end, max_len=20, beam_size=3, length_norm=0.0):
    """Keep the beam_size best partial sequences at every step; return them ranked.

    state: initial state for B inputs (batch-first arrays, see the module docstring); start: int or
    (B,); end: the <END> token; max_len: at most this many tokens are generated (<END> included).
    length_norm: alpha in score = log_prob / length^alpha, length = tokens generated (<END> included);
    0 ranks by the total log-probability (which favours short sequences), 1 by the mean per token.
    Returns a list of B lists of up to beam_size Hypothesis, best first.

    Implementation: the B inputs times k beams are one batch of B*k rows (row b*k + j is beam j of
    input b), so the step runs once per time step for everything. Beam scores (B, k) start at
    [0, -inf, ...]: only beam 0 exists at first, which keeps the k starting copies from producing the
    same candidate k times. Candidates are (B, k*V); candidate c is beam c // V extended by token
    c % V (integer division: never float indices).
    """
    # BEGIN SOLUTION
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if end is None:
        raise ValueError("beam search needs an end token (to run to max_len, give one the model never emits)")
    k = beam_size
    B = _batch_size(state, start)
    rows_of_input = np.repeat(np.arange(B), k)
    state = select_rows(state, rows_of_input)             # every input's state copied k times
    tokens = _start_tokens(start, B)[rows_of_input]       # (B*k,)
    beam_logp = np.full((B, k), -np.inf)
    beam_logp[:, 0] = 0.0
    lengths = np.zeros((B, k), dtype=np.int64)            # tokens generated so far, <END> included
    finished = np.zeros((B, k), dtype=bool)
    history = np.zeros((B * k, 0), dtype=np.int64)        # generated tokens of each row
    extras_history = None                                 # name -> (B*k, t, ...)

    for _ in range(max_len):
        log_probs, state, extras = _call(step, tokens, state)
        V = log_probs.shape[1]
        step_logp = log_probs.reshape(B, k, V).astype(np.float64, copy=True)
        # a finished beam has one continuation: itself, at no cost (it will emit <END> again, ignored)
        step_logp[finished] = -np.inf
        step_logp[finished, end] = 0.0
        cand_logp = beam_logp[:, :, None] + step_logp                       # (B, k, V)
        cand_len = (lengths + ~finished)[:, :, None]                        # (B, k, 1)
        cand_score = cand_logp / np.maximum(cand_len, 1) ** length_norm if length_norm else cand_logp
        best = _top_k(cand_score.reshape(B, k * V), k)                      # (B, k) flat candidate ids
        parent, token = np.divmod(best, V)                                  # integer beam and token ids
        rows = (np.arange(B)[:, None] * k + parent).reshape(-1)             # parent row of each new beam
        beam_logp = np.take_along_axis(cand_logp.reshape(B, -1), best, axis=1)
        lengths = np.take_along_axis(cand_len[:, :, 0], parent, axis=1)
        finished = np.take_along_axis(finished, parent, axis=1) | (token == end)
        tokens = token.reshape(-1)
        state = select_rows(state, rows)
        history = np.concatenate([history[rows], tokens[:, None]], axis=1)
        if extras:
            step_extras = {name: value[rows][:, None] for name, value in extras.items()}
            extras_history = step_extras if extras_history is None else {
                name: np.concatenate([extras_history[name][rows], step_extras[name]], axis=1)
                for name in step_extras}
        if finished.all():
            break

    results = []
    for b in range(B):
        hyps = []
        for j in range(k):
            if not np.isfinite(beam_logp[b, j]):
                continue  # fewer than k sequences exist (tiny vocabulary, short max_len)
            row, n, done = b * k + j, int(lengths[b, j]), bool(finished[b, j])
            logp = float(beam_logp[b, j])
            score = logp / max(n, 1) ** length_norm if length_norm else logp
            extras = {name: h[row, :n] for name, h in (extras_history or {}).items()}
            hyps.append(Hypothesis(history[row, :n - done].tolist(), logp, score, done, extras))
        hyps.sort(key=lambda h: -h.score)  # already ordered by score; stable for ties
        results.append(hyps)
    return results
    # END SOLUTION
