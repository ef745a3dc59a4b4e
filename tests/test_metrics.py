"""Caption metrics: hand-computed cases, properties, the CLI, and (when pycocoevalcap and Java are
installed) agreement with the COCO caption evaluation code on a generated corpus."""
import json
import math
import random
from collections import Counter

import pytest

from minicap.cli import main
from minicap.errors import MinicapError
from minicap.metrics import coco_compare, score_corpus, score_corpus_and_images
from minicap.metrics.bleu import bleu, sentence_counts
from minicap.metrics.cider import cider_d
from minicap.metrics.meteor import (BANERJEE_LAVIE_2005, BEAM_WIDTH, EXACT, MAX_CANDIDATES, METEOR_1_5,
                                    MeteorStats, align, meteor, meteor_normalize, meteor_stats)
from minicap.metrics.porter import porter_stem
from minicap.metrics.rouge import lcs_length, lcs_length_table, rouge_l
from minicap.metrics.score import METRIC_NAMES
from minicap.text import tokenize


def toks(*sentences):
    return [s.split() for s in sentences]


# ----------------------------------------------------------------------------------- BLEU
def test_bleu_clipped_precision_the_the_the():
    # Papineni et al.'s example: "the" occurs at most twice in a reference, so 2 of 7 count.
    refs = [toks("the cat is on the mat", "there is a cat on the mat")]
    corpus, per_image = bleu(refs, [["the"] * 7])
    correct, guess, cand_len, ref_len = sentence_counts(["the"] * 7, refs[0])
    assert correct[0] == 2 and guess[0] == 7 and ref_len == 7  # closest reference: 7 words, no penalty
    assert corpus[0] == pytest.approx(2 / 7, rel=1e-9)
    assert per_image[0][0] == pytest.approx(2 / 7, rel=1e-9)
    assert corpus[1] < 1e-6  # no bigram matches: p_2 = 1e-15 / 6


def test_bleu_identical_is_one_and_no_overlap_is_zero():
    same, _ = bleu([toks("a dog runs on the grass")], [["a", "dog", "runs", "on", "the", "grass"]])
    assert same == pytest.approx([1.0] * 4, abs=1e-9)
    none, per_image = bleu([toks("a dog runs on the grass")], [["two", "cats", "sleep"]])
    assert max(none) < 1e-12 and max(per_image[0]) < 1e-12


def test_bleu_candidate_shorter_than_every_reference_gets_brevity_penalty():
    refs = [toks("a dog runs on the grass", "a brown dog runs on the green grass")]
    corpus, _ = bleu(refs, [["a", "dog", "runs"]])
    # every n-gram of the candidate matches; the closest reference has 6 words: BP = exp(1 - 6/3)
    assert corpus[0] == pytest.approx(math.exp(1 - 6 / 3), rel=1e-8)
    # a 3-word candidate has no 4-grams: the COCO code then uses p_4 = 1e-15 / 1e-9, not 0
    assert corpus[3] == pytest.approx(math.exp(1 - 6 / 3) * 1e-6 ** 0.25, rel=1e-8)


def test_bleu_closest_reference_length_ties_go_to_the_shorter():
    # 4-word candidate, references of 3 and 5 words: r = 3, so no brevity penalty.
    corpus, _ = bleu([toks("a b c", "a b c d e")], [["a", "b", "c", "d"]])
    assert corpus[0] == pytest.approx(1.0, abs=1e-9)


def test_corpus_bleu_sums_counts_instead_of_averaging_sentences():
    refs = [toks("a b c d"), toks("e f g h i j")]
    cands = [["a", "b", "c", "d"], ["e", "x", "y", "z", "w", "v"]]
    corpus, per_image = bleu(refs, cands)
    assert corpus[0] == pytest.approx(5 / 10, rel=1e-8)               # (4 + 1) / (4 + 6)
    assert corpus[0] != pytest.approx((per_image[0][0] + per_image[1][0]) / 2)


# -------------------------------------------------------------------------------- ROUGE-L
def test_lcs_length():
    assert lcs_length("a b c d".split(), "a c d e f".split()) == 3
    assert lcs_length([], ["a"]) == 0
    assert lcs_length("a b a b".split(), "b a b a".split()) == 3


def test_bit_parallel_lcs_equals_the_table():
    rng = random.Random(0)
    for _ in range(500):
        vocab = "abcdefg"[:rng.randint(1, 7)]
        a = [rng.choice(vocab) for _ in range(rng.randint(0, 70))]  # 70 > one 64-bit word of bits
        b = [rng.choice(vocab) for _ in range(rng.randint(0, 70))]
        assert lcs_length(a, b) == lcs_length_table(a, b) == lcs_length(b, a), (a, b)


