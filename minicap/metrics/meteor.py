"""METEOR (Banerjee & Lavie 2005; parameters and scoring rules of METEOR 1.5, Denkowski & Lavie 2014).

For one candidate (the "test", h) and one reference (r), both first re-tokenized the way Java
METEOR's -norm option does (meteor_normalize; pycocoevalcap runs the jar with it):

1. Candidate matches between words, in two stages ("modules"):
       exact:  h_i == r_j
       stem:   porter(h_i) == porter(r_j) but h_i != r_j
   (Java METEOR 1.5 adds WordNet synonyms and a paraphrase table; minicap has neither, see below.)
2. Alignment: pick a one-to-one subset of the candidate matches. Following METEOR 1.5, a match
   that is the only candidate for both of its words is always kept; the rest are chosen to
   (a) maximise the number of exact matches, then (b) minimise the number of chunks, then
   (c) keep more matches, then (d) minimise the summed distance sum |i - j|. A chunk is a run
   of matches adjacent in both sentences ("the cat sat" vs "the cat sat" is 1 chunk).
3. Statistics. Words are function words (METEOR's list: "the", "a", "of", "one", "two", ...)
   or content words; delta weighs content words, 1 - delta function words:
       P = sum_m w_m (delta * hc_m + (1 - delta) * hf_m) / (delta * |h_content| + (1 - delta) * |h_function|)
       R = the same with the reference's matched/total words
   where hc_m, hf_m count the candidate's content/function words matched by module m with
   weight w_m (exact 1.0, stem 0.6).
4. Score:
       Fmean = P R / (alpha P + (1 - alpha) R)
       frag  = chunks / ((matched words in h + matched words in r) / 2)   (0 when h == r)
       Pen   = gamma * frag ** beta
       METEOR = Fmean * (1 - Pen)
   With several references the candidate takes the best-scoring one (the first on ties).
   The corpus score is NOT the mean of sentence scores: the statistics of every image (with
   its best reference) are summed and step 4 is applied once to the sums; as in Java, an
   image whose candidate matches its reference perfectly adds no chunks to the sum.

Why (a) counts only exact matches: Java METEOR 1.5 ranks partial alignments by
`int matches += length * weight` with weight 0.5 for every non-exact module, and Java's int
arithmetic truncates each 0.5 away, so only exact matches count there. A stem match that is not
forced (step 2's "only candidate" rule) survives only when it does not add a chunk. Reproducing
this is what makes our scores agree with the reference implementation: on the test corpus of
minicap.metrics.coco_compare they equal Java METEOR 1.5 run with `-m "exact stem"` exactly.

Differences from Java METEOR 1.5 (what pycocoevalcap runs):
- no synonym (WordNet) and no paraphrase module: words that only those modules match count as
  unmatched here, so our METEOR is usually lower on captions that use synonyms (it can also be
  higher: Java's extra candidates sometimes make a stem match ambiguous, and then it is dropped);
- Porter (1980) instead of the Snowball English stemmer;
- the alignment search: like Java, a beam search of width 40 over reference positions, but
  partial alignments that can only continue the same way (same test words used, same open
  chunk) are merged first, so the beam holds 40 genuinely different ones; and each reference
  word tries at most 16 test words (next section).
docs/metrics.md reports the measured agreement.

Bounded time. Java tries, for each reference word and each of the 40 partial alignments in its
beam, every test word it may match. A word that repeats (a long caption has hundreds of "the")
makes that O(R * 40 * T): 2,000-word captions would take minutes here. So align() tries, for
reference word j, at most MAX_CANDIDATES = 16 of its candidate test words: the 16 nearest to
position j, plus the one that continues a partial alignment's open chunk. Its work is then at
most R * beam_width * (max_candidates + 2) extended partial alignments (align's `counter`
counts them), each a few Python operations (the matches so far are a linked list, not a tuple
copied at every step): linear in the length, about 1 s for two 2,000-word captions. Below the
cut the search is unchanged, and on captions it changes nothing: the captions of coco_compare's test
corpus have at most 13 candidates per word, and their alignments are the same with the cut and
without (tests/test_metrics.py checks this). On long text the cut can miss far-away matches:
on two 600-word captions 494 matches instead of 509, METEOR 0.341 instead of 0.349.
"""
import re
from bisect import bisect_left
from collections import Counter, defaultdict, namedtuple

from minicap.metrics.porter import porter_stem

