"""The Porter stemmer (M. F. Porter, "An algorithm for suffix stripping", Program 14(3), 1980).

METEOR's second matching stage pairs words that share a stem ("running" ~ "runs" -> "run").
This is the original 1980 algorithm, written out step by step as in the paper, with the two
small changes of Porter's own reference implementation (step 2 maps "bli" -> "ble" instead of
"abli" -> "able", and adds "logi" -> "log"). Java METEOR 1.5 uses the later Snowball "english"
stemmer (Porter2); the two agree on the inflections captions are made of, and
docs/metrics.md says how much the METEOR scores differ in the end.

Vocabulary of the paper: a *consonant* is a letter other than a, e, i, o, u, and other than a
"y" preceded by a consonant; a word is [C](VC)^m[V], and m is its *measure*.
"""
from functools import lru_cache

_VOWELS = "aeiou"


def _consonants(word):
    """[True where word[i] is a consonant], in one pass from left to right.

    A "y" is a consonant at the start of a word or after a vowel ("yes", "toy") and a vowel after
    a consonant ("sky"), so each flag needs the one before it. Computing them in order costs
    O(len(word)); asking letter by letter recursively would nest once per letter of "yyyy...y"
    (a RecursionError on a long enough token) and make measure() quadratic.
    """
    flags = []
    for ch in word:
        if ch in _VOWELS:
            flags.append(False)
        elif ch == "y":
            flags.append(not flags or not flags[-1])
        else:
            flags.append(True)
    return flags


def measure(stem):
    """m in [C](VC)^m[V]: the number of vowel-run -> consonant-run transitions."""
    m = 0
    previous_is_vowel = False
    for consonant in _consonants(stem):
        if consonant and previous_is_vowel:
            m += 1
        previous_is_vowel = not consonant
    return m


def _has_vowel(stem):
    return not all(_consonants(stem))


def _ends_double_consonant(stem):
    return len(stem) >= 2 and stem[-1] == stem[-2] and _consonants(stem)[-1]


def _ends_cvc(stem):
    """*o: the stem ends consonant-vowel-consonant, the last not w, x or y ("hop", not "snow")."""
    if len(stem) < 3 or stem[-1] in "wxy":
        return False
    flags = _consonants(stem)
    return flags[-3] and not flags[-2] and flags[-1]


def _replace_longest(word, rules, min_measure):
    """Find the longest suffix in `rules` that ends `word`; replace it if measure(stem) > min_measure.

    Only the longest matching suffix is considered, as the paper specifies: if its condition
    fails, no shorter suffix is tried.
    """
    for suffix, replacement in rules:  # rules are sorted longest first
        if word.endswith(suffix):
            stem = word[:len(word) - len(suffix)]
            return stem + replacement if measure(stem) > min_measure else word
    return word


_STEP2 = sorted([("ational", "ate"), ("tional", "tion"), ("enci", "ence"), ("anci", "ance"),
                 ("izer", "ize"), ("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"),
                 ("ousli", "ous"), ("ization", "ize"), ("ation", "ate"), ("ator", "ate"),
                 ("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous"),
                 ("aliti", "al"), ("iviti", "ive"), ("biliti", "ble"), ("logi", "log")],
                key=lambda rule: -len(rule[0]))
_STEP3 = sorted([("icate", "ic"), ("ative", ""), ("alize", "al"), ("iciti", "ic"), ("ical", "ic"),
                 ("ful", ""), ("ness", "")], key=lambda rule: -len(rule[0]))
_STEP4 = sorted(["al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent",
                 "ion", "ou", "ism", "ate", "iti", "ous", "ive", "ize"], key=lambda s: -len(s))


def _step1ab(word):
    # Step 1a: plurals.
    if word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("ies"):
        word = word[:-2]
    elif word.endswith("ss"):
        pass
    elif word.endswith("s"):
        word = word[:-1]
    # Step 1b: -eed, -ed, -ing.
    if word.endswith("eed"):
        if measure(word[:-3]) > 0:
            word = word[:-1]
        return word
    for suffix in ("ed", "ing"):
        if word.endswith(suffix) and _has_vowel(word[:-len(suffix)]):
            word = word[:-len(suffix)]
            # Tidy up what removing the suffix left behind.
            if word.endswith(("at", "bl", "iz")):
                return word + "e"                       # conflat(ed) -> conflate
            if _ends_double_consonant(word) and word[-1] not in "lsz":
                return word[:-1]                        # hopp(ing) -> hop
            if measure(word) == 1 and _ends_cvc(word):
                return word + "e"                       # fil(ing) -> file
            return word
    return word


def _step1c(word):
    if word.endswith("y") and _has_vowel(word[:-1]):
        return word[:-1] + "i"                          # happy -> happi
    return word


def _step4(word):
    for suffix in _STEP4:
        if word.endswith(suffix):
            stem = word[:len(word) - len(suffix)]
            if measure(stem) > 1 and (suffix != "ion" or stem.endswith(("s", "t"))):
                return stem
            return word
    return word


def _step5(word):
    # Step 5a: a final -e.
    if word.endswith("e"):
        stem = word[:-1]
        m = measure(stem)
        if m > 1 or (m == 1 and not _ends_cvc(stem)):
            word = stem
    # Step 5b: -ll -> -l for long words (controll -> control).
    if measure(word) > 1 and _ends_double_consonant(word) and word.endswith("l"):
        word = word[:-1]
    return word


@lru_cache(maxsize=65536)
def porter_stem(word):
    """Stem one lower-case word: porter_stem("running") == "run", porter_stem("ponies") == "poni".

    Words of one or two letters are returned unchanged, as in Porter's reference code.
    """
    if len(word) <= 2:
        return word
    word = _step1ab(word)
    word = _step1c(word)
    word = _replace_longest(word, _STEP2, 0)
    word = _replace_longest(word, _STEP3, 0)
    word = _step4(word)
    word = _step5(word)
    return word
