"""The test cases of the assignments, and the one engine that runs a test and compares its answers.

A *case* builds a small float64 problem from a seed: the function(s) under test, their arguments,
and the names of what they return. It imports minicap's layers when it runs, so the same case runs
the reference in the grader's process and the student's code in the student's process (where
`minicap` is the student's copy). Both build the same inputs from the same seed.

A *test* (a manifest entry) runs one part of a case:

    forward    answers = the forward outputs, e.g. {"next_h": ..., "next_c": ...}
    backward   answers = the gradients the backward pass returns for upstream gradients drawn from
               the seed, e.g. {"dx": ..., "dWh": ...}; beside them, the relative error of each against
               finite differences of the same process's own forward (`fd`)

`run_test` produces the answers; `compare` scores them against expected answers (the reference's,
computed in another process) and writes the feedback a student can act on.

Most cases reuse the gradient-check suite's instances (minicap.gradcheck_cases); the captioner's
decoder step and beam search have their own here.
"""
from dataclasses import dataclass, field

import numpy as np

from minicap.gradcheck import numerical_gradient, rel_error

DEFAULT_TOLERANCE = 1e-6
FD_COORDS = 6          # coordinates of each input checked by finite differences in a backward test


@dataclass
class Case:
    """forward(*args) -> (out, cache); backward(*douts, cache) -> gradients of `wrt`, in order."""
    forward: object
    args: list
    outputs: list                     # names of the forward outputs, in order
    backward: object = None
    wrt: list = field(default_factory=list)   # [(name, position in args)]


def _from_gradcheck(name, outputs, **options):
    """A case from minicap.gradcheck_cases.LAYER_CASES (or one of its builders called with options)."""
    def build(rng):
        from minicap import gradcheck_cases as gc
        if options:
            forward, backward, args, wrt, _ = gc._case_soft_attention(rng, **options)
        else:
            forward, backward, args, wrt, _ = gc.LAYER_CASES[name](rng)
        return Case(forward, list(args), outputs, backward, list(wrt))
    return build


def _case_decoder_step(rng):
    """One step of a soft-attention captioner with the beta gate: N=3 images, L=4 locations."""
    from minicap.models import captioner as cap
    config = cap.CaptionerConfig(attention="soft", gate=True, embed=4, hidden=5, attention_size=6, dropout=0.0)
    params = cap.init_params(config, vocab_size=7, feature_size=3, rng=rng, dtype=np.float64)
    params = {k: rng.standard_normal(v.shape) * 0.5 for k, v in sorted(params.items())}  # non-zero biases
    N, L = 3, 4
    image, _ = cap.image_forward(params, config, rng.standard_normal((N, L, 3)))
    args = [rng.standard_normal((N, 4)) * 0.5, rng.standard_normal((N, 5)) * 0.5, rng.standard_normal((N, 5)) * 0.5]

    def forward(x, h, c):
        (h_next, c_next, z, alpha, _), cache = cap.step_forward(params, config, x, h, c, image)
        return (h_next, c_next, z, alpha), cache
    return Case(forward, args, ["h_next", "c_next", "z", "alpha"])


def _case_beam_search(rng):
    """Beam search (k=3, max_len=5) over a toy recurrent model with V=6 tokens, <END>=0, start=1, for 3 inputs."""
    from minicap import decode
    B, V, k, max_len, start, end = 3, 6, 3, 5, 1, 0
    W, U = rng.standard_normal((V, V)) * 1.5, rng.standard_normal((V, V)) * 0.5

    def step(tokens, state):
        h = np.tanh(state["h"] @ U + W[tokens])
        logits = 3 * h
        logits = logits - logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True)), {"h": h}

    def forward(h0):
        results = decode.beam_search(step, {"h": h0}, start, end, max_len=max_len, beam_size=k)
        tokens, log_prob, finished = np.full((B, k, max_len), -1.0), np.zeros((B, k)), np.zeros((B, k))
        if len(results) != B:
            raise ValueError(f"beam_search returned {len(results)} lists of hypotheses, expected one per input ({B})")
        for b, hyps in enumerate(results):
            for j, hyp in enumerate(hyps[:k]):
                tokens[b, j, :len(hyp.tokens)] = hyp.tokens[:max_len]
                log_prob[b, j], finished[b, j] = hyp.log_prob, float(hyp.finished)
        return (tokens, log_prob, finished), None
    return Case(forward, [rng.standard_normal((B, V))], ["tokens", "log_prob", "finished"])


