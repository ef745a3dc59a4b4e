"""BLEU-1..4 (Papineni et al. 2002) exactly as the COCO caption evaluation computes it.

For a candidate c with references r_1..r_K (token lists):

    correct_n = sum over the n-grams g of c of min(count_c(g), max_k count_{r_k}(g))   (clipping)
    guess_n   = max(0, |c| - n + 1)                                       (n-grams in c)
    r         = the reference length closest to |c| (ties -> the shorter one)

Corpus BLEU-N sums correct_n, guess_n, |c| and r over all images FIRST (it is not a mean of
sentence scores), then

    p_n    = (correct_n + 1e-15) / (guess_n + 1e-9)        (no smoothing: p_n ~ 1e-15 / guess_n when nothing
                                                             matches, but 1e-6 when the candidate has no n-grams)
    BLEU-N = BP * (p_1 * ... * p_N) ** (1 / N)
    BP     = exp(1 - r / c) if c < r else 1                 (with r / c computed as
                                                             (r + 1e-9) / (c + 1e-15), as the COCO code does)

The per-image BLEU-N applies the same formula to one image's counts.
"""
import math
from collections import Counter

MAX_N = 4
TINY = 1e-15   # added to the numerator of p_n (the COCO code's "tiny")
SMALL = 1e-9   # added to the denominator of p_n and to r (its "small")


def ngram_counts(tokens, max_n=MAX_N):
    """Counter of every n-gram (as a tuple) of `tokens`, n = 1..max_n."""
    counts = Counter()
    for n in range(1, max_n + 1):
        for i in range(len(tokens) - n + 1):
            counts[tuple(tokens[i:i + n])] += 1
    return counts


def sentence_counts(cand, refs, max_n=MAX_N):
    """BLEU statistics of one candidate: (correct[n], guess[n], cand_len, closest_ref_len)."""
    max_ref_counts = Counter()
    for ref in refs:
        for gram, count in ngram_counts(ref, max_n).items():
            max_ref_counts[gram] = max(max_ref_counts[gram], count)
    correct = [0] * max_n
    for gram, count in ngram_counts(cand, max_n).items():
        correct[len(gram) - 1] += min(count, max_ref_counts[gram])
    guess = [max(0, len(cand) - n + 1) for n in range(1, max_n + 1)]
    closest_ref_len = min((abs(len(ref) - len(cand)), len(ref)) for ref in refs)[1]
    return correct, guess, len(cand), closest_ref_len


def bleu_from_counts(correct, guess, cand_len, ref_len):
    """[BLEU-1, ..., BLEU-N] from (summed) counts, with the brevity penalty."""
    scores = []
    product = 1.0
    for n in range(len(correct)):
        product *= (correct[n] + TINY) / (guess[n] + SMALL)
        scores.append(product ** (1.0 / (n + 1)))
    ratio = (cand_len + TINY) / (ref_len + SMALL)
    if ratio < 1:  # candidate shorter than the reference: brevity penalty
        scores = [s * math.exp(1 - 1 / ratio) for s in scores]
    return scores


def bleu(refs, cands, max_n=MAX_N):
    """Corpus and per-image BLEU-1..max_n.

    refs: list of N lists of reference token lists (each non-empty list); cands: list of N
    candidate token lists. Returns (corpus, per_image): corpus is a list of max_n floats,
    per_image a list of N lists of max_n floats.
    """
    total_correct, total_guess = [0] * max_n, [0] * max_n
    total_cand_len = total_ref_len = 0
    per_image = []
    for image_refs, cand in zip(refs, cands):
        correct, guess, cand_len, ref_len = sentence_counts(cand, image_refs, max_n)
        per_image.append(bleu_from_counts(correct, guess, cand_len, ref_len))
        total_correct = [a + b for a, b in zip(total_correct, correct)]
        total_guess = [a + b for a, b in zip(total_guess, guess)]
        total_cand_len += cand_len
        total_ref_len += ref_len
    return bleu_from_counts(total_correct, total_guess, total_cand_len, total_ref_len), per_image
