# %% [markdown]
# # Lesson 6 — Decoding and evaluation: greedy vs beam search; BLEU, METEOR, ROUGE-L, CIDEr
#
# **You will learn**
# - why picking the most likely word at every step (greedy) does not find the most likely sentence,
#   and how beam search does better, on a table small enough to check by hand;
# - what beam search does to a real model: higher log-probability, and its bias towards short outputs,
#   which length normalisation corrects (measured on a character LSTM);
# - how BLEU, METEOR, ROUGE-L and CIDEr-D score a caption, each computed by hand on one example and
#   compared with `minicap.metrics`;
# - why human captions rank below many models on CIDEr (38th on the COCO leaderboard when this was
#   written): consensus-based scores reward the *typical* caption, and a human caption is one sample,
#   not the typical one.
#
# Decoding uses `minicap.decode` (the same code the captioner and `minicap sample` use), the model is
# `minicap.models.charrnn`, and the scores come from `minicap.metrics`. Set `MINICAP_FAST=1` to
# shrink the training loop.

# %%
import os
import time
from collections import Counter

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: BLAS threads cost more than they save
import matplotlib
if os.environ.get("MPLBACKEND") is None and not os.environ.get("DISPLAY"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import minicap
from minicap import decode
from minicap.experiments import train_quietly
from minicap.gradcheck import check_model
from minicap.metrics import METRIC_NAMES, score_corpus
from minicap.metrics.bleu import bleu
from minicap.metrics.cider import cider_d
from minicap.metrics.meteor import FUNCTION_WORDS, METEOR_1_5, meteor_stats
from minicap.metrics.rouge import lcs_length, rouge_l
from minicap.models import charrnn
from minicap.optim import Adam
from minicap.text import tokenize
from minicap.train import Run

FAST = os.environ.get("MINICAP_FAST") == "1"
FIGURES = os.environ.get("MINICAP_LESSON_FIGURES", str(minicap.DATA_DIR.parent / "lessons" / "figures"))
os.makedirs(FIGURES, exist_ok=True)
SEED = int(os.environ.get("MINICAP_LESSON_SEED", "0"))  # training seed; the text's ranges are over seeds 0, 1, 2

# %% [markdown]
# ## 1. The decoding problem
#
# A captioner (or any language model) gives $p(w_t \mid w_{<t}, \text{image})$ one word at a time.
# We want the most likely sentence,
#
# $$\hat w = \arg\max_{w_1..w_T} \sum_{t} \log p(w_t \mid w_{<t}),$$
#
# but there are $V^T$ sentences. **Greedy** decoding takes $\arg\max$ at each step. **Beam search**
# keeps the $k$ best partial sentences: at each step it extends each of them by every word, scores
# each extension by its total log-probability, and keeps the $k$ best. $k = 1$ is greedy.
#
# Greedy fails when the best first word leads only to mediocre continuations. A bigram table where
# that happens (rows: the previous word; columns: the next):

# %%
words = ["<START>", "<END>", "a", "the", "dog", "cat", "bird"]
START, END = 0, 1
table = np.full((len(words), len(words)), 1e-9)
table[START, [2, 3, END]] = [0.5, 0.4, 0.1]              # "a" is the best first word...
table[2, [4, 5, 6, END]] = [0.3, 0.3, 0.3, 0.1]           # ...but "a" is followed by three equal choices
table[3, [4, 5, END]] = [0.9, 0.05, 0.05]                 # while "the" is almost always "the dog"
table[[4, 5, 6], END] = 1.0
log_table = np.log(table / table.sum(axis=1, keepdims=True))


def bigram_step(tokens, state):
    """A decoding step: (B,) previous tokens -> (B, V) log-probabilities. The state is a dummy (B, 1)."""
    return log_table[tokens], state


state = np.zeros((1, 1))
g = decode.greedy(bigram_step, state, START, END, max_len=5)[0]
print(f"greedy : {' '.join(words[t] for t in g.tokens):<10} p = {np.exp(g.log_prob):.3f}")
for k in (2, 3):
    b = decode.beam_search(bigram_step, state, START, END, max_len=5, beam_size=k)[0][0]
    print(f"beam {k} : {' '.join(words[t] for t in b.tokens):<10} p = {np.exp(b.log_prob):.3f}")

# %% [markdown]
# By hand: greedy takes "a" (0.5), then one of three words at 0.3, then <END>: $0.5 \times 0.3 = 0.15$.
# Beam 2 keeps "a" (0.5) and "the" (0.4) after step 1; after step 2 its best is
# "the dog" at $0.4 \times 0.9 = 0.36$, more than twice greedy's sentence.
#
# ## 2. A real model: a character LSTM, its gradient checked
#
# To see beam search at work on a trained network we use the character-level LSTM language model of
# `minicap.models.charrnn` (Lesson 2's model, as a reusable module). Before training, check its
# whole-model gradient by finite differences, in float64 on a tiny instance:

# %%
text = (minicap.DATA_DIR / "tiny_text.txt").read_text(encoding="utf-8")
chars = sorted(set(text))
char_to_ix = {c: i for i, c in enumerate(chars)}
data = np.array([char_to_ix[c] for c in text])
V = len(chars)

r = np.random.default_rng(1)
tiny = charrnn.lstm_init(V, r, hidden_size=6, embed_size=5, dtype=np.float64)
tiny["b"] += r.standard_normal(tiny["b"].shape) * 0.1  # non-zero biases, so a bias bug cannot hide
tiny["b_out"] += r.standard_normal(V) * 0.1
batch = {"x": data[None, 100:107], "y": data[None, 101:108],
         "h0": r.standard_normal((1, 6)), "c0": r.standard_normal((1, 6))}
errors = check_model(charrnn.lstm_loss, tiny, batch, max_coords=None)  # every coordinate
for name, err in errors.items():
    print(f"d{name:<8} relative error {err:.1e}")
assert max(errors.values()) < 1e-6

# %% [markdown]
# Train it with the shared training loop (`minicap.train`): 16 streams through the text, chunks of
# 25 characters, Adam.

# %%
steps = 60 if FAST else 3000
rng = np.random.default_rng(SEED)
run = Run(kind="charrnn", config={}, params=charrnn.lstm_init(V, rng, dtype=np.float32),
          optimizer=Adam(lr=2e-3), rng=rng)
seconds = train_quietly(run, charrnn.make_train_step("lstm", data, seq_len=25, batch_size=16), steps,
                        clip=("value", 5.0))
print(f"{steps} steps in {seconds:.0f} s; loss per character (smoothed) by step:",
      ", ".join(f"{s}: {l:.2f}" for s, l in run.history))

# %% [markdown]
# ## 3. Greedy, beam, sample
#
# We decode the rest of a line after a prime, stopping at the newline (our <END>). Watch what each
# decoder returns, and its log-probability under the model.

# %%
step = charrnn.lstm_make_step(run.params)
NEWLINE = char_to_ix["\n"]
primes = ["MACBETH.\nIf it were done", "PROSPERO.\nOur revels now", "LADY MACBETH.\nCome, you spirits",
          "MIRANDA.\nO brave new", "BANQUO.\nThe earth hath", "ARIEL.\nFull fathom five",
          "MACBETH.\nTomorrow, and tomorrow", "CALIBAN.\nThis island's mine", "DUNCAN.\nThis castle hath",
          "GONZALO.\nHere is everything", "WITCHES.\nFair is foul", "FERDINAND.\nWhere should this"]


def after_prime(prime):
    """Run the model over the prime; returns the state and the last character (the first input)."""
    st = (np.zeros((1, run.params["Wh"].shape[0]), np.float32),) * 2
    for c in prime[:-1]:
        _, st = step(np.array([char_to_ix[c]]), st)
    return st, char_to_ix[prime[-1]]


def show(h):
    return repr("".join(chars[t] for t in h.tokens)) + ("" if h.finished else " ...")


st, first = after_prime(primes[0])
print(repr(primes[0]))
print(f"  greedy           {decode.greedy(step, st, first, NEWLINE, max_len=60)[0].log_prob:7.1f}  "
      f"{show(decode.greedy(step, st, first, NEWLINE, max_len=60)[0])}")
for k, alpha in ((3, 0.0), (10, 0.0), (10, 0.7)):
    h = decode.beam_search(step, st, first, NEWLINE, max_len=60, beam_size=k, length_norm=alpha)[0][0]
    print(f"  beam {k:<2} alpha {alpha}  {h.log_prob:7.1f}  {show(h)}")
h = decode.sample(step, st, first, NEWLINE, max_len=60, rng=np.random.default_rng(0))[0]
print(f"  sample           {h.log_prob:7.1f}  {show(h)}")

# %% [markdown]
# Now measured over all the primes: the mean log-probability of the decoded line and its length, for
# beam sizes 1 (greedy) to 20, ranking by the total log-probability ($\alpha = 0$) or by
# $\log p / \text{length}^{\alpha}$ with $\alpha = 0.7$.

# %%
beam_sizes = [1, 2, 3, 5, 10, 20]
results = {}
t0 = time.time()
for alpha in (0.0, 0.7):
    logps, lengths, finished = [], [], []
    for k in beam_sizes:
        hyps = [decode.beam_search(step, *after_prime(p), NEWLINE, max_len=60, beam_size=k,
                                   length_norm=alpha)[0][0] for p in primes]
        logps.append(np.mean([h.log_prob for h in hyps]))
        lengths.append(np.mean([len(h.tokens) for h in hyps]))
        finished.append(np.mean([h.finished for h in hyps]))
    results[alpha] = dict(logp=logps, length=lengths, finished=finished)
    for k, lp, n, f in zip(beam_sizes, logps, lengths, finished):
        print(f"alpha {alpha}  beam {k:>2}: mean log p {lp:7.2f}, mean length {n:5.1f} chars, {f:.0%} ended")
samples = [decode.sample(step, *after_prime(p), NEWLINE, max_len=60, rng=np.random.default_rng(i))[0]
           for i, p in enumerate(primes)]
print(f"samples (T = 1): mean log p {np.mean([h.log_prob for h in samples]):.2f}, "
      f"mean length {np.mean([len(h.tokens) for h in samples]):.1f}  ({time.time() - t0:.0f} s of decoding)")

# %% [markdown]
# Two effects, both visible above. A larger beam finds sequences of higher total log-probability:
# that is its job. But every extra token *adds* a negative log-probability, so with $\alpha = 0$ the
# search discovers that the most probable line is a very short one (often just the newline): the
# **short-output bias** of maximum-probability decoding. Dividing by $\text{length}^\alpha$ ranks by
# something closer to the per-token probability, and lines get their length back. Meanwhile greedy,
# never able to revise a choice, tends to fall into a loop and run to `max_len`.
#
# ## 4. The metrics, by hand on one example
#
# A small corpus in the COCO style: six images (imagine them), five human captions each. We score a
# candidate caption for the first image. Captions are tokenized first (`minicap.text.tokenize`:
# lower case, punctuation removed, as the COCO evaluation does).

# %%
corpus = {
    "dog": ["A dog runs across the grass with a frisbee in its mouth.", "A brown dog is running on the grass.",
            "A dog running in a field with a frisbee.", "A dog carries a frisbee across a grassy park.",
            "A happy spaniel trots through a meadow holding a red disc."],
    "kitchen": ["A kitchen with a stove and a refrigerator.", "A small kitchen with white cabinets and a stove.",
                "A kitchen with a refrigerator, a stove and a sink.", "An empty kitchen with wooden cabinets.",
                "A tidy galley kitchen with appliances along one wall."],
    "surf": ["A man riding a wave on top of a surfboard.", "A surfer riding a large wave in the ocean.",
             "A man on a surfboard riding a wave.", "A person surfing on a wave in the ocean.",
             "A wetsuited surfer carves down the face of a breaking swell."],
    "pizza": ["A pizza with cheese and pepperoni on a table.", "A large pizza sitting on top of a wooden table.",
              "A pepperoni pizza on a plate on a table.", "A pizza on a table next to a glass of beer.",
              "A freshly baked pie topped with salami rests beside a pint."],
    "bus": ["A red double decker bus driving down a street.", "A double decker bus on a city street.",
            "A red bus driving down the road.", "A red double decker bus parked on the side of a street.",
            "A crimson London Routemaster waits at a stop near shops."],
    "giraffe": ["A giraffe standing next to a tree in a field.", "A tall giraffe standing in a grassy field.",
                "A giraffe eating leaves from a tree.", "A giraffe standing in the grass near trees.",
                "A lone giraffe browses acacia branches on the savanna."],
}
# Captions written the way a maximum-likelihood captioner with beam search tends to write:
# the most common words in the most common order.
typical = {"dog": "A dog running on the grass with a frisbee.", "kitchen": "A kitchen with a stove and a sink.",
           "surf": "A man riding a wave on a surfboard.", "pizza": "A pizza on top of a wooden table.",
           "bus": "A red double decker bus on a street.", "giraffe": "A giraffe standing in a field next to a tree."}
refs = [tokenize(c) for c in corpus["dog"]]
cand = tokenize(typical["dog"])
print("candidate :", " ".join(cand))
for i, ref in enumerate(refs):
    print(f"reference {i}:", " ".join(ref))

# %% [markdown]
# ### BLEU: clipped n-gram precision, with a brevity penalty
#
# For each $n$, count the candidate's n-grams, *clip* each count at the most times that n-gram occurs
# in any single reference (so "a a a a" cannot score by repeating a common word), and divide by the
# number of candidate n-grams:
#
# $$p_n = \frac{\sum_g \min(\text{count}_c(g), \max_k \text{count}_{r_k}(g))}{\sum_g \text{count}_c(g)},
#   \qquad \text{BLEU-}N = \text{BP}\,\Big(\prod_{n=1}^N p_n\Big)^{1/N},
#   \qquad \text{BP} = \min(1, e^{1 - r/c}),$$
#
# with $c$ the candidate's length and $r$ the reference length closest to it.


# %%
def ngrams(tokens, n):
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


precisions = []
for n in range(1, 5):
    max_ref = Counter()
    for ref in refs:
        for gram, count in ngrams(ref, n).items():
            max_ref[gram] = max(max_ref[gram], count)
    cand_grams = ngrams(cand, n)
    clipped = sum(min(count, max_ref[gram]) for gram, count in cand_grams.items())
    precisions.append(clipped / sum(cand_grams.values()))
    missing = [" ".join(g) for g in cand_grams if max_ref[g] == 0]
    print(f"p_{n} = {clipped}/{sum(cand_grams.values())} = {precisions[-1]:.3f}   not in any reference: {missing}")
r_len = min((abs(len(ref) - len(cand)), len(ref)) for ref in refs)[1]
bp = min(1.0, np.exp(1 - r_len / len(cand)))
bleu_by_hand = [bp * np.prod(precisions[:n]) ** (1 / n) for n in range(1, 5)]
bleu_minicap = bleu([refs], [cand])[0]
print(f"c = {len(cand)}, closest r = {r_len}, BP = {bp:.3f}")
print("BLEU-1..4 by hand   :", np.round(bleu_by_hand, 4))
print("BLEU-1..4 (minicap) :", np.round(bleu_minicap, 4))
assert np.allclose(bleu_by_hand, bleu_minicap, atol=1e-6)

# %% [markdown]
# ### ROUGE-L: the longest common subsequence
#
# A subsequence keeps the order but may skip words. With $\text{LCS}_k$ the longest one shared with
# reference $k$: $P = \max_k \text{LCS}_k / |c|$, $R = \max_k \text{LCS}_k / |r_k|$, and
# $\text{ROUGE-L} = \frac{(1+\beta^2) P R}{R + \beta^2 P}$ with $\beta = 1.2$ (recall weighs more).
# The LCS table for reference 1, filled row by row ($L[i,j] = L[i-1,j-1] + 1$ on a match, else
# $\max(L[i-1,j], L[i,j-1])$):

# %%
ref = refs[1]
L = np.zeros((len(cand) + 1, len(ref) + 1), dtype=int)
for i, cw in enumerate(cand, 1):
    for j, rw in enumerate(ref, 1):
        L[i, j] = L[i - 1, j - 1] + 1 if cw == rw else max(L[i - 1, j], L[i, j - 1])
print("          " + " ".join(f"{w[:5]:>5}" for w in ref))
for i, cw in enumerate(cand, 1):
    print(f"{cw[:9]:>9} " + " ".join(f"{v:>5}" for v in L[i, 1:]))
lcs = [lcs_length(rf, cand) for rf in refs]
assert lcs[1] == L[-1, -1]
P, R = max(l / len(cand) for l in lcs), max(l / len(rf) for l, rf in zip(lcs, refs))
rouge_by_hand = (1 + 1.2 ** 2) * P * R / (R + 1.2 ** 2 * P)
print(f"LCS with each reference: {lcs};  P = {P:.3f}, R = {R:.3f}")
print(f"ROUGE-L by hand {rouge_by_hand:.4f}   minicap {rouge_l([refs], [cand])[0]:.4f}")
assert np.isclose(rouge_by_hand, rouge_l([refs], [cand])[0])

# %% [markdown]
# ### METEOR: an alignment, a weighted F-mean, a fragmentation penalty
#
# METEOR aligns candidate and reference words one to one (exact matches, then Porter stems; the
# Java version also uses synonyms, see `minicap.metrics.meteor`), choosing the alignment with the
# fewest **chunks** (runs of matches adjacent in both sentences). METEOR 1.5 weighs content words by
# $\delta = 0.75$ and function words ("a", "the", "on", ...) by $1 - \delta$:
#
# $$P = \frac{\text{weighted matched candidate words}}{\text{weighted candidate words}},\quad
#   R = \frac{\text{weighted matched reference words}}{\text{weighted reference words}},\quad
#   F = \frac{P R}{\alpha P + (1-\alpha) R},$$
# $$\text{Pen} = \gamma \left(\frac{\text{chunks}}{\text{matches}}\right)^\beta, \qquad
#   \text{METEOR} = F\,(1 - \text{Pen}), \qquad \alpha = 0.85,\ \beta = 0.2,\ \gamma = 0.6 .$$
#
# Against reference 1 ("a brown dog is running on the grass") the alignment is clear: "a", "dog",
# "running on the grass" match, in three chunks (the candidate has "a dog" together, the reference
# has "brown" in between). We write the matches down as (candidate position, reference position):

# %%
matches = [(0, 0), (1, 2), (2, 4), (3, 5), (4, 6), (5, 7)]
print("matched:", [(cand[i], ref[j]) for i, j in matches])
chunks = 1 + sum(1 for (i0, j0), (i1, j1) in zip(matches, matches[1:]) if not (i1 == i0 + 1 and j1 == j0 + 1))
alpha, beta, gamma, delta = METEOR_1_5.alpha, METEOR_1_5.beta, METEOR_1_5.gamma, METEOR_1_5.delta


def weight(w):
    return 1 - delta if w in FUNCTION_WORDS else delta


P = sum(weight(cand[i]) for i, _ in matches) / sum(weight(w) for w in cand)
R = sum(weight(ref[j]) for _, j in matches) / sum(weight(w) for w in ref)
F = P * R / (alpha * P + (1 - alpha) * R)
pen = gamma * (chunks / len(matches)) ** beta
meteor_by_hand = F * (1 - pen)
meteor_minicap = meteor_stats(cand, ref).score(METEOR_1_5)
print(f"P = {P:.4f}  R = {R:.4f}  F = {F:.4f}  chunks = {chunks}  Pen = {pen:.4f}")
print(f"METEOR against reference 1 by hand {meteor_by_hand:.4f}   minicap {meteor_minicap:.4f}")
assert np.isclose(meteor_by_hand, meteor_minicap)
best = max(meteor_stats(cand, rf).score(METEOR_1_5) for rf in refs)
print(f"METEOR takes the best reference: {best:.4f}")

# %% [markdown]
# Note how hard the penalty bites: with $\beta = 0.2$, three chunks for six matches costs
# $0.6 \times 0.5^{0.2} \approx 52\%$ of the score.
#
# ### CIDEr-D: TF-IDF n-grams, cosine similarity, averaged over the references
#
# CIDEr weighs each n-gram by how *informative* it is in the corpus: its term frequency in the caption
# times its inverse document frequency over the images,
#
# $$g_n(s)[w] = \text{count}_s(w)\,\big(\log N_\text{images} - \log \max(1, \text{df}(w))\big),$$
#
# where $\text{df}(w)$ counts the images whose references contain $w$ ("a" is everywhere: weight 0;
# "frisbee" is in one image: weight $\log 6$). Then, per $n$, a clipped cosine with each reference,
# a Gaussian length penalty ($\sigma = 6$), the mean over references and over $n = 1..4$, times 10:
#
# $$\text{CIDEr-D}(c) = \frac{10}{4}\sum_{n=1}^{4}\frac{1}{K}\sum_{k=1}^{K}
#   \frac{\sum_w \min(g_n(c)[w], g_n(r_k)[w])\, g_n(r_k)[w]}{\lVert g_n(c)\rVert\,\lVert g_n(r_k)\rVert}
#   \, e^{-(|c| - |r_k|)^2 / 2\sigma^2}.$$

# %%
images = list(corpus)
all_refs = [[tokenize(c) for c in corpus[name]] for name in images]
df = Counter(g for image_refs in all_refs for g in {g for rf in image_refs for n in range(1, 5)
                                                    for g in ngrams(rf, n)})
log_n = np.log(len(images))


def tfidf(tokens, n):
    return {g: c * (log_n - np.log(max(1.0, df[g]))) for g, c in ngrams(tokens, n).items()}


print("unigram weights of the candidate:",
      {" ".join(g): round(float(v), 2) for g, v in tfidf(cand, 1).items()})
per_n = []
for n in range(1, 5):
    gc = tfidf(cand, n)
    sims = []
    for rf in refs:
        gr = tfidf(rf, n)
        dot = sum(min(v, gr.get(g, 0.0)) * gr.get(g, 0.0) for g, v in gc.items())
        norms = np.sqrt(sum(v * v for v in gc.values())) * np.sqrt(sum(v * v for v in gr.values()))
        sims.append(dot / norms * np.exp(-(len(cand) - len(rf)) ** 2 / (2 * 6.0 ** 2)) if norms else 0.0)
    per_n.append(np.mean(sims))
    print(f"n = {n}: similarity to each reference {np.round(sims, 3)}")
cider_by_hand = 10 * np.mean(per_n)
cider_minicap = cider_d(all_refs, [tokenize(typical[name]) for name in images])[1][0]
print(f"CIDEr-D by hand {cider_by_hand:.4f}   minicap {cider_minicap:.4f}")
assert np.isclose(cider_by_hand, cider_minicap)

# %% [markdown]
# ## 5. Why humans rank 38th on CIDEr
#
# On the COCO captioning leaderboard the "Human" entry (human captions scored against the other
# humans' captions) sits far down the CIDEr ranking, below dozens of models, although in the 2015
# challenge people judged the human captions better than any model's. Nothing is broken: CIDEr (and
# BLEU, ROUGE-L, to a lesser degree METEOR) measures **consensus**, the agreement of a caption with
# what the *other* annotators wrote, weighted towards the n-grams they share.
#
# Think of the five human captions of an image as five samples from a distribution of
# descriptions. A caption's expected similarity to the others is highest at the *centre* of that
# distribution, and a single sample is, on average, farther from the other samples than the centre is.
# A captioner trained by maximum likelihood and decoded by beam search outputs (close to) the mode
# of what it learned, the centre, in the corpus' most common phrasing. A human writes one sample,
# sometimes with a precise, rare word ("spaniel", "Routemaster") that no other annotator used,
# which earns nothing. We measure it on our corpus: each human caption is held out in turn and
# scored against the other four, and so is the typical caption (against the same four).

# %%
scores = {"human": [], "typical": []}
per_caption = []
for k in range(5):
    held_out_refs = {name: [c for j, c in enumerate(corpus[name]) if j != k] for name in images}
    scores["human"].append(score_corpus(held_out_refs, {name: corpus[name][k] for name in images}))
    scores["typical"].append(score_corpus(held_out_refs, typical))
    per_image = cider_d([[tokenize(c) for c in held_out_refs[name]] for name in images],
                        [tokenize(corpus[name][k]) for name in images])[1]
    per_caption += [(value, k, name) for value, name in zip(per_image, images)]
mean = {who: {m: np.mean([s[m] for s in runs]) for m in METRIC_NAMES} for who, runs in scores.items()}
print(f"{'':>8} " + " ".join(f"{m:>8}" for m in METRIC_NAMES))
for who in mean:
    print(f"{who:>8} " + " ".join(f"{mean[who][m]:8.3f}" for m in METRIC_NAMES))
per_caption.sort(reverse=True)
print("human captions by CIDEr-D against the other four (best, worst):")
for value, k, name in per_caption[:3] + per_caption[-3:]:
    print(f"  {value:5.2f}  {corpus[name][k]}")

# %% [markdown]
# ## 6. The picture

# %%
fig, axes = plt.subplots(2, 2, figsize=(12, 8))
for alpha, style in ((0.0, "o-"), (0.7, "s--")):
    axes[0, 0].plot(beam_sizes, results[alpha]["logp"], style, label=f"alpha = {alpha}")
    axes[0, 1].plot(beam_sizes, results[alpha]["length"], style, label=f"alpha = {alpha}")
axes[0, 0].set(ylabel="mean log p of the decoded line", title="beam search finds more probable lines")
axes[0, 1].set(ylabel="mean length (characters)", title="... and, ranked by total log p, shorter ones")
for ax in axes[0]:
    ax.set(xscale="log", xlabel="beam size (1 = greedy)")
    ax.set_xticks(beam_sizes, [str(k) for k in beam_sizes])
    ax.legend(fontsize=8)
x_pos = np.arange(len(METRIC_NAMES))
for i, who in enumerate(mean):
    axes[1, 0].bar(x_pos + (i - 0.5) * 0.38, [mean[who][m] for m in METRIC_NAMES], 0.38,
                   label=f"{who} caption")
axes[1, 0].set_xticks(x_pos, METRIC_NAMES, fontsize=8)
axes[1, 0].set(title="each scored against the other annotators", ylabel="score (CIDEr-D on its own scale)")
axes[1, 0].legend(fontsize=8)
values = [v for v, _, _ in per_caption]
colors = ["tab:red" if k == 4 else "tab:blue" for _, k, _ in per_caption]
axes[1, 1].bar(np.arange(len(values)), values, color=colors)
axes[1, 1].bar([0], [0], color="tab:red", label="the 5th caption of each image (precise, rare words)")
axes[1, 1].set(xlabel="the 30 human captions, sorted", ylabel="CIDEr-D against the other four",
               title="consensus: a human caption is one sample")
axes[1, 1].legend(fontsize=8)
plt.tight_layout()
plt.savefig(os.path.join(FIGURES, "06_decoding_and_metrics.png"), dpi=100)
print("figure:", os.path.join(FIGURES, "06_decoding_and_metrics.png"))

# %% [markdown]
# **What you should see.** Top left: the mean log-probability rises with the beam size (from -57 to
# -75 for greedy to -5 to -8 at beam 20, over training seeds 0, 1, 2). Top right: with $\alpha = 0$
# the lines also get much shorter (the short-output bias: 3-6 characters on average at beam 20,
# against 15-19 for samples from the model), while with $\alpha = 0.7$ they shrink less (10-15
# characters at beam 20), at some cost in total log-probability. Greedy lines never ended in any run:
# greedy loops until `max_len`. Bottom left: on every metric the typical caption outscores the human
# captions it is compared with, by the widest factors where longer phrases count: BLEU-4 (3.6
# times), BLEU-3 and CIDEr-D (2.5-2.6 times). This part involves no training: it is the same in every
# run. Bottom right: the human captions that reuse the corpus' common phrasing score
# high, and each image's fifth caption (red), accurate but in words no other annotator chose, lands
# at the bottom (near zero unless it happens to share a phrase such as "kitchen with"). That is why
# a "Human" row can sit 38th on a CIDEr leaderboard: the metric asks "how typical is this caption?",
# and people judge "how good is it?". Use these scores to compare models trained and decoded
# the same way, and look at the captions.