def test_rouge_l_hand_computed():
    corpus, per_image = rouge_l([toks("a c d e f")], [["a", "b", "c", "d"]])
    p, r = 3 / 4, 3 / 5
    assert per_image[0] == pytest.approx((1 + 1.2 ** 2) * p * r / (r + 1.2 ** 2 * p), rel=1e-12)
    assert corpus == per_image[0]


def test_rouge_l_maximises_precision_and_recall_separately():
    # precision is best against the long reference, recall against the short one
    _, per_image = rouge_l([toks("a b", "a b c d x y z w")], [["a", "b", "c", "d"]])
    p, r = 4 / 4, 2 / 2
    assert per_image[0] == pytest.approx((1 + 1.44) * p * r / (r + 1.44 * p))


# --------------------------------------------------------------------------------- CIDEr-D
def test_cider_d_hand_computed_with_clipping_and_length_penalty():
    # Two images, so idf = log 2 for every n-gram found in one image's references.
    refs = [toks("a b"), toks("c d")]
    corpus, per_image = cider_d(refs, [["a", "b", "a", "b"], ["x"]])
    # n=1: g_c = {a: 2l, b: 2l}, g_r = {a: l, b: l}: sum min(.)*g_r = 2 l^2, |g_c| |g_r| = 4 l^2 -> 1/2
    # n=2: g_c = {ab: 2l, ba: l}, g_r = {ab: l}: l^2 / (sqrt(5) l * l) -> 1/sqrt(5); n=3,4: 0
    expected = 10 * (0.5 + 1 / math.sqrt(5)) / 4 * math.exp(-(4 - 2) ** 2 / (2 * 6 ** 2))
    assert per_image[0] == pytest.approx(expected, rel=1e-12)
    assert per_image[1] == 0.0
    assert corpus == pytest.approx(expected / 2)


def test_cider_d_identical_caption_and_one_image_corpus():
    refs = [toks("a b c d e"), toks("f g h i j")]
    _, per_image = cider_d(refs, [["a", "b", "c", "d", "e"], ["f", "g", "h", "i", "j"]])
    assert per_image == pytest.approx([10.0, 10.0])  # cosine 1 for n = 1..4, no length penalty
    corpus, _ = cider_d(refs[:1], [["a", "b", "c", "d", "e"]])
    assert corpus == 0.0  # idf = log(1) - log(1) = 0: CIDEr-D needs a corpus


# ---------------------------------------------------------------------------------- METEOR
PORTER_CASES = {"caresses": "caress", "ponies": "poni", "ties": "ti", "cats": "cat", "feed": "feed",
                "agreed": "agre", "plastered": "plaster", "motoring": "motor", "sing": "sing",
                "conflated": "conflat", "troubled": "troubl", "sized": "size", "hopping": "hop",
                "tanned": "tan", "falling": "fall", "hissing": "hiss", "fizzed": "fizz", "filing": "file",
                "happy": "happi", "sky": "sky", "relational": "relat", "conditional": "condit",
                "rational": "ration", "digitizer": "digit", "vietnamization": "vietnam",
                "predication": "predic", "operator": "oper", "feudalism": "feudal", "decisiveness": "decis",
                "hopefulness": "hope", "callousness": "callous", "formaliti": "formal",
                "sensitiviti": "sensit", "sensibiliti": "sensibl", "triplicate": "triplic",
                "formative": "form", "formalize": "formal", "electrical": "electr", "hopeful": "hope",
                "goodness": "good", "revival": "reviv", "allowance": "allow", "inference": "infer",
                "airliner": "airlin", "gyroscopic": "gyroscop", "adjustable": "adjust", "defensible": "defens",
                "irritant": "irrit", "replacement": "replac", "adjustment": "adjust", "dependent": "depend",
                "adoption": "adopt", "communism": "commun", "activate": "activ", "homologous": "homolog",
                "effective": "effect", "bowdlerize": "bowdler", "probate": "probat", "rate": "rate",
                "cease": "ceas", "controll": "control", "roll": "roll", "running": "run", "runs": "run",
                "generalizations": "gener", "is": "is"}


def test_porter_stemmer_examples_from_the_paper():
    assert {w: porter_stem(w) for w in PORTER_CASES} == PORTER_CASES