# METEOR 1.5's English function-word list (its resources/function/english.words), verbatim.
FUNCTION_WORDS = frozenset([
    "the", ",", ".", "to", "of", "and", "a", "in", "that", "for", '"', "is", "on", "'s", "it",
    "with", "was", "as", "said", "at", "he", "by", "be", "from", "have", "has", "are", "his",
    "but", "an", "this", "not", "i", "will", "\u2019", "they", ")", "-rrb-", "(", "-lrb-", "who",
    "their", "had", "we", "which", "were", "been", "more", "or", "s", "its", "would", "about",
    "new", "one", "after", "you", ":", "also", "up", "when", "there", "than", "$", "all", "out",
    "her", "people", "she", "year", "two", "-", "can", "if", "last", "first", "\u201c", "over",
    "other", "\u201d", "into", "some", "what", "so", "--", "no", "time", "years", "could", "?",
    "'t", "\u2014", "'"])

MeteorParams = namedtuple("MeteorParams", "alpha beta gamma delta weights")
MeteorParams.__doc__ = """METEOR parameters.

alpha, beta, gamma: Fmean weight, fragmentation exponent and maximum penalty.
delta: weight of content words (1 - delta for function words); 0.5 treats all words alike.
weights: (exact, stem) module weights in P and R.
"""

# METEOR 1.5, English, default task: the parameters pycocoevalcap's jar uses.
METEOR_1_5 = MeteorParams(alpha=0.85, beta=0.2, gamma=0.6, delta=0.75, weights=(1.0, 0.6))
# The original METEOR (Banerjee & Lavie 2005): Fmean = 10PR / (R + 9P), Pen = 0.5 (ch/m)^3,
# every match weighs 1, no function-word weighting.
BANERJEE_LAVIE_2005 = MeteorParams(alpha=0.9, beta=3.0, gamma=0.5, delta=0.5, weights=(1.0, 1.0))

EXACT, STEM = 0, 1
BEAM_WIDTH = 40  # partial alignments kept per reference position, as in Java METEOR 1.5
MAX_CANDIDATES = 16  # test words tried per reference word (module docstring, "Bounded time")


class MeteorStats:
    """METEOR's sufficient statistics for one candidate/reference pair, or summed over a corpus.

    test_len, ref_len:            words in the candidate / reference
    test_function, ref_function:  function words among them
    test_content_matches[m], test_function_matches[m], ref_content_matches[m],
    ref_function_matches[m]:      matched words by module m (EXACT, STEM) and word kind
    chunks:                       runs of adjacent matches
    """

    def __init__(self):
        self.test_len = self.ref_len = 0
        self.test_function = self.ref_function = 0
        self.test_content_matches = [0, 0]
        self.test_function_matches = [0, 0]
        self.ref_content_matches = [0, 0]
        self.ref_function_matches = [0, 0]
        self.chunks = 0

    def add(self, other):
        """Add another pair's statistics into these (for the corpus score)."""
        self.test_len += other.test_len
        self.ref_len += other.ref_len
        self.test_function += other.test_function
        self.ref_function += other.ref_function
        for m in (EXACT, STEM):
            self.test_content_matches[m] += other.test_content_matches[m]
            self.test_function_matches[m] += other.test_function_matches[m]
            self.ref_content_matches[m] += other.ref_content_matches[m]
            self.ref_function_matches[m] += other.ref_function_matches[m]
        if not other.is_perfect():
            self.chunks += other.chunks  # a perfect match adds no fragmentation (as in Java)

    def is_perfect(self):
        """Every word of both sentences matched, in one chunk: no fragmentation penalty."""
        test_matches = sum(self.test_content_matches) + sum(self.test_function_matches)
        ref_matches = sum(self.ref_content_matches) + sum(self.ref_function_matches)
        return test_matches == self.test_len and ref_matches == self.ref_len and self.chunks == 1

    def score(self, params=METEOR_1_5):
        """The METEOR score (step 4 of the module docstring) of these statistics, in [0, 1]."""
        delta, weights = params.delta, params.weights
        test_matches = sum(self.test_content_matches) + sum(self.test_function_matches)
        ref_matches = sum(self.ref_content_matches) + sum(self.ref_function_matches)
        test_weighted_len = delta * (self.test_len - self.test_function) + (1 - delta) * self.test_function
        ref_weighted_len = delta * (self.ref_len - self.ref_function) + (1 - delta) * self.ref_function
        if test_matches == 0 or test_weighted_len == 0 or ref_weighted_len == 0:
            return 0.0  # Java gets 0/0 = NaN here and reports 0
        # The sums and products below follow Java METEOR's order of operations exactly: two
        # references often tie mathematically, and the best one must be chosen as Java chooses it.
        test_weighted = ref_weighted = 0.0
        for m in (EXACT, STEM):
            test_weighted += self.test_content_matches[m] * weights[m] * delta
            ref_weighted += self.ref_content_matches[m] * weights[m] * delta
        for m in (EXACT, STEM):
            test_weighted += self.test_function_matches[m] * weights[m] * (1 - delta)
            ref_weighted += self.ref_function_matches[m] * weights[m] * (1 - delta)
        precision = test_weighted / test_weighted_len
        recall = ref_weighted / ref_weighted_len
        fmean = 1.0 / (((1.0 - params.alpha) / precision) + (params.alpha / recall))
        if self.is_perfect():
            frag = 0.0  # candidate == reference (up to stems): no penalty at all
        else:
            frag = self.chunks / ((test_matches + ref_matches) / 2)
        penalty = params.gamma * frag ** params.beta
        return max(fmean * (1.0 - penalty), 0.0)