CASES = {
    "rnn_step": _from_gradcheck("rnn_step", ["next_h"]),
    "rnn_seq": _from_gradcheck("rnn_seq", ["h"]),
    "lstm_step": _from_gradcheck("lstm_step", ["next_h", "next_c"]),
    "temporal_softmax": _from_gradcheck("temporal_softmax_loss", ["loss"]),
    "soft_attention_gated": _from_gradcheck(None, ["z", "alpha"], gated=True),
    "soft_attention_masked": _from_gradcheck(None, ["z", "alpha"], gated=True, masked=True),
    "penalty": _from_gradcheck("doubly_stochastic_penalty", ["penalty"]),
    "filterbank": _from_gradcheck("filterbank", ["Fx", "Fy"]),
    "filterbank_read": _from_gradcheck("filterbank_read", ["glimpse"]),
    "filterbank_write": _from_gradcheck("filterbank_write", ["canvas"]),
    "gaussian_kl": _from_gradcheck("gaussian_kl", ["kl"]),
    "decoder_step": _case_decoder_step,
    "beam_search": _case_beam_search,
}


def _as_tuple(value):
    return value if isinstance(value, tuple) else (value,)


def _as_array(value, what):
    """A student's return value as a float64 array; a readable error when it is not one."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} is a {type(value).__name__}, not an array of numbers") from None
    return array


def run_test(test, seed, fd=True):
    """Run one test (a manifest entry) on the inputs of `seed`.

    Returns (answers, fd_errors): answers {output name: float64 array}; fd_errors {gradient name:
    relative error against finite differences of this process's own forward} (backward tests with
    fd=True only). Raises whatever the code under test raises.
    """
    case = CASES[test["case"]](np.random.default_rng(seed))
    args = list(case.args)
    out, cache = case.forward(*args)
    outs = _as_tuple(out)
    if test["part"] == "forward":
        if len(outs) != len(case.outputs):
            raise ValueError(f"{test['function']} returned {len(outs)} outputs, expected {len(case.outputs)} "
                             f"({', '.join(case.outputs)})")
        return {name: _as_array(o, name) for name, o in zip(case.outputs, outs)}, {}
    # backward: upstream gradients drawn from the seed, shaped like the outputs
    drng = np.random.default_rng(seed + 1)
    douts = tuple(drng.standard_normal(np.shape(o)) for o in outs)
    grads = _as_tuple(case.backward(*douts, cache))
    names = ["d" + name for name, _ in case.wrt]
    if len(grads) != len(names):
        raise ValueError(f"{test['function']} returned {len(grads)} gradients, expected {len(names)} "
                         f"({', '.join(names)})")
    answers = {name: _as_array(g, name) for name, g in zip(names, grads)}
    fd_errors = {}
    if fd:
        def projected_loss():
            o = _as_tuple(case.forward(*args)[0])
            return float(sum(np.sum(np.asarray(oi) * di) for oi, di in zip(o, douts)))
        pick = np.random.default_rng(seed + 2)
        for (name, pos), dname in zip(case.wrt, names):
            x = args[pos]
            if answers[dname].shape != np.shape(x):
                continue   # compare() reports the shape
            size = x.size
            flat = pick.choice(size, size=min(FD_COORDS, size), replace=False)
            idx = [np.unravel_index(k, x.shape) for k in flat]
            num = numerical_gradient(projected_loss, x, indices=idx)
            fd_errors[dname] = rel_error(np.array([answers[dname][i] for i in idx]), np.array([num[i] for i in idx]))
    return answers, fd_errors


@dataclass
class Score:
    """The outcome of one test: points earned, and one line of feedback per problem found."""
    points: float
    max_points: float
    errors: dict                     # output name -> relative error (inf: missing or wrong shape)
    messages: list

    @property
    def passed(self):
        return self.points == self.max_points


def compare(test, expected, got, fd_errors=None):
    """Score a test's answers `got` against `expected` (both {name: array}).

    Each output within the tolerance (relative error, minicap.gradcheck.rel_error) earns an equal
    share of the test's points. Feedback names the function, the output, the error, the bound and the
    manifest's hint: "lstm_step_backward: dWh relative error 3.1e-02 (should be < 1e-06): check ...".
    """
    tol = test.get("tol", DEFAULT_TOLERANCE)
    hints = test.get("hints", {})
    function = test["function"]
    errors, messages, right = {}, [], 0
    for name, want in expected.items():
        have = got.get(name)
        hint = hints.get(name, test.get("hint", ""))
        if have is None:
            errors[name] = float("inf")
            messages.append(f"{function}: {name} missing from what it returned")
            continue
        if have.shape != want.shape:
            errors[name] = float("inf")
            messages.append(f"{function}: {name} has shape {have.shape}, expected {want.shape}")
            continue
        if not np.all(np.isfinite(have)) and np.all(np.isfinite(want)):
            errors[name] = float("inf")
            messages.append(f"{function}: {name} contains NaN or inf: {hint}")
            continue
        err = rel_error(have, want)
        errors[name] = err
        if err < tol:
            right += 1
        else:
            fd = (fd_errors or {}).get(name)
            fd_note = f"; against finite differences of your own forward: {fd:.1e}" if fd is not None else ""
            messages.append(f"{function}: {name} relative error {err:.1e} (should be < {tol:.0e}){fd_note}"
                            + (f": {hint}" if hint else ""))
    points = test["points"] * right / max(len(expected), 1)
    return Score(round(points, 6), test["points"], errors, messages)
