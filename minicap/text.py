"""Caption tokenization, shared by the vocabulary and the metrics.

It reproduces what the COCO caption evaluation code (pycocoevalcap) does to every caption
before scoring: run the Stanford PTB tokenizer with `-lowerCase`, then drop a fixed list of
punctuation tokens. Using the same tokens as the reference scorer is what lets our BLEU,
METEOR, ROUGE-L and CIDEr-D numbers be compared with published ones.

What the PTB tokenizer does, as far as captions go (each rule below was checked against
Stanford CoreNLP 3.4.1, the version pycocoevalcap 1.2 runs):

    "A man's dog, running!"   -> a man 's dog running      possessive/contraction split off
    "don't" "can't" "cannot"  -> do n't / ca n't / can not
    "gonna" "wanna"           -> gon na / wan na
    "well-known" "3-2" "x.com" "1,000" "10:30" "50/50"      kept as one token
    "mr." "st." "u.s." "e.g." "p.m." "a."                   abbreviations keep their period
    "(" ")" "[" "]" "{" "}"   -> -lrb- -rrb- -lsb- -rsb- -lcb- -rcb-
    "$5" "100%"               -> $ 5 / 100 %
    "?!" "!!"                 kept (only a single "?" or "!" is in the removal list)

Two quirks of the reference are kept on purpose, because matching the reference is the point:
the removal list spells brackets in upper case ("-LRB-") while the tokens are lower-cased, so
bracket tokens survive ("-lrb-"); and runs like "?!" are not removed.

The tokenizer is a single left-to-right regular-expression scan (`_TOKEN`, alternatives tried
in order), followed by a few whole-token rewrites. It agrees with the Java tokenizer on all 1,728
captions of the test corpus of minicap.metrics.coco_compare, and on 6,289 of the 6,304 lines of
Shakespeare in data/tiny_text.txt (the rest: archaic "under't.", "&c.", and "SCENE I. An", where
Java reads the capitals as a sentence end).
"""
import re

# Tokens the COCO code removes after PTB tokenization. Its list also holds "-LRB-", "-RRB-",
# "-LCB-", "-RCB-" in upper case, which never match the lower-cased tokens, so they are left out.
PUNCTUATION = frozenset(["''", "'", "``", "`", ".", "?", "!", ",", ":", "-", "--", "...", ";"])

# Typographic characters the PTB tokenizer maps to their ASCII forms (then removes as punctuation).
_UNICODE = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"',
                          "\u2013": " -- ", "\u2014": " -- ", "\u2026": " ... ", "\u00a0": " "})

_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}

# Words the PTB tokenizer splits into two tokens.
_SPLIT_WORDS = {"cannot": ["can", "not"], "gonna": ["gon", "na"], "gotta": ["got", "ta"],
                "wanna": ["wan", "na"], "lemme": ["lem", "me"], "gimme": ["gim", "me"]}

# Abbreviations that keep their period (checked one by one against the Java tokenizer;
# "sat." and "sun." are NOT among them there, so they are not here either).
_ABBREVIATIONS = ("mrs|mr|ms|dr|prof|st|jr|sr|mt|ave|co|corp|inc|ltd|vs|etc|gen|gov|sen|rep|capt|"
                  "col|lt|sgt|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec|mon|tues|tue|wed|"
                  "thurs|thur|thu|fri")

# One alternative per token kind; the first that matches at the current position wins.
_TOKEN = re.compile(r"""
    (?:https?://|www\.)[^\s"'()\[\]{}<>]*[^\s"'()\[\]{}<>.,!?;:]    # URL
  | [\w.+-]+@\w[\w-]*(?:\.[\w-]+)+                                     # e-mail address
  | <[a-z/][^<>\s]*>                                                    # SGML-like tag
  | [:;]-?[()]                                                          # emoticon :) ;-(
  | (?:[a-z]\.){2,}                                                     # u.s.  e.g.  p.m.
  | (?<![\w.])[a-z]\.(?=\s|$)                                           # single initial: "a."
  | (?<![\w.])(?:""" + _ABBREVIATIONS + r""")\.                        # mr.  st.  jan.
  | (?<![\w.])no\.(?=\s*\d)                                             # "no. 5"
  | 't(?=(?:is|was)\b)                                                  # 'tis -> 't is
  | 'n'(?!\w)|'(?:em|cause|n|\d+s)\b                                    # 'n' 'em 'cause '90s
  | (?<![\w'])y'(?=[a-z])                                               # y'know -> y' know
  | (?<![\w'])(?:\w*e'er|ma'am|[a-z]'(?!(?:s|m|d|re|ve|ll)\b)[a-z]+)(?:-\w+)*  # o'clock ne'er
  | \w+?(?=n't\b)                                                       # do|n't  ca|n't
  | n't\b                                                               # n't
  | '(?:s|m|d|re|ve|ll)\b                                               # 's 'm 'd 're 've 'll
  | [#@]\w*[a-z]\w*                                                     # #hashtag @user
  | \.\d+                                                               # .5
  | \d+(?:[.,:/-]\d+)*(?=[a-z])                                         # 2.5|km  5:30|pm
  | \w+(?:[-./&]\w+|(?<=\d)[,:]\d+)*                                    # words, numbers, x-ray, 1,000
  | [?!]+                                                               # ? ! ?!
  | \.{2,}                                                              # ... (any length)
  | --+                                                                 # --
  | \S                                                                  # any other character
""", re.VERBOSE)


def tokenize(caption):
    """Split one caption string into lower-case word tokens, punctuation removed.

    caption: str. Returns: list[str] (possibly empty), e.g.
    tokenize("A man's dog, running!") == ["a", "man", "'s", "dog", "running"].
    """
    if not isinstance(caption, str):
        raise TypeError(f"a caption must be a string, got {type(caption).__name__}: {caption!r}")
    text = caption.translate(_UNICODE).lower()
    tokens = []
    for match in _TOKEN.finditer(text):
        tok = match.group()
        if tok == '"':
            tok = "''"  # PTB turns double quotes into `` or '', both removed
        elif tok in _BRACKETS:
            tok = _BRACKETS[tok]
        elif tok[0] in ":;" and tok[-1] in "()":
            tok = tok[:-1] + _BRACKETS[tok[-1]]
        elif tok.startswith(".."):
            tok = "..."
        elif tok.startswith("--"):
            tok = "--"
        if tok in _SPLIT_WORDS:
            tokens.extend(_SPLIT_WORDS[tok])
        elif tok not in PUNCTUATION:
            tokens.append(tok)
    return tokens
