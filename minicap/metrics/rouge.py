"""ROUGE-L (Lin 2004) as the COCO caption evaluation computes it.

For a candidate c and references r_1..r_K, with LCS the longest common subsequence length:

    P = max_k LCS(c, r_k) / |c|        R = max_k LCS(c, r_k) / |r_k|
    ROUGE-L = (1 + beta^2) P R / (R + beta^2 P),  beta = 1.2    (0 when P or R is 0)

Precision and recall are maximised separately (possibly over different references). The corpus
score is the mean of the per-image scores.
"""
BETA = 1.2


def lcs_length(a, b):
    """Length of the longest common subsequence of two token lists (O(|a| |b|) dynamic programme).

    row[j] holds LCS(a[:i], b[:j]) for the current i.
    """
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0  # LCS(a[:i-1], b[:j-1])
        for j, y in enumerate(b, start=1):
            above = row[j]
            row[j] = diagonal + 1 if x == y else max(row[j], row[j - 1])
            diagonal = above
    return row[-1]


def rouge_l_sentence(cand, refs, beta=BETA):
    """ROUGE-L of one candidate token list against its reference token lists."""
    if not cand:
        return 0.0
    lcs = [lcs_length(ref, cand) for ref in refs]
    precision = max(l / len(cand) for l in lcs)
    recall = max(l / len(ref) for l, ref in zip(lcs, refs))
    if precision == 0 or recall == 0:
        return 0.0
    return (1 + beta ** 2) * precision * recall / (recall + beta ** 2 * precision)


def rouge_l(refs, cands, beta=BETA):
    """Corpus (mean) and per-image ROUGE-L. refs: N lists of token lists; cands: N token lists."""
    per_image = [rouge_l_sentence(cand, image_refs, beta) for image_refs, cand in zip(refs, cands)]
    corpus = sum(per_image) / len(per_image) if per_image else 0.0
    return corpus, per_image
