"""Caption metrics written from scratch to agree with the COCO caption evaluation (pycocoevalcap).

    bleu       BLEU-1..4, corpus counts, closest reference length, brevity penalty
    meteor     METEOR with exact and Porter-stem matching (no synonyms), METEOR 1.5 parameters
    rouge      ROUGE-L (LCS F-measure, beta = 1.2)
    cider      CIDEr-D (TF-IDF n-grams, clipping, Gaussian length penalty, x10)
    porter     the Porter stemmer used by METEOR
    score      score_corpus(refs, cands): everything at once, from raw strings
    cli        `minicap score FILE.json`
    coco_compare  measures agreement with pycocoevalcap when it is installed (never required)
"""
from minicap.metrics.score import (METRIC_NAMES, score_corpus, score_corpus_and_images,
                                   score_tokenized, tokenize_corpus)

__all__ = ["METRIC_NAMES", "score_corpus", "score_corpus_and_images", "score_tokenized",
           "tokenize_corpus"]
