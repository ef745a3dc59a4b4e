"""ROUGE-L (Lin 2004) as the COCO caption evaluation computes it.

For a candidate c and references r_1..r_K, with LCS the longest common subsequence length:

    P = max_k LCS(c, r_k) / |c|        R = max_k LCS(c, r_k) / |r_k|
    ROUGE-L = (1 + beta^2) P R / (R + beta^2 P),  beta = 1.2    (0 when P or R is 0)

Precision and recall are maximised separately (possibly over different references). The corpus
score is the mean of the per-image scores.
"""
BETA = 1.2


def lcs_length_table(a, b):
    """Length of the longest common subsequence of two token lists: the textbook dynamic programme.

    row[j] holds LCS(a[:i], b[:j]) for the current i:
        LCS(a[:i], b[:j]) = LCS(a[:i-1], b[:j-1]) + 1                      if a[i-1] == b[j-1]
                          = max(LCS(a[:i-1], b[:j]), LCS(a[:i], b[:j-1]))  otherwise
    O(|a| |b|) steps of Python: 4 million for two 2,000-word captions, seconds. lcs_length below
    computes the same number with machine-word operations; this version is the definition it is
    tested against.
    """
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0  # LCS(a[:i-1], b[:j-1])
        for j, y in enumerate(b, start=1):
            above = row[j]
            row[j] = diagonal + 1 if x == y else max(row[j], row[j - 1])
            diagonal = above
    return row[-1]


def lcs_length(a, b):
    """Length of the longest common subsequence of two token lists, bit-parallel.

    The same number as lcs_length_table, computed a whole row of the table at a time (Allison &
    Dix 1986; this form: Hyyro 2004, "Bit-parallel LCS-length computation revisited"). One bit
    per word of `a`; along a row the table grows by 0 or 1 per step, and V has a 0 bit where it
    grows. For each word y of b, with M the bits of the positions where a holds y:
        U = V & M;  V = (V + U) | (V - U)     (the carry of V + U moves each match to the right)
    and at the end LCS = number of 0 bits of V. Python integers are bit vectors of any length,
    so a row costs |a| / 30 machine operations instead of |a| Python steps.
    """
    mask = (1 << len(a)) - 1
    positions = {}  # word -> bits of its positions in a
    for i, word in enumerate(a):
        positions[word] = positions.get(word, 0) | 1 << i
    v = mask
    for word in b:
        u = v & positions.get(word, 0)
        v = ((v + u) | (v - u)) & mask
    return len(a) - v.bit_count()


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
