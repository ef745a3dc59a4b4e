"""Scoring a captioner on captioned MNIST from its OWN decoded captions (never teacher forcing).

    BLEU-1..4, METEOR, ROUGE-L, CIDEr   minicap.metrics against the references below
    caption_accuracy                    the caption names the right digit(s) in the right place(s)
                                        (minicap.data.caption_is_correct; also per 1 and 2 digits)
    attention_localisation              for every digit word generated, does the most attended
                                        location lie on a digit of that value? (fraction of words)

References. A two-digit image has two equally true captions ("X is on the left of Y" = "Y is on the
right of X") and the dataset picked one at random, so both are references: a model that picks the
other phrasing is not penalised for an arbitrary choice. One-digit images have one reference.

Localisation. The attention that predicted word t (alpha_t, computed from h_{t-1}) has its largest
weight at location l*; the word counts as localised when the centre of l*'s receptive field
(encoder.location_centres) lies inside the 28x28 placement box of a digit in the image whose value
is that word (either box when both digits have that value). A digit word naming a digit that is not
in the image counts as not localised.
"""
import numpy as np

from minicap.data import DIGIT_WORDS, TEMPLATE_NAMES, render_caption
from minicap.metrics import score_corpus
from minicap.metrics.bleu import bleu
from minicap.metrics.cider import cider_d
from minicap.metrics.score import tokenize_corpus

SWAPPED = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}


def references(data):
    """Every true caption of each image of a CaptionedMNIST: list of N lists of strings."""
    refs = []
    for i, caption in enumerate(data.captions):
        name = TEMPLATE_NAMES[data.template[i]]
        refs.append([caption] if name not in SWAPPED else
                    [caption, render_caption(SWAPPED[name], data.digits[i, 1], data.digits[i, 0])])
    return refs


def attention_localisation(words, alphas, data, image_size=60):
    """Fraction of generated digit words whose most attended location lies on that digit.

    words: N lists of generated words; alphas: N arrays (n_i, L), row t = attention of word t.
    Returns (fraction or None when no digit word was generated, number of digit words).
    """
    from minicap.models.encoder import location_centres
    centres = location_centres(image_size)
    hits = total = 0
    for n, (ws, alpha) in enumerate(zip(words, alphas)):
        for t, word in enumerate(ws):
            if word not in DIGIT_WORDS:
                continue
            total += 1
            r, c = centres[np.argmax(alpha[t])]
            value = DIGIT_WORDS.index(word)
            for k in range(2):
                top, left, h, w = data.boxes[n, k]
                if data.digits[n, k] == value and top <= r < top + h and left <= c < left + w:
                    hits += 1
                    break
    return (hits / total if total else None), total


# The corpus metrics a validation during training computes (what it logs and selects on); `evaluate` and
# the end of training compute them all. METEOR alone took ~6% of a default captioner run's time.
VALIDATION_METRICS = ("BLEU-4", "CIDEr")


def _bleu_cider(refs, cands):
    """BLEU-1..4 and CIDEr only (the same values score_corpus gives them)."""
    _, ref_tokens, cand_tokens = tokenize_corpus(refs, cands, "the captions")
    (b1, b2, b3, b4), _ = bleu(ref_tokens, cand_tokens)
    cider, _ = cider_d(ref_tokens, cand_tokens)
    return {"BLEU-1": float(b1), "BLEU-2": float(b2), "BLEU-3": float(b3), "BLEU-4": float(b4), "CIDEr": float(cider)}


def evaluate_captions(captions, data, alphas=None, all_metrics=True):
    """All scores of captions (N strings, one per image of data). alphas: N arrays (n_i, L) or None.
    all_metrics=False scores only BLEU-1..4 and CIDEr of the corpus metrics (VALIDATION_METRICS; no
    METEOR or ROUGE-L): the validations during training, which log and select on those."""
    refs = references(data)
    refs, cands = {i: r for i, r in enumerate(refs)}, {i: c for i, c in enumerate(captions)}
    scores = score_corpus(refs, cands) if all_metrics else _bleu_cider(refs, cands)
    correct = np.array([data.is_correct(i, c) for i, c in enumerate(captions)])
    two = data.n_digits == 2
    scores["caption_accuracy"] = float(correct.mean())
    scores["caption_accuracy_one_digit"] = float(correct[~two].mean()) if (~two).any() else None
    scores["caption_accuracy_two_digits"] = float(correct[two].mean()) if two.any() else None
    if alphas is None:
        scores["attention_localisation"] = None
    else:
        words = [c.split() for c in captions]
        scores["attention_localisation"], scores["digit_words"] = attention_localisation(words, alphas, data)
    scores["images"] = len(captions)
    return scores


def evaluate_model(params, config, vocab, features, data, beam_size=1, all_metrics=True):
    """Decode every image (greedy, or beam search with beam_size > 1) and score the captions
    (all_metrics: see evaluate_captions). Returns (scores dict, captions list, hypotheses)."""
    from minicap.models.captioner import generate
    hyps = generate(params, config, features, beam_size=beam_size)
    captions = [vocab.decode(h.tokens) for h in hyps]
    alphas = None if config.attention == "none" else [h.extras["alpha"] for h in hyps]
    return evaluate_captions(captions, data, alphas, all_metrics), captions, hyps