# ---------------------------------------------------------------------------------------------
# METEOR's own re-tokenization. pycocoevalcap runs the jar with -norm, so Java METEOR splits
# the (already PTB-tokenized) captions once more before matching: "'s" -> "' s",
# "n't" -> "n 't", "t-shirt" -> "t shirt", "u.s." -> "us", "10:30" -> "10 : 30". The lengths,
# function-word counts and matches all depend on it, so we do the same. The rules below are
# the ones observed on the token shapes minicap.text.tokenize produces.
# ---------------------------------------------------------------------------------------------
_SEPARATED_SYMBOLS = re.compile(r"""([?!:/@#&_<>$%;"]|(?<!\d),|,(?!\d))""")
_INNER_HYPHEN = re.compile(r"(\w)-(\w)")
_ACRONYM = re.compile(r"^(?:[^\W\d_]\.){2,}$")          # u.s.  e.g.  a.m.
_KEEPS_FINAL_PERIOD = frozenset(["v", "vs", "rev"])   # lower-case entries of METEOR's prefix list


def _split_apostrophes(token):
    """"'s" -> ["'", "s"], "n't" -> ["n", "'t"], "o'clock" -> ["o", "'clock"], "dogs'" -> ["dogs", "'"].

    Every leading and trailing apostrophe becomes a word of its own (counted with indices rather
    than by recursion, so that a token of 5,000 apostrophes is no problem); what remains is split
    before its first apostrophe, which stays attached.
    """
    start, end = 0, len(token)
    while end - start > 1 and token[start] == "'":
        start += 1
    while end - start > 1 and token[end - 1] == "'":
        end -= 1
    core = token[start:end]
    if core == "n't":
        middle = ["n", "'t"]
    else:
        k = core.find("'")
        middle = [core[:k], core[k:]] if k > 0 else [core]
    return ["'"] * start + middle + ["'"] * (len(token) - end)


def meteor_normalize(tokens):
    """Re-tokenize a token list the way Java METEOR's -norm option does (see the comment above).

    tokens: list[str] (lower-case, from minicap.text.tokenize). Returns a new list[str].
    """
    line = _INNER_HYPHEN.sub(r"\1 \2", _SEPARATED_SYMBOLS.sub(r" \1 ", " ".join(tokens)))
    words = line.split()
    out = []
    for k, word in enumerate(words):
        if _ACRONYM.match(word):
            word = word.replace(".", "")
        elif len(word) > 1 and word.endswith(".") and word[:-1] not in _KEEPS_FINAL_PERIOD:
            next_word = words[k + 1] if k + 1 < len(words) else ""
            if not next_word[:1].islower():  # a period before a lower-case word is kept
                out += _split_apostrophes(word[:-1]) + ["."]
                continue
        out += _split_apostrophes(word)
    return out


def _nearest(positions, j, k):
    """The k entries of the ascending list `positions` closest to j (ties: the smaller), ascending."""
    right = bisect_left(positions, j)
    left = right - 1
    chosen = []
    while len(chosen) < k:
        if right >= len(positions) or (left >= 0 and j - positions[left] <= positions[right] - j):
            chosen.append(positions[left])
            left -= 1
        else:
            chosen.append(positions[right])
            right += 1
    return sorted(chosen)


