"""Greedy, sampling and beam search against models small enough to check by hand or by enumeration."""
import itertools

import numpy as np
import pytest

from minicap.decode import beam_search, greedy, sample, select_rows
from minicap.nn import log_softmax


def tiny_rnn_step(V=4, H=3, seed=0, scale=1.5):
    """A random vanilla-RNN language model: log p depends on the whole history through h.

    It also reports two extras per step: the input token it read, and the running sum of the inputs
    kept in its state, so a test can check that beam search reorders extras with their beams.
    """
    rng = np.random.default_rng(seed)
    E, Wh, b = rng.standard_normal((V, H)) * scale, rng.standard_normal((H, H)) * scale, rng.standard_normal(H)
    Wo, bo = rng.standard_normal((H, V)) * scale, rng.standard_normal(V)

    def step(tokens, state):
        h = np.tanh(E[tokens] + state["h"] @ Wh + b)
        total = state["sum"] + tokens
        extras = {"input": tokens.astype(float), "sum": total.astype(float)}
        return log_softmax(h @ Wo + bo), {"h": h, "sum": total, "note": None}, extras

    def initial(B=1):
        return {"h": np.tile(np.linspace(-0.5, 0.5, H), (B, 1)), "sum": np.zeros(B, dtype=np.int64), "note": None}

    return step, initial


def sequence_log_prob(step, state, start, tokens):
    """log p of a token sequence under the step function, by feeding it in (batch of one)."""
    total, prev = 0.0, np.array([start])
    for tok in tokens:
        log_probs, state, _ = step(prev, state)
        total += log_probs[0, tok]
        prev = np.array([tok])
    return total


def enumerate_all(step, initial, start, end, V, max_len):
    """Every possible output: sequences ending in <END> within max_len tokens, and the unfinished ones."""
    words = [t for t in range(V) if t != end]
    out = []
    for n in range(max_len):
        for body in itertools.product(words, repeat=n):
            out.append((list(body), sequence_log_prob(step, initial(), start, list(body) + [end]), True))
    for body in itertools.product(words, repeat=max_len):
        out.append((list(body), sequence_log_prob(step, initial(), start, list(body)), False))
    return out


# Tokens are discrete, but they are chosen by comparing floats. Where a test compares the tokens of two
# decodes whose log-probabilities come from differently shaped batches (BLAS may round them differently,
# ~1e-15 in float64, and differently again on another CPU), the tokens can only differ at a near-tie.
# Those tests record the smallest gap at every choice and check it is far wider than that rounding, so
# their exact token comparisons cannot flip on another machine.
MIN_GAP = 1e-9


def record_choice_gaps(monkeypatch):
    """Make beam search record, at each step, the smallest gap between its beam_size + 1 best candidate
    scores (the order of the beams it keeps, and the cut to the best one it drops). Returns the list."""
    from minicap import decode
    gaps, top_k = [], decode._top_k

    def recording(scores, k):
        best = -np.sort(-scores, axis=1)[:, :k + 1]
        real = np.isfinite(best[:, 1:])   # candidates at -inf do not exist: nothing to flip there
        gaps.append(np.min(best[:, :-1][real] - best[:, 1:][real], initial=np.inf))
        return top_k(scores, k)

    monkeypatch.setattr(decode, "_top_k", recording)
    return gaps


@pytest.mark.parametrize("length_norm", [0.0, 1.0])
def test_beam_search_finds_the_exact_ranking_when_nothing_is_pruned(length_norm, monkeypatch):
    V, end, start, max_len = 4, 3, 0, 4
    step, initial = tiny_rnn_step(V)
    every = enumerate_all(step, initial, start, end, V, max_len)  # 1+3+9+27 finished + 81 unfinished
    assert len(every) == 121

    def score(item):
        tokens, logp, finished = item
        return logp / (len(tokens) + finished) ** length_norm

    exact = sorted(every, key=lambda item: -score(item))
    # the beam (one batch) and the enumeration (one sequence at a time) round differently: their
    # rankings can only be compared exactly because no two sequences score within MIN_GAP
    assert np.min(-np.diff([score(item) for item in exact])) > MIN_GAP
    gaps = record_choice_gaps(monkeypatch)
    beams = beam_search(step, initial(), start, end, max_len=max_len, beam_size=121, length_norm=length_norm)[0]
    narrow = beam_search(step, initial(), start, end, max_len, beam_size=3, length_norm=length_norm)[0]
    assert min(gaps) > MIN_GAP, "a near-tie: the token comparisons below could flip on another CPU"
    assert len(beams) == 121
    for hyp, (tokens, logp, finished) in zip(beams, exact):
        assert hyp.tokens == tokens and hyp.finished == finished
        assert hyp.log_prob == pytest.approx(logp, abs=1e-10)
        assert hyp.score == pytest.approx(score((tokens, logp, finished)), abs=1e-10)
    # and a narrow beam still finds the best sequence on this model
    assert narrow[0].tokens == exact[0][0]


