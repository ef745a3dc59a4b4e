"""Caption tokenization, shared by the vocabulary and the metrics.

It follows what the COCO caption evaluation code does to every caption before scoring
(pycocoevalcap's PTBTokenizer): lower-case, split off punctuation and English contractions the
way the Penn Treebank tokenizer does, then drop punctuation tokens. So "A man's dog, running!"
becomes ["a", "man", "'s", "dog", "running"].
"""
import re

# Tokens the COCO code removes after PTB tokenization.
PUNCTUATION = frozenset(["''", "'", "``", "`", "-lrb-", "-rrb-", "-lcb-", "-rcb-",
                         ".", "?", "!", ",", ":", "-", "--", "...", ";"])

_CONTRACTIONS = re.compile(r"(?i)(\w)(n't|'s|'re|'ve|'ll|'d|'m)\b")
_PUNCT = re.compile(r"(\.\.\.|--|[.,!?;:()\[\]{}\"`]|(?<!\w)'(?!(?:s|re|ve|ll|d|m)\b)|'(?!\w)|(?<=\s)-+(?=\s)|^-+|-+$)")


def tokenize(caption):
    """Split one caption string into lower-case word tokens, punctuation removed.

    caption: str. Returns: list[str] (possibly empty).
    """
    if not isinstance(caption, str):
        raise TypeError(f"a caption must be a string, got {type(caption).__name__}: {caption!r}")
    text = caption.lower()
    text = _CONTRACTIONS.sub(r"\1 \2", text)
    text = _PUNCT.sub(r" \1 ", text)
    return [tok for tok in text.split() if tok not in PUNCTUATION and tok not in "()[]{}\""]
