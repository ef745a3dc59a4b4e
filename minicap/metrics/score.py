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

Limits (each refused with one line that says what to do, never a traceback):
    a caption has at most MAX_CAPTION_CHARS characters and MAX_CAPTION_WORDS words (as METEOR
    splits them); every metric's work is then bounded per caption (METEOR's alignment search
    is linear in the words, see minicap.metrics.meteor);
    read_score_file reads files of at most MAX_SCORE_FILE_BYTES, checked before reading.
"""
import json
import math
import os
import stat
import sys

from minicap.errors import MinicapError
from minicap.metrics.bleu import bleu
from minicap.metrics.cider import cider_d
from minicap.metrics.meteor import METEOR_1_5, meteor, meteor_normalize
from minicap.metrics.rouge import rouge_l
from minicap.text import tokenize

METRIC_NAMES = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")

# A long paragraph has a few hundred words; these caps are far above any caption and keep the
# time of one image bounded: a 9,500-word candidate with 5 references of 9,500 words took 31 s
# (2,000 words: 5 s), nearly all of it METEOR. The character cap is checked first, so that a
# huge string is refused before it is tokenized.
MAX_CAPTION_WORDS = 10_000
MAX_CAPTION_CHARS = 100_000
# A score file is parsed whole and its tokens are kept for CIDEr-D's document frequencies:
# `minicap score` peaked at 250 MB of memory on a 23 MiB file (100,000 images, 1 min 57 s), so
# 256 MiB needs about 3 GB and half an hour. COCO's 123,287 images with 5 references and a
# candidate each make about 45 MB.
MAX_SCORE_FILE_BYTES = 256 * 2 ** 20


def _short_repr(value, limit=60):
    """repr(value) cut to `limit` characters: messages stay one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _describe(ids, limit=5):
    shown = ", ".join(_short_repr(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _check_length(caption, what, where):
    """Refuse a caption over MAX_CAPTION_CHARS characters (before tokenizing it)."""
    if len(caption) > MAX_CAPTION_CHARS:
        raise MinicapError(f"{where}: {what} has {len(caption):,} characters; minicap scores captions of "
                           f"at most {MAX_CAPTION_CHARS:,} characters and {MAX_CAPTION_WORDS:,} words: "
                           "shorten it or split it into several images")


def _words(caption, what, where):
    """tokenize(caption), refused if METEOR would see more than MAX_CAPTION_WORDS words."""
    tokens = tokenize(caption)
    # METEOR splits tokens further ("t-shirt" -> "t shirt"), never into more words than the
    # caption has characters: only captions longer than the cap need counting again.
    n_words = len(meteor_normalize(tokens)) if len(caption) > MAX_CAPTION_WORDS else len(tokens)
    if n_words > MAX_CAPTION_WORDS:
        raise MinicapError(f"{where}: {what} has {n_words:,} words; minicap scores captions of at most "
                           f"{MAX_CAPTION_WORDS:,} words: shorten it or split it into several images")
    # One string object per distinct word: a corpus's tokens then take about a quarter of the
    # memory (each token found by the tokenizer is otherwise a new string).
    return [sys.intern(token) for token in tokens]


def tokenize_corpus(refs, cands, where="the input"):
    """Check and tokenize a corpus. Returns (ids, ref_tokens, cand_tokens) in the candidates' order.

    refs: dict id -> non-empty list of str; cands: dict id -> str.
    ids: list of the N ids; ref_tokens: N lists of token lists; cand_tokens: N token lists.
    Raises MinicapError (naming `where`) for anything malformed, or a caption over the caps.
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
        image = _short_repr(image_id)
        if not isinstance(cand, str):
            raise MinicapError(f"{where}: the candidate for {image} must be one string, "
                               f"got {type(cand).__name__}")
        image_refs = refs[image_id]
        if not isinstance(image_refs, (list, tuple)) or not all(isinstance(r, str) for r in image_refs):
            raise MinicapError(f"{where}: the references for {image} must be a list of strings")
        if not image_refs:
            raise MinicapError(f"{where}: image {image} has an empty reference list; "
                               "give it at least one reference caption or drop its candidate")
        _check_length(cand, f"the candidate for {image}", where)
        for k, raw in enumerate(image_refs):
            _check_length(raw, f"reference {k} of image {image}", where)
        tokenized = [_words(raw, f"reference {k} of image {image}", where) for k, raw in enumerate(image_refs)]
        for k, (raw, tokens) in enumerate(zip(image_refs, tokenized)):
            if not tokens:
                raise MinicapError(f"{where}: reference {k} of image {image} has no words "
                                   f"after tokenization ({_short_repr(raw)}); remove it")
        ids.append(image_id)
        ref_tokens.append(tokenized)
        cand_tokens.append(_words(cand, f"the candidate for {image}", where))
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


# ---------------------------------------------------------------------------------------------
# Score files: {"refs": {id: [caption, ...]}, "cands": {id: caption}} (the `minicap score` input)
# ---------------------------------------------------------------------------------------------
class _Refused(Exception):
    """Raised inside the JSON parser's hooks; read_score_file turns it into a MinicapError."""


def _refuse_constant(name):
    raise _Refused(f"it contains {name}, which is not JSON (and never a caption); remove it")


def _parse_int(digits):
    # int() refuses strings of more than 4,300 digits with a ValueError (sys.int_info); say so first.
    if len(digits.lstrip("-")) > 100:
        raise _Refused(f"it contains a number with {len(digits.lstrip('-')):,} digits; "
                       "a score file holds captions: remove it")
    return int(digits)


def _parse_float(text):
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses to inf
        raise _Refused(f"it contains the number {_short_repr(text)}, too large for a float; remove it")
    return value


def _unique_keys(pairs):
    """A JSON object as a dict, refusing repeated keys (json.loads would keep the last silently)."""
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise _Refused(f"the key {_short_repr(key)} appears twice in one object; give every image id once")
        seen.add(key)
    return dict(pairs)


def read_score_file(path, max_bytes=None):
    """Read and check a score file. Returns (refs, cands) as dicts; raises MinicapError naming the file.

    The size is checked before anything is read (a file that is not a regular file, such as a
    pipe, is read up to max_bytes + 1 bytes), and every way JSON can be unusable gets its own
    message: not UTF-8, malformed, nested too deep, NaN or Infinity, numbers too long for int(),
    repeated keys, the wrong shape. The captions themselves are checked by tokenize_corpus.
    max_bytes: the size cap, MAX_SCORE_FILE_BYTES when None (read at call time, so tests can lower it).
    """
    if max_bytes is None:
        max_bytes = MAX_SCORE_FILE_BYTES
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise MinicapError(f"{path}: is a directory; give a JSON file with \"refs\" and \"cands\"")
        if stat.S_ISREG(info.st_mode) and info.st_size > max_bytes:
            raise MinicapError(f"{path}: the file has {_size(info.st_size)}; minicap score reads files of "
                               f"at most {_size(max_bytes)}: split the images over several files")
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise MinicapError(f"{path}: no such file; give a JSON file with \"refs\" and \"cands\"") from None
    except OSError as err:
        raise MinicapError(f"{path}: cannot read it ({err.strerror or err})") from None
    if len(data) > max_bytes:
        raise MinicapError(f"{path}: more than {_size(max_bytes)}; minicap score reads files of at most "
                           "that size: split the images over several files")
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark, which some editors write, is allowed
    except UnicodeDecodeError as err:
        raise MinicapError(f"{path}: not UTF-8 text (byte {data[err.start]:#04x} at offset {err.start:,}); "
                           "save it as UTF-8") from None
    del data
    try:
        obj = json.loads(text, parse_constant=_refuse_constant, parse_int=_parse_int,
                         parse_float=_parse_float, object_pairs_hook=_unique_keys)
    except _Refused as err:
        raise MinicapError(f"{path}: {err}") from None
    except json.JSONDecodeError as err:
        raise MinicapError(f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    except RecursionError:
        raise MinicapError(f"{path}: the JSON is nested too deeply to read; a score file is an object of "
                           "objects of strings and lists of strings") from None
    except MemoryError:
        raise MinicapError(f"{path}: not enough memory to read it; split the images over several files") from None
    if not isinstance(obj, dict) or "refs" not in obj or "cands" not in obj:
        raise MinicapError(f'{path}: expected a JSON object with "refs" and "cands", e.g. '
                           '{"refs": {"img1": ["a dog runs"]}, "cands": {"img1": "a dog running"}}')
    for key, what in (("refs", "image id -> list of reference captions"), ("cands", "image id -> candidate caption")):
        if not isinstance(obj[key], dict):
            raise MinicapError(f'{path}: "{key}" must be an object ({what}), found {_json_type(obj[key])}')
    return obj["refs"], obj["cands"]


def _size(n_bytes):
    """A file size for messages: "256 MiB", "3.5 MiB", "100 bytes"."""
    if n_bytes < 2 ** 20:
        return f"{n_bytes:,} bytes"
    return f"{n_bytes / 2 ** 20:,.1f} MiB".replace(".0 MiB", " MiB")


def _json_type(value):
    """The JSON name of a parsed value's type, for messages."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