def test_beam_search_beats_greedy_where_greedy_is_short_sighted():
    """p(A)=0.6 then three equally likely words (0.2 each path); p(B)=0.4 then <END> for sure."""
    A, B, END, W1, W2, W3, START = range(7)
    table = np.full((7, 7), 1e-12)
    table[START, [A, B]] = [0.6, 0.4]
    table[A, [W1, W2, W3]] = 1 / 3
    table[B, END] = 1.0
    table[[W1, W2, W3], END] = 1.0
    table[END, END] = 1.0
    log_table = np.log(table / table.sum(axis=1, keepdims=True))

    def step(tokens, state):
        return log_table[tokens], state

    state = np.zeros((1, 1))
    assert greedy(step, state, START, END, max_len=5)[0].tokens == [A, W1]
    best = beam_search(step, state, START, END, max_len=5, beam_size=2)[0]
    assert best[0].tokens == [B] and best[0].log_prob == pytest.approx(np.log(0.4), abs=1e-9)
    assert best[1].tokens == [A, W1] and best[1].finished


def test_beam_of_one_equals_greedy_on_a_batch(monkeypatch):
    step, initial = tiny_rnn_step(V=9, H=5, seed=0)
    starts = np.array([0, 4, 7])
    gaps = record_choice_gaps(monkeypatch)
    g = greedy(step, initial(3), starts, end=8, max_len=12)
    b = beam_search(step, initial(3), starts, end=8, max_len=12, beam_size=1)
    # beam search adds its running score before the argmax: equal tokens need no near-tie to round away
    assert min(gaps) > MIN_GAP, "a near-tie: the token comparisons below could flip"
    assert [h.finished for h in g] == [True, False, True]  # rows that end, and one that runs out
    for hg, (hb,) in zip(g, b):
        assert hb.tokens == hg.tokens and hb.finished == hg.finished
        assert hb.log_prob == pytest.approx(hg.log_prob, abs=1e-12)
        for name in hg.extras:   # exact: the extras are the integer inputs and their sums
            np.testing.assert_array_equal(hb.extras[name], hg.extras[name])


def test_batched_beam_search_equals_one_input_at_a_time(monkeypatch):
    step, initial = tiny_rnn_step(V=7, H=4, seed=5)
    starts = np.array([1, 2, 3, 4])
    gaps = record_choice_gaps(monkeypatch)   # 16 rows at once and 4 at a time round differently
    together = beam_search(step, initial(4), starts, end=6, max_len=6, beam_size=4, length_norm=0.7)
    each = [beam_search(step, initial(1), int(start), end=6, max_len=6, beam_size=4, length_norm=0.7)[0]
            for start in starts]
    assert min(gaps) > MIN_GAP, "a near-tie: the token comparisons below could flip on another CPU"
    for b, alone in enumerate(each):
        assert [h.tokens for h in together[b]] == [h.tokens for h in alone]
        np.testing.assert_allclose([h.score for h in together[b]], [h.score for h in alone], atol=1e-12)


def test_beam_extras_and_state_follow_their_beam():
    step, initial = tiny_rnn_step(V=6, H=4, seed=2)
    start = 2
    for hyp in beam_search(step, initial(), start, end=5, max_len=7, beam_size=5)[0]:
        n = len(hyp.tokens) + hyp.finished
        inputs = [start] + hyp.tokens[:n - 1]  # what the step read before choosing each token
        np.testing.assert_array_equal(hyp.extras["input"], inputs)
        np.testing.assert_array_equal(hyp.extras["sum"], np.cumsum(inputs))  # from the reordered state
        assert hyp.log_prob == pytest.approx(
            sequence_log_prob(step, initial(), start, hyp.tokens + [5] * hyp.finished), abs=1e-10)


def test_beam_search_returns_unfinished_beams_when_none_reaches_end():
    V, end = 5, 4

    def step(tokens, state):  # <END> is impossible
        scores = np.tile(np.arange(V, dtype=float), (len(tokens), 1))
        scores[:, end] = -np.inf
        return log_softmax(scores), state

    beams = beam_search(step, np.zeros((2, 1)), 0, end, max_len=3, beam_size=3)
    assert len(beams) == 2
    for hyps in beams:
        assert len(hyps) == 3 and not any(h.finished for h in hyps)
        assert all(len(h.tokens) == 3 for h in hyps)
        assert hyps[0].tokens == [3, 3, 3]
        assert all(isinstance(t, int) for h in hyps for t in h.tokens)


