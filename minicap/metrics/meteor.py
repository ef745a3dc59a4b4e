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
  chunk) are merged first, so the beam holds 40 genuinely different ones.
The README's metrics section reports the measured agreement.
"""
import re
from collections import namedtuple

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
    if token == "n't":
        return ["n", "'t"]
    if len(token) > 1 and token.startswith("'"):
        return ["'"] + _split_apostrophes(token[1:])
    if len(token) > 1 and token.endswith("'"):
        return _split_apostrophes(token[:-1]) + ["'"]
    k = token.find("'")
    if k > 0:
        return [token[:k], token[k:]]  # o'clock -> o 'clock (the apostrophe stays attached)
    return [token]


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


def _candidate_matches(test, ref):
    """All word pairs that may be aligned: by_ref[j] = [(i, module), ...]."""
    by_ref = [[] for _ in ref]
    test_stems = [porter_stem(w) for w in test]
    ref_stems = [porter_stem(w) for w in ref]
    identical = test == ref  # Java uses only the exact module then
    for j, (word, stem) in enumerate(zip(ref, ref_stems)):
        for i, (test_word, test_stem) in enumerate(zip(test, test_stems)):
            if test_word == word:
                by_ref[j].append((i, EXACT))
            elif not identical and test_stem == stem:
                by_ref[j].append((i, STEM))
    return by_ref


def align(test, ref):
    """Choose METEOR's alignment of two token lists (step 2 of the module docstring).

    test: list[str] (length T), ref: list[str] (length R).
    Returns (matches, chunks): matches is a list of (i, j, module) with test[i] aligned to ref[j],
    sorted by j; chunks is the number of runs of matches adjacent in both sentences.
    """
    by_ref = _candidate_matches(test, ref)
    test_coverage = [0] * len(test)
    for candidates in by_ref:
        for i, _ in candidates:
            test_coverage[i] += 1
    # A match that is the only candidate for both of its words is kept unconditionally.
    forced = [None] * len(ref)
    used = 0  # bitmask of test positions taken
    for j, candidates in enumerate(by_ref):
        if len(candidates) == 1:
            i, module = candidates[0]
            if test_coverage[i] == 1:
                forced[j] = (i, module)
                used |= 1 << i

    # Search over reference positions, left to right. A state is (test positions used, end of the
    # last match in test, or -1 when the last reference word was unmatched); its value is the
    # best (cost, matches) reaching it, cost = (-exact matches, chunks, -matches, distance).
    # States with the same key have the same futures, so only the cheaper one is kept (dynamic
    # programming); then only the BEAM_WIDTH cheapest states go on (beam search, as in Java).
    states = {(used, -1): ((0, 0, 0, 0), ())}
    for j, candidates in enumerate(by_ref):
        next_states = {}

        def offer(key, cost, matches):
            if key not in next_states or cost < next_states[key][0]:
                next_states[key] = (cost, matches)

        for (used, last_end), ((neg_exact, chunks, neg_matches, distance), matches) in states.items():
            options = [forced[j]] if forced[j] is not None else candidates
            for i, module in options:
                if forced[j] is None and used >> i & 1:
                    continue
                new_chunk = last_end != -1 and i != last_end  # a jump in test closes a chunk
                offer((used | 1 << i, i + 1),
                      (neg_exact - (module == EXACT), chunks + new_chunk, neg_matches - 1,
                       distance + abs(i - j)),
                      matches + ((i, j, module),))
            if forced[j] is None:  # leave ref[j] unmatched: closes the open chunk, if any
                offer((used, -1), (neg_exact, chunks + (last_end != -1), neg_matches, distance), matches)
        if len(next_states) > BEAM_WIDTH:
            next_states = dict(sorted(next_states.items(), key=lambda item: item[1][0])[:BEAM_WIDTH])
        states = next_states

    def final_cost(item):
        (used, last_end), (cost, matches) = item
        return (cost[0], cost[1] + (last_end != -1)) + cost[2:]

    (_, last_end), (cost, matches) = min(states.items(), key=final_cost)
    return list(matches), cost[1] + (last_end != -1)


def meteor_stats(test, ref):
    """The MeteorStats of one candidate token list against one reference token list."""
    matches, chunks = align(test, ref)
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