def test_meteor_identical_is_one_no_overlap_is_zero():
    corpus, per_image = meteor([toks("the digit seven is on the left of the digit two")],
                               [["the", "digit", "seven", "is", "on", "the", "left", "of", "the", "digit", "two"]])
    assert corpus == 1.0 and per_image == [1.0]
    corpus, per_image = meteor([toks("a dog runs")], [["two", "cats", "sleep"]])
    assert corpus == 0.0 and per_image == [0.0]


def test_meteor_hand_computed_partial_match():
    # "the cat sat" vs "the cat sat on the mat": 3 matches (2 content, 1 function), one chunk.
    stats = meteor_stats("the cat sat".split(), "the cat sat on the mat".split())
    assert (stats.test_len, stats.ref_len, stats.test_function, stats.ref_function) == (3, 6, 1, 3)
    assert stats.chunks == 1
    p = (2 * 0.75 + 1 * 0.25) / (2 * 0.75 + 1 * 0.25)
    r = (2 * 0.75 + 1 * 0.25) / (3 * 0.75 + 3 * 0.25)
    fmean = p * r / (0.85 * p + 0.15 * r)
    penalty = 0.6 * (1 / 3) ** 0.2
    assert stats.score(METEOR_1_5) == pytest.approx(fmean * (1 - penalty), rel=1e-12)
    # the original parameters: Fmean = 10PR / (R + 9P), Pen = 0.5 (chunks / matches)^3
    p, r = 3 / 3, 3 / 6
    expected = 10 * p * r / (r + 9 * p) * (1 - 0.5 * (1 / 3) ** 3)
    assert stats.score(BANERJEE_LAVIE_2005) == pytest.approx(expected, rel=1e-12)


def test_meteor_stem_match_weighs_0_6():
    stats = meteor_stats("a dog running".split(), "a dog runs".split())
    assert stats.test_content_matches == [1, 1] and stats.chunks == 1
    p = (1 * 0.75 + 0.6 * 0.75 + 1 * 0.25) / (2 * 0.75 + 1 * 0.25)
    assert stats.score(METEOR_1_5) == pytest.approx(p, rel=1e-12)  # P = R, every word matched: no penalty


def test_meteor_alignment_minimises_chunks():
    # "the" appears twice in the reference: aligning it to the first one keeps one chunk.
    matches, chunks = align("the cat sat".split(), "the cat sat on the mat".split())
    assert [(i, j) for i, j, _ in matches] == [(0, 0), (1, 1), (2, 2)] and chunks == 1
    matches, chunks = align("on the mat the cat sat".split(), "the cat sat on the mat".split())
    assert len(matches) == 6 and chunks == 2


def test_meteor_ambiguous_stem_match_that_adds_a_chunk_is_dropped_as_in_java():
    # Java METEOR 1.5 (-m "exact stem") scores this 0: the two "dogs" both stem-match "dog", and an
    # alignment using either adds a chunk without adding an exact match.
    assert meteor([toks("a dog")], [["dogs", "and", "dogs"]])[0] == 0.0
    assert meteor([toks("a dog")], [["the", "dogs"]])[0] > 0  # the only candidate: kept


def test_meteor_corpus_sums_statistics_and_perfect_pairs_add_no_chunks():
    perfect = meteor_stats("a b c".split(), "a b c".split())
    partial = meteor_stats("x a y b".split(), "a b z".split())
    total = MeteorStats()
    total.add(perfect)
    total.add(partial)
    assert total.chunks == partial.chunks == 2
    corpus, per_image = meteor([toks("a b c"), toks("a b z")], [["a", "b", "c"], ["x", "a", "y", "b"]])
    assert corpus == total.score(METEOR_1_5)
    assert per_image == [1.0, partial.score(METEOR_1_5)]
    assert corpus != pytest.approx(sum(per_image) / 2)


def test_meteor_best_reference_is_used():
    one, _ = meteor([toks("a cat sleeps on a sofa", "a dog runs")], [["a", "dog", "runs"]])
    assert one == 1.0


def _meteor_pairs(seeds, images=90):
    """(candidate, reference) token lists, as METEOR sees them, of coco_compare's generated corpora
    (seed 2 is the corpus of the Java METEOR oracle test below)."""
    for seed in seeds:
        refs, cands, _ = coco_compare.generate_corpus(images, seed=seed)
        for image_id, cand in cands.items():
            for ref in refs[image_id]:
                yield meteor_normalize(tokenize(cand)), meteor_normalize(tokenize(ref))