def test_beam_wider_than_the_number_of_sequences_returns_only_real_ones():
    def step(tokens, state):  # two tokens: 0 and <END> = 1
        return np.log(np.tile([0.3, 0.7], (len(tokens), 1))), state

    hyps = beam_search(step, np.zeros((1, 1)), 0, 1, max_len=2, beam_size=10)[0]
    # <END>, 0 <END>, 0 0 (unfinished): three sequences, nothing with -inf
    assert sorted((h.tokens, h.finished) for h in hyps) == [([], True), ([0], True), ([0, 0], False)]
    assert all(np.isfinite(h.log_prob) for h in hyps)


def test_greedy_stops_each_row_at_its_end_token():
    step, initial = tiny_rnn_step(V=5, H=4, seed=1)
    for hyp in greedy(step, initial(3), np.array([0, 1, 2]), end=4, max_len=10):
        assert 4 not in hyp.tokens
        assert len(hyp.extras["input"]) == len(hyp.tokens) + hyp.finished


def test_low_temperature_sampling_is_greedy_and_high_temperature_is_not():
    step, initial = tiny_rnn_step(V=8, H=5, seed=4, scale=0.7)
    best = greedy(step, initial(4), np.arange(4), end=None, max_len=15)
    for seed in range(5):
        cold = sample(step, initial(4), np.arange(4), None, 15, temperature=1e-3, rng=np.random.default_rng(seed))
        assert [h.tokens for h in cold] == [h.tokens for h in best]
    warm = sample(step, initial(4), np.arange(4), None, 15, temperature=1.0, rng=np.random.default_rng(0))
    assert [h.tokens for h in warm] != [h.tokens for h in best]
    assert [h.tokens for h in sample(step, initial(4), np.arange(4), None, 15, temperature=0)] == \
        [h.tokens for h in best]


def test_sampling_draws_from_the_tempered_distribution():
    p = np.array([0.5, 0.3, 0.15, 0.05])
    N = 20000

    def step(tokens, state):
        return np.log(np.tile(p, (len(tokens), 1))), state

    impossible = p.copy()
    impossible[[0, 3]] = 0.0  # tokens of probability 0 (log p = -inf), at both ends, are never drawn
    with np.errstate(divide="ignore"):
        log_impossible = np.log(impossible / impossible.sum())
    picks = sample(lambda tok, st: (np.tile(log_impossible, (len(tok), 1)), st),
                   np.zeros((N, 1)), 0, None, 1, rng=np.random.default_rng(2))
    assert {h.tokens[0] for h in picks} == {1, 2}
    for T in (1.0, 0.5):
        hyps = sample(step, np.zeros((N, 1)), 0, None, 1, temperature=T, rng=np.random.default_rng(1))
        freq = np.bincount([h.tokens[0] for h in hyps], minlength=4) / N
        expected = p ** (1 / T) / np.sum(p ** (1 / T))
        np.testing.assert_allclose(freq, expected, atol=4 * np.sqrt(0.25 / N))
        # the reported log-probability is the model's own (T = 1)
        assert hyps[0].log_prob == pytest.approx(np.log(p[hyps[0].tokens[0]]))


def test_select_rows_keeps_the_structure():
    state = {"h": np.arange(6).reshape(3, 2), "pair": (np.arange(3), [np.ones((3, 1))]), "name": "x"}
    picked = select_rows(state, np.array([2, 2, 0]))
    np.testing.assert_array_equal(picked["h"], [[4, 5], [4, 5], [0, 1]])
    np.testing.assert_array_equal(picked["pair"][0], [2, 2, 0])
    assert picked["pair"][1][0].shape == (3, 1) and picked["name"] == "x"


def test_bad_arguments():
    step, initial = tiny_rnn_step()
    with pytest.raises(ValueError):
        beam_search(step, initial(), 0, 3, beam_size=0)
    with pytest.raises(ValueError, match="end token"):
        beam_search(step, initial(), 0, None)
    with pytest.raises(ValueError):
        sample(step, initial(), 0, 3, temperature=-1.0, rng=np.random.default_rng(0))
    with pytest.raises(ValueError):
        sample(step, initial(), 0, 3, temperature=1.0)