def _candidate_matches(test, ref, max_candidates=None):
    """The word pairs that may be aligned, found through an index of the test words.

    Returns (by_ref, n_candidates, test_coverage, ref_keys, test_keys):
      by_ref[j]        = [(i, module), ...] ascending in i: the test words ref[j] may match;
                         at most max_candidates of them, the ones nearest to position j
                         (all of them when max_candidates is None)
      n_candidates[j]  = how many test words ref[j] may match before that cut
      test_coverage[i] = how many reference words test[i] may match
      ref_keys, test_keys: what is compared, the word or its stem
    Looking words up in a dict makes this O(T + R + matches) instead of comparing all T x R
    pairs; the cut keeps by_ref at O(R max_candidates) when one word repeats hundreds of times.
    """
    identical = test == ref  # Java uses only the exact module then
    # Equal words have equal stems, so the stem decides whether two words may match at all,
    # and the words themselves decide the module (EXACT if equal, STEM otherwise).
    key = (lambda word: word) if identical else porter_stem
    test_keys = [key(word) for word in test]
    ref_keys = [key(word) for word in ref]
    positions = defaultdict(list)  # key -> ascending test positions
    for i, k in enumerate(test_keys):
        positions[k].append(i)
    ref_key_counts = Counter(ref_keys)
    test_coverage = [ref_key_counts[k] for k in test_keys]
    by_ref, n_candidates = [], []
    for j, (word, k) in enumerate(zip(ref, ref_keys)):
        candidates = positions.get(k, [])
        n_candidates.append(len(candidates))
        if max_candidates is not None and len(candidates) > max_candidates:
            candidates = _nearest(candidates, j, max_candidates)
        by_ref.append([(i, EXACT if test[i] == word else STEM) for i in candidates])
    return by_ref, n_candidates, test_coverage, ref_keys, test_keys


def _option(i, j, module):
    """One way to match ref[j], with what the search needs precomputed, built once per reference
    word and shared by every partial alignment: (i, 1 << i (test[i]'s bit in the used-positions
    mask), 1 if exact else 0, |i - j|, the match (i, j, module) as align returns it).
    Options sort by i, as the candidates do.
    """
    return i, 1 << i, int(module == EXACT), abs(i - j), (i, j, module)


