"""The caption tokenizer must reproduce pycocoevalcap's (Java PTB tokenizer + punctuation removal).

The expected token lists below were produced by the Java tokenizer itself (Stanford CoreNLP
3.4.1, as pycocoevalcap 1.2 runs it); the oracle test at the end re-checks a generated corpus
when pycocoevalcap and Java are installed.
"""
import pytest

from minicap.metrics import coco_compare
from minicap.text import tokenize

PTB_OUTPUTS = {
    "A man's dog, running!": ["a", "man", "'s", "dog", "running"],
    "The digit 7 is on the left of the digit 3.": ["the", "digit", "7", "is", "on", "the", "left", "of", "the", "digit", "3"],
    '"Hello," she said.': ["hello", "she", "said"],
    "It's a dog's life -- isn't it?": ["it", "'s", "a", "dog", "'s", "life", "is", "n't", "it"],
    "They can't won't don't shouldn't.": ["they", "ca", "n't", "wo", "n't", "do", "n't", "should", "n't"],
    "I'm you're we've they'll he'd.": ["i", "'m", "you", "'re", "we", "'ve", "they", "'ll", "he", "'d"],
    "A t-shirt and a well-known man.": ["a", "t-shirt", "and", "a", "well-known", "man"],
    "Costs $5.00 or 3.5% (approx).": ["costs", "$", "5.00", "or", "3.5", "%", "-lrb-", "approx", "-rrb-"],
    "e.g. Mr. Smith vs. Dr. Who at 3 p.m.": ["e.g.", "mr.", "smith", "vs.", "dr.", "who", "at", "3", "p.m."],
    "Two  spaces   here.": ["two", "spaces", "here"],
    "Hello... world...": ["hello", "world"],
    "'quoted' words here": ["quoted", "words", "here"],
    "rock 'n' roll": ["rock", "'n'", "roll"],
    "gonna wanna gotta": ["gon", "na", "wan", "na", "got", "ta"],
    "cannot": ["can", "not"],
    "it's 10:30 now": ["it", "'s", "10:30", "now"],
    "U.S.A. and U.K.": ["u.s.a.", "and", "u.k."],
    "brackets [like this] and {that}": ["brackets", "-lsb-", "like", "this", "-rsb-", "and", "-lcb-", "that", "-rcb-"],
    "email me@x.com or http://x.org": ["email", "me@x.com", "or", "http://x.org"],
    "numbers 1,000 and 2.5": ["numbers", "1,000", "and", "2.5"],
    "why?!?": ["why", "?!?"],
    "smiley :)": ["smiley", ":-rrb-"],
    "y'all": ["y'", "all"],
    "o'clock": ["o'clock"],
    "the bears' den": ["the", "bears", "den"],
    "the '90s": ["the", "'90s"],
    "'tis": ["'t", "is"],
    "a sign says no. 5": ["a", "sign", "says", "no.", "5"],
    "a sign says no. way": ["a", "sign", "says", "no", "way"],
    "the letter a.": ["the", "letter", "a."],
    "the dog sat.": ["the", "dog", "sat"],
    "a hat in st. louis": ["a", "hat", "in", "st.", "louis"],
    "don\u2019t": ["do", "n't"],
    "\u201cquoted\u201d text": ["quoted", "text"],
    "a \u2013 b": ["a", "b"],
    "2.5km": ["2.5", "km"],
    "#hashtag #1": ["#hashtag", "#", "1"],
    "A&B and a & b": ["a&b", "and", "a", "&", "b"],
    "3/4 cup": ["3/4", "cup"],
    "a man's-best-friend": ["a", "man", "'s", "best-friend"],
    "mid-'90s": ["mid", "'90s"],
    "hello--world": ["hello", "world"],
    "- a list": ["a", "list"],
    "caf\u00e9 na\u00efve": ["caf\u00e9", "na\u00efve"],
    "": [],
    " . , ; ": [],
}


@pytest.mark.parametrize("caption", list(PTB_OUTPUTS))
def test_tokenize_matches_the_java_ptb_tokenizer(caption):
    assert tokenize(caption) == PTB_OUTPUTS[caption]


def test_captioned_mnist_caption():
    assert tokenize("the digit seven is at the top left of the image .") == \
        "the digit seven is at the top left of the image".split()


def test_tokenize_rejects_non_strings():
    with pytest.raises(TypeError, match="must be a string"):
        tokenize(["a", "list"])


@pytest.mark.skipif(not coco_compare.oracle_available(), reason="needs pycocoevalcap and Java (test oracle)")
def test_tokenize_agrees_with_ptb_on_generated_corpus():
    refs, cands, _ = coco_compare.generate_corpus(90, seed=1)
    ref_strings, cand_strings = coco_compare.ptb_tokenize(refs, cands)
    assert coco_compare.tokenizer_mismatches(refs, cands, ref_strings, cand_strings) == []
