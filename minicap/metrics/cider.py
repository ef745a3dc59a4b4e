"""CIDEr-D (Vedantam et al. 2015) as the COCO caption evaluation computes it.

Every caption becomes, for each n = 1..4, a TF-IDF vector over its n-grams:

    g_n(s)[w] = count_s(w) * (log N - log max(1, df(w)))

where N is the number of images evaluated and df(w) the number of images whose references
contain w. The document frequencies come from the references of the evaluated images only,
so the score of an image depends on the rest of the corpus (and a one-image corpus scores 0:
log N = 0). For candidate c and references r_1..r_K:

    sim_n(c, r) = sum_w min(g_n(c)[w], g_n(r)[w]) * g_n(r)[w] / (|g_n(c)| |g_n(r)|)     (clipping: the "-D")
                  * exp(-(|c| - |r|)^2 / (2 sigma^2)),  sigma = 6                          (length penalty)
    CIDEr-D(c) = 10 * mean_n ( (1/K) sum_k sim_n(c, r_k) )

The corpus score is the mean over images. (The COCO code measures |c| - |r| in bigram counts,
which equals the difference in words whenever both captions have a word; empty references are
rejected before scoring, and an empty candidate scores 0 either way.)
"""
import math
from collections import defaultdict

from minicap.metrics.bleu import ngram_counts

MAX_N = 4
SIGMA = 6.0


def _tfidf(counts, log_n_images, document_frequency, max_n):
    """Split n-gram counts into max_n TF-IDF vectors (dicts) and their Euclidean norms."""
    vectors = [dict() for _ in range(max_n)]
    for gram, count in counts.items():
        vectors[len(gram) - 1][gram] = count * (log_n_images - math.log(max(1.0, document_frequency[gram])))
    norms = [math.sqrt(sum(v * v for v in vec.values())) for vec in vectors]
    return vectors, norms


def cider_d(refs, cands, max_n=MAX_N, sigma=SIGMA):
    """Corpus (mean) and per-image CIDEr-D. refs: N lists of token lists; cands: N token lists."""
    # Two passes over the references: document frequencies first, then the scores. Each pass
    # counts a reference's n-grams again rather than keeping the counts of the whole corpus:
    # that costs a little time and saves the most memory of all the metrics (about 1 GB for a
    # 100,000-image corpus).
    document_frequency = defaultdict(float)
    for image_refs in refs:
        for gram in set(gram for ref in image_refs for gram in ngram_counts(ref, max_n)):
            document_frequency[gram] += 1
    log_n_images = math.log(float(len(refs))) if refs else 0.0

    per_image = []
    for cand, image_refs in zip(cands, refs):
        cand_vec, cand_norm = _tfidf(ngram_counts(cand, max_n), log_n_images, document_frequency, max_n)
        total = [0.0] * max_n
        for ref in image_refs:
            ref_vec, ref_norm = _tfidf(ngram_counts(ref, max_n), log_n_images, document_frequency, max_n)
            penalty = math.exp(-(len(cand) - len(ref)) ** 2 / (2 * sigma ** 2))
            for n in range(max_n):
                dot = sum(min(v, ref_vec[n].get(gram, 0.0)) * ref_vec[n].get(gram, 0.0)
                          for gram, v in cand_vec[n].items())
                if cand_norm[n] != 0 and ref_norm[n] != 0:
                    dot /= cand_norm[n] * ref_norm[n]
                total[n] += dot * penalty
        per_image.append(10.0 * sum(total) / max_n / len(image_refs))
    corpus = sum(per_image) / len(per_image) if per_image else 0.0
    return corpus, per_image