def test_meteor_bounded_search_equals_the_full_search_on_the_oracle_corpus():
    # The cut to MAX_CANDIDATES test words per reference word must change nothing where the
    # scores were checked against Java METEOR: every alignment is the same as without the cut.
    pairs = 0
    for test, ref in _meteor_pairs(seeds=(1, 2, 3)):
        assert align(test, ref) == align(test, ref, max_candidates=None), (test, ref)
        pairs += 1
    assert pairs > 500


def test_meteor_search_work_is_linear_in_the_caption_length():
    # Five words repeated: every reference word has hundreds of candidates. The full search
    # would build R * beam * T partial alignments (quadratic); the bounded one at most
    # R * beam * (max_candidates + 2), and still returns a valid alignment and a score in [0, 1].
    rng = random.Random(0)
    vocab = "a dog runs on grass".split()
    test = [rng.choice(vocab) for _ in range(1500)]
    ref = [rng.choice(vocab) for _ in range(1500)]
    counter = Counter()
    matches, chunks = align(test, ref, beam_width=4, max_candidates=3, counter=counter)
    assert 0 < counter["extensions"] <= len(ref) * 4 * (3 + 2)
    assert [j for _, j, _ in matches] == sorted(set(j for _, j, _ in matches))  # one match per ref word
    assert len(set(i for i, _, _ in matches)) == len(matches)                   # one per test word
    assert all(porter_stem(test[i]) == porter_stem(ref[j]) for i, j, _ in matches)
    assert 1 <= chunks <= len(matches)
    assert 0.0 < meteor_stats(test, ref, beam_width=4, max_candidates=3).score() <= 1.0


def test_meteor_long_repeated_word_aligns_in_one_chunk_within_the_bound():
    # 300 x "dog" took 10 s before the search was bounded (every "dog" a candidate of every
    # "dog"). The test word that continues the open chunk is always tried, so the cut keeps
    # the one-chunk alignment.
    test, ref = ["dog"] * 300, ["dog"] * 299 + ["dogs"]
    counter = Counter()
    matches, chunks = align(test, ref, counter=counter)
    assert [(i, j) for i, j, _ in matches] == [(k, k) for k in range(300)] and chunks == 1
    assert counter["extensions"] <= len(ref) * BEAM_WIDTH * (MAX_CANDIDATES + 2)


def test_meteor_cut_still_tries_the_word_that_continues_the_chunk():
    # ref "a" has 31 candidates; the 3 nearest to its position are test words 0-2, but after the
    # forced match x-x the one that continues the chunk is test word 31.
    test, ref = ["a"] * 30 + ["x", "a"], ["x", "a"]
    assert align(test, ref, max_candidates=3) == ([(30, 0, EXACT), (31, 1, EXACT)], 1)


def test_meteor_pathological_tokens_do_not_recurse():
    # Porter's "y" rule and METEOR's apostrophe splitting were recursive, one level per letter.
    assert porter_stem("y" * 5000) == "y" * 4999 + "i"
    assert meteor_normalize(["'" * 5000 + "s"]) == ["'"] * 5000 + ["s"]


def test_meteor_normalize_reproduces_the_java_normalizer():
    # outputs observed from METEOR 1.5's Normalizer on these inputs
    cases = {"the truck 's bike": "the truck ' s bike", "is n't there": "is n 't there",
             "t-shirt rock-n-roll 3-2": "t shirt rock n-roll 3 2",
             "5.00 1,000 10:30 50/50 a,b": "5.00 1,000 10 : 30 50 / 50 a , b",
             "u.s. e.g. mr. st. p.m. a.": "us eg mr. st. pm a .", "$ 5 @home ?! a_b": "$ 5 @ home ? ! a _ b",
             "o'clock 'em 'n'": "o 'clock ' em ' n '", "-lrb- x -rrb- :-rrb-": "-lrb- x -rrb- : -rrb-",
             "no. 5 vs.": "no . 5 vs."}
    assert {k: " ".join(meteor_normalize(k.split())) for k in cases} == cases


# ------------------------------------------------------------------------- score_corpus + CLI
def test_score_corpus_keys_and_ranges_on_a_generated_corpus():
    refs, cands, _ = coco_compare.generate_corpus(60, seed=3)
    corpus, per_image = score_corpus_and_images(refs, cands)
    assert list(corpus) == list(METRIC_NAMES)
    assert set(per_image) == set(cands)
    for scores in [corpus, *per_image.values()]:
        for name in METRIC_NAMES[:-1]:
            assert 0.0 <= scores[name] <= 1.0, (name, scores[name])
        assert 0.0 <= scores["CIDEr"] <= 10.0
    assert 0.2 < corpus["BLEU-1"] < 1 and 0.1 < corpus["METEOR"] < 1 and corpus["CIDEr"] > 0.5