def align(test, ref, beam_width=BEAM_WIDTH, max_candidates=MAX_CANDIDATES, counter=None):
    """Choose METEOR's alignment of two token lists (step 2 of the module docstring).

    test: list[str] (length T), ref: list[str] (length R).
    beam_width: partial alignments kept after each reference word (Java's beamSize, 40).
    max_candidates: test words tried for one reference word (see "Bounded time" above);
        None tries them all, as Java does.
    counter: an optional collections.Counter; counter["extensions"] grows by the number of
        partial alignments built, the measure of work bounded by R * beam_width * (max_candidates + 2).
    Returns (matches, chunks): matches is a list of (i, j, module) with test[i] aligned to ref[j],
    sorted by j; chunks is the number of runs of matches adjacent in both sentences.
    """
    by_ref, n_candidates, test_coverage, ref_keys, test_keys = _candidate_matches(test, ref, max_candidates)
    # A match that is the only candidate for both of its words is kept unconditionally.
    forced = [None] * len(ref)
    used = 0  # bitmask of test positions taken
    for j, candidates in enumerate(by_ref):
        if n_candidates[j] == 1:
            i, module = candidates[0]
            if test_coverage[i] == 1:
                forced[j] = (i, module)
                used |= 1 << i

    # Search over reference positions, left to right. A state is (test positions used, end of the
    # last match in test, or -1 when the last reference word was unmatched). next_states maps it
    # to the best (cost, order, state, history) reaching it: cost = (-exact matches, chunks,
    # -matches, distance); order = when the state was first reached (ties go to the earlier);
    # history = the matches so far as a linked list (last match, earlier history), so that
    # extending it costs O(1) where copying a tuple of all matches would cost O(R).
    # States with the same key have the same futures, so only the cheaper one is kept (dynamic
    # programming); then only the beam_width cheapest states go on (beam search, as in Java).
    extensions = 0
    states = [((0, 0, 0, 0), 0, (used, -1), None)]
    for j, candidates in enumerate(by_ref):
        next_states = {}
        free = forced[j] is None  # ref[j] may match any unused candidate, or stay unmatched
        options = [_option(i, j, module) for i, module in (candidates if free else [forced[j]])]
        cut = n_candidates[j] > len(candidates)  # some candidates were left out by max_candidates
        tried = {i for i, _ in candidates} if cut else None
        for (neg_exact, chunks, neg_matches, distance), _, (used, last_end), history in states:
            state_options = options
            if cut and 0 <= last_end < len(test) and last_end not in tried \
                    and test_keys[last_end] == ref_keys[j]:
                # The test word that would continue the open chunk is always tried, so that
                # a long run of matches is not broken by the cut.
                module = EXACT if test[last_end] == ref[j] else STEM
                state_options = sorted(options + [_option(last_end, j, module)])
            # Each extension is offered to next_states under its key; a key keeps the cheapest
            # (the first on ties). Written out inline: this loop is where all the time goes.
            for i, bit, exact, dist, match in state_options:
                if free and used & bit:
                    continue  # test[i] is taken (a forced match's bit is its own, already set)
                extensions += 1
                key = (used | bit, i + 1)
                cost = (neg_exact - exact, chunks + (last_end != -1 and i != last_end),  # a jump in test
                        neg_matches - 1, distance + dist)                                 # closes a chunk
                old = next_states.get(key)
                if old is None:
                    next_states[key] = (cost, len(next_states), key, (match, history))
                elif cost < old[0]:
                    next_states[key] = (cost, old[1], key, (match, history))
            if free:  # leave ref[j] unmatched: closes the open chunk, if any
                extensions += 1
                key = (used, -1)
                cost = (neg_exact, chunks + (last_end != -1), neg_matches, distance)
                old = next_states.get(key)
                if old is None:
                    next_states[key] = (cost, len(next_states), key, history)
                elif cost < old[0]:
                    next_states[key] = (cost, old[1], key, history)
        states = list(next_states.values())
        if len(states) > beam_width:
            # (cost, order) decide; orders differ, so the comparison never reaches the rest
            states = sorted(states)[:beam_width]
    if counter is not None:
        counter["extensions"] += extensions

    def final_cost(entry):
        cost, order, (used, last_end), history = entry
        return (cost[0], cost[1] + (last_end != -1)) + cost[2:]

    cost, _, (_, last_end), history = min(states, key=final_cost)
    matches = []
    while history is not None:
        match, history = history
        matches.append(match)
    return matches[::-1], cost[1] + (last_end != -1)


def meteor_stats(test, ref, beam_width=BEAM_WIDTH, max_candidates=MAX_CANDIDATES):
    """The MeteorStats of one candidate token list against one reference token list.

    beam_width, max_candidates: the bounds of the alignment search (see align).
    """
    matches, chunks = align(test, ref, beam_width, max_candidates)
    stats = MeteorStats()
    stats.test_len, stats.ref_len = len(test), len(ref)
    stats.test_function = sum(w in FUNCTION_WORDS for w in test)
    stats.ref_function = sum(w in FUNCTION_WORDS for w in ref)
    for i, j, module in matches:
        if test[i] in FUNCTION_WORDS:
            stats.test_function_matches[module] += 1
        else:
            stats.test_content_matches[module] += 1
        if ref[j] in FUNCTION_WORDS:
            stats.ref_function_matches[module] += 1
        else:
            stats.ref_content_matches[module] += 1
    stats.chunks = chunks
    return stats


def best_reference_stats(test, refs, params=METEOR_1_5):
    """(stats, score) of the best-scoring reference for one candidate (the first on ties)."""
    best_stats, best_score = None, -1.0
    for ref in refs:
        stats = meteor_stats(test, ref)
        score = stats.score(params)
        if score > best_score:
            best_stats, best_score = stats, score
    return best_stats, best_score


def meteor(refs, cands, params=METEOR_1_5):
    """METEOR over a corpus of tokenized captions.

    refs: list of N lists of reference token lists; cands: list of N candidate token lists.
    Every token list is first passed through meteor_normalize, as pycocoevalcap's jar does.
    Returns (corpus_score, per_image_scores): a float in [0, 1] from the summed statistics,
    and a list of N floats.
    """
    total = MeteorStats()
    per_image = []
    for image_refs, cand in zip(refs, cands):
        image_refs = [meteor_normalize(ref) for ref in image_refs]
        stats, score = best_reference_stats(meteor_normalize(cand), image_refs, params)
        total.add(stats)
        per_image.append(score)
    return total.score(params), per_image
