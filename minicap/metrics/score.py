"""One entry point for all caption metrics: score_corpus(refs, cands).

    refs  = {"img1": ["a dog runs on the grass", "a brown dog running"], ...}
    cands = {"img1": "a dog running on grass", ...}
    score_corpus(refs, cands)
    -> {"BLEU-1": 0.8.., "BLEU-2": ..., "BLEU-3": ..., "BLEU-4": ..., "METEOR": ..., "ROUGE-L": ..., "CIDEr": ...}

Every caption is tokenized with minicap.text.tokenize (the COCO tokenizer's rules), and the
images scored are the candidates' ids (references of other images are ignored; they would
change CIDEr-D's document frequencies, so they are left out rather than silently mixed in).
All scores are fractions in [0, 1] except CIDEr (0 to 10 in principle; about 1 for good
COCO models).
"""
from minicap.errors import MinicapError
from minicap.metrics.bleu import bleu
from minicap.metrics.cider import cider_d
from minicap.metrics.meteor import METEOR_1_5, meteor
from minicap.metrics.rouge import rouge_l
from minicap.text import tokenize

METRIC_NAMES = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")


def _describe(ids, limit=5):
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def tokenize_corpus(refs, cands, where="the input"):
    """Check and tokenize a corpus. Returns (ids, ref_tokens, cand_tokens) in the candidates' order.

    refs: dict id -> non-empty list of str; cands: dict id -> str.
    ids: list of the N ids; ref_tokens: N lists of token lists; cand_tokens: N token lists.
    Raises MinicapError (naming `where`) for anything malformed.
    """
    if not isinstance(refs, dict) or not isinstance(cands, dict):
        raise MinicapError(f"{where}: references and candidates must both be mappings from image id "
                           f"to captions, got {type(refs).__name__} and {type(cands).__name__}")
    if not cands:
        raise MinicapError(f"{where}: there are no candidate captions to score")
    missing = [i for i in cands if i not in refs]
    if missing:
        raise MinicapError(f"{where}: {len(missing)} candidate id(s) have no references: {_describe(missing)}; "
                           "every candidate needs at least one reference caption")
    ids, ref_tokens, cand_tokens = [], [], []
    for image_id, cand in cands.items():
        if not isinstance(cand, str):
            raise MinicapError(f"{where}: the candidate for {image_id!r} must be one string, "
                               f"got {type(cand).__name__}")
        image_refs = refs[image_id]
        if not isinstance(image_refs, (list, tuple)) or not all(isinstance(r, str) for r in image_refs):
            raise MinicapError(f"{where}: the references for {image_id!r} must be a list of strings")
        if not image_refs:
            raise MinicapError(f"{where}: image {image_id!r} has an empty reference list; "
                               "give it at least one reference caption or drop its candidate")
        tokenized = [tokenize(r) for r in image_refs]
        for k, (raw, tokens) in enumerate(zip(image_refs, tokenized)):
            if not tokens:
                raise MinicapError(f"{where}: reference {k} of image {image_id!r} has no words "
                                   f"after tokenization ({raw!r}); remove it")
        ids.append(image_id)
        ref_tokens.append(tokenized)
        cand_tokens.append(tokenize(cand))
    return ids, ref_tokens, cand_tokens


def score_tokenized(ref_tokens, cand_tokens, meteor_params=METEOR_1_5):
    """All metrics of an already tokenized corpus.

    ref_tokens: N lists of (non-empty) token lists; cand_tokens: N token lists.
    Returns (corpus, per_image): corpus is a dict with the METRIC_NAMES keys; per_image is a
    list of N such dicts (the per-image BLEU applies the brevity penalty per sentence, as the
    COCO code does).
    """
    bleu_corpus, bleu_images = bleu(ref_tokens, cand_tokens)
    meteor_corpus, meteor_images = meteor(ref_tokens, cand_tokens, meteor_params)
    rouge_corpus, rouge_images = rouge_l(ref_tokens, cand_tokens)
    cider_corpus, cider_images = cider_d(ref_tokens, cand_tokens)

    def as_dict(b, m, r, c):
        return dict(zip(METRIC_NAMES, [float(x) for x in (*b, m, r, c)]))

    corpus = as_dict(bleu_corpus, meteor_corpus, rouge_corpus, cider_corpus)
    per_image = [as_dict(*scores) for scores in zip(bleu_images, meteor_images, rouge_images, cider_images)]
    return corpus, per_image


def score_corpus_and_images(refs, cands, meteor_params=METEOR_1_5, where="the input"):
    """(corpus scores, {id: per-image scores}) of candidate captions against references.

    refs: dict id -> list of reference strings; cands: dict id -> candidate string.
    """
    ids, ref_tokens, cand_tokens = tokenize_corpus(refs, cands, where)
    corpus, per_image = score_tokenized(ref_tokens, cand_tokens, meteor_params)
    return corpus, dict(zip(ids, per_image))


def score_corpus(refs, cands, meteor_params=METEOR_1_5):
    """Corpus scores: a dict with exactly the keys BLEU-1..4, METEOR, ROUGE-L, CIDEr.

    refs: dict id -> list of reference strings; cands: dict id -> candidate string.
    """
    return score_corpus_and_images(refs, cands, meteor_params)[0]