def test_score_corpus_identical_captions_score_one():
    refs, _, _ = coco_compare.generate_corpus(30, seed=4)
    cands = {i: r[0] for i, r in refs.items()}
    scores = score_corpus(refs, cands)
    for name in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L"):
        assert scores[name] == pytest.approx(1.0, abs=1e-9), name
    assert scores["CIDEr"] > 1.0


def test_score_corpus_tokenizes_like_coco():
    scores = score_corpus({"a": ["A dog, running!"], "b": ["two cats"]}, {"a": "a dog running", "b": "Two cats."})
    assert scores["BLEU-1"] == pytest.approx(1.0, abs=1e-9) and scores["ROUGE-L"] == 1.0


@pytest.mark.parametrize("refs, cands, message", [
    ({"a": ["a dog"]}, {"a": "a dog", "b": "a cat"}, "have no references: 'b'"),
    ({"a": []}, {"a": "a dog"}, "empty reference list"),
    ({"a": ["a dog", "..."]}, {"a": "a dog"}, "no words after tokenization"),
    ({"a": "a dog"}, {"a": "a dog"}, "must be a list of strings"),
    ({"a": ["a dog"]}, {"a": ["a dog"]}, "must be one string"),
    ({"a": ["a dog"]}, {}, "no candidate captions"),
    (["a dog"], {"a": "a dog"}, "must both be mappings"),
])
def test_score_corpus_errors(refs, cands, message):
    with pytest.raises(MinicapError, match=message):
        score_corpus(refs, cands)


def test_cli_score_table_and_json(tmp_path, capsys):
    path = tmp_path / "captions.json"
    path.write_text(json.dumps({"refs": {"1": ["a dog runs on the grass", "A brown dog running."],
                                         "2": ["the digit seven is on the left of the digit two ."]},
                                "cands": {"1": "a dog running on grass",
                                          "2": "the digit seven is on the left of the digit two"}}))
    assert main(["score", str(path)]) == 0
    out = capsys.readouterr().out
    for name in METRIC_NAMES:
        assert name in out
    assert main(["score", str(path), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert list(scores) == list(METRIC_NAMES)
    assert scores["ROUGE-L"] == pytest.approx(score_corpus(*json.loads(path.read_text()).values())["ROUGE-L"])


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ('{"refs": {}, ', "malformed JSON at line 1"),
    ("[1, 2]", 'expected a JSON object with "refs" and "cands"'),
    ('{"refs": [], "cands": {}}', '"refs" must be an object'),
    ('{"refs": {"1": ["a dog"]}, "cands": {"1": "a dog", "2": "a cat"}}', "have no references: '2'"),
    ('{"refs": {"1": []}, "cands": {"1": "a dog"}}', "empty reference list"),
])
def test_cli_score_errors(tmp_path, capsys, content, message):
    path = tmp_path / "captions.json"
    if content is not None:
        path.write_text(content)
    assert main(["score", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and "Traceback" not in err


# ------------------------------------------------------------------- oracle: pycocoevalcap
@pytest.fixture(scope="module")
def oracle():
    if not coco_compare.oracle_available():
        pytest.skip("needs pycocoevalcap and Java (a test oracle, never a dependency)")
    refs, cands, kinds = coco_compare.generate_corpus(90, seed=2)
    ref_strings, cand_strings = coco_compare.ptb_tokenize(refs, cands)
    reference = coco_compare.reference_scores(ref_strings, cand_strings)
    return ref_strings, cand_strings, reference, kinds


def test_bleu_rouge_cider_agree_with_pycocoevalcap(oracle):
    ref_strings, cand_strings, reference, _ = oracle
    diffs = coco_compare.compare(ref_strings, cand_strings, reference)
    for name in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr"):
        corpus_diff, max_image_diff, _ = diffs[name]
        assert corpus_diff < 1e-6 and max_image_diff < 1e-6, (name, diffs[name])


def test_meteor_agrees_with_java_meteor(oracle):
    ref_strings, cand_strings, reference, kinds = oracle
    diffs = coco_compare.compare(ref_strings, cand_strings, reference)
    # same modules (exact + stem): the same scores
    assert diffs["METEOR-exact-stem"][0] < 1e-9 and diffs["METEOR-exact-stem"][1] < 1e-9
    # the shipped jar also matches synonyms and paraphrases
    assert diffs["METEOR"][0] < 0.02
