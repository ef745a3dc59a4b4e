"""Measure how closely minicap's metrics agree with the COCO caption evaluation (pycocoevalcap).

    python -m minicap.metrics.coco_compare [--images 400] [--seed 0]

pycocoevalcap (and the Java it runs) is a test oracle here, never a dependency: install it
only to measure (`pip install pycocoevalcap`, plus a Java runtime). The script

1. generates a corpus (`generate_corpus`): captioned-MNIST-style captions ("the digit seven is
   on the left of the digit two .") and free-form scene captions with varied lengths,
   punctuation, inflections ("runs" / "running") and several references per image; half of
   the free-form images also use synonym pairs (big/large, picture/photo) that only Java
   METEOR's WordNet module can match;
2. tokenizes every caption with the Java PTB tokenizer and with minicap.text.tokenize, and
   counts the captions where they differ;
3. scores the PTB-tokenized corpus with pycocoevalcap and with minicap (same tokens), and
   prints the largest differences: corpus scores and per-image scores.

METEOR is compared twice: against pycocoevalcap's METEOR 1.5 as shipped (exact, stem,
synonym and paraphrase modules), and against the same jar restricted to `-m "exact stem"`,
which isolates differences in alignment and stemming from the missing WordNet/paraphrase data.
"""
import argparse
import os
import random
import subprocess
import sys

from minicap.errors import MinicapError

# ---------------------------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------------------------
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
RELATIONS = [("on the left of", "on the right of"), ("at the top of", "at the bottom of")]
CORNERS = ["top left", "top right", "bottom left", "bottom right"]

SUBJECTS = ["man", "woman", "dog", "cat", "boy", "girl", "horse", "bird", "player", "chef", "skier",
            "surfer", "cow", "sheep", "train", "bus", "truck"]
ADJECTIVES = ["young", "old", "brown", "white", "black", "red", "happy", "tall", "striped", "wet"]
VERBS = [("runs", "running", "ran"), ("sits", "sitting", "sat"), ("plays", "playing", "played"),
         ("rides", "riding", "rode"), ("eats", "eating", "ate"), ("holds", "holding", "held"),
         ("walks", "walking", "walked"), ("jumps", "jumping", "jumped"), ("stands", "standing", "stood"),
         ("looks", "looking", "looked"), ("waits", "waiting", "waited"), ("flies", "flying", "flew")]
OBJECTS = ["ball", "frisbee", "pizza", "bike", "kite", "skateboard", "umbrella", "sandwich", "phone",
           "surfboard", "bag", "hat", "t-shirt", "hot-dog", "book", "cup"]
PLACES = ["on the grass", "in a park", "on the beach", "near the water", "in the kitchen", "at the table",
          "down the street", "in the snow", "on a field", "next to a fence", "by the road", "in the city"]
SYNONYMS = [("big", "large"), ("small", "little"), ("picture", "photo"), ("road", "street"),
            ("kid", "child"), ("couch", "sofa"), ("automobile", "car")]


def _mnist_image(rng):
    """References and a candidate for one captioned-MNIST-style image."""
    if rng.random() < 0.7:  # two digits
        a, b = rng.sample(DIGITS, 2)
        rel, inverse = rng.choice(RELATIONS)
        truth = f"the digit {a} is {rel} the digit {b} ."
        refs = [truth, f"the digit {b} is {inverse} the digit {a} ."]
        wrong_digit = rng.choice([d for d in DIGITS if d not in (a, b)])
        options = [truth, f"the digit {a} is {rel} the digit {wrong_digit}",
                   f"the digit {b} is {rel} the digit {a} .", f"the digit {a} is {inverse} the digit {b}",
                   f"the digit {a} is {rel} the", f"the digit {a} {a} is {rel} the digit digit {b} .",
                   f"digit {a} {rel} digit {b}", f"the digit {wrong_digit}"]
    else:
        a = rng.choice(DIGITS)
        corner = rng.choice(CORNERS)
        truth = f"the digit {a} is at the {corner} of the image ."
        refs = [truth, f"The digit {a} is in the {corner} corner."]
        other = rng.choice([c for c in CORNERS if c != corner])
        options = [truth, f"the digit {a} is at the {other} of the image",
                   f"the digit {rng.choice(DIGITS)} is at the {corner} of the image .",
                   f"the digit {a} is at the", f"the the the the the the the"]
    return refs, rng.choice(options)


def _scene_caption(rng, subject, verb, obj, place, synonyms):
    """One free-form caption of a scene, with varied form, length and punctuation."""
    adjective = rng.choice(ADJECTIVES)
    if synonyms and rng.random() < 0.5:
        adjective = rng.choice(rng.choice(SYNONYMS[:2]))
    form = rng.randrange(6)
    if form == 0:
        text = f"a {adjective} {subject} {verb[0]} {place}"
    elif form == 1:
        text = f"A {subject} is {verb[1]} with a {obj} {place}."
    elif form == 2:
        text = f"{place.capitalize()}, a {adjective} {subject} {verb[2]}."
    elif form == 3:
        text = f"the {subject}'s {obj} {place}"
    elif form == 4:
        text = f"There is a {subject} {verb[1]} {place} and a {adjective} {obj} nearby, isn't there?"
    else:
        text = f"{subject}s {verb[1]} {place} with {rng.randint(2, 5)} {obj}s"
    if synonyms and rng.random() < 0.4:
        first, second = rng.choice(SYNONYMS)
        text += f" in a {rng.choice([first, second])} {rng.choice(['picture', 'photo'])}"
    return text


def _free_image(rng, synonyms):
    """References (3 to 5) and a candidate for one free-form scene."""
    subject, verb, obj, place = (rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS),
                                 rng.choice(PLACES))
    refs = [_scene_caption(rng, subject, verb, obj, place, synonyms) for _ in range(rng.randint(3, 5))]
    kind = rng.random()
    if kind < 0.5:  # another description of the same scene
        cand = _scene_caption(rng, subject, verb, obj, place, synonyms)
    elif kind < 0.8:  # a reference, perturbed
        words = rng.choice(refs).split()
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(3)
            i = rng.randrange(len(words))
            if op == 0 and len(words) > 1:
                del words[i]
            elif op == 1:
                words.insert(i, rng.choice(SUBJECTS + OBJECTS + ADJECTIVES))
            else:
                words[i] = rng.choice(["a", "the", "dog", "of", "is", rng.choice(VERBS)[1]])
        cand = " ".join(words)
    elif kind < 0.9:  # a different scene
        cand = _scene_caption(rng, rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS),
                              rng.choice(PLACES), synonyms)
    else:  # very short or very long
        cand = rng.choice([rng.choice(SUBJECTS), f"a {subject}", " ".join(refs)])
    return refs, cand


def generate_corpus(n_images=400, seed=0):
    """A reproducible test corpus: (refs, cands, kinds) with ids "m0", "f1", "s2", ...

    refs: dict id -> list of reference strings; cands: dict id -> candidate string; kinds:
    dict id -> "mnist" | "free" | "synonyms". A third of the images of each kind.
    """
    rng = random.Random(seed)
    refs, cands, kinds = {}, {}, {}
    for k in range(n_images):
        kind = ("mnist", "free", "synonyms")[k % 3]
        image_id = f"{kind[0]}{k}"
        if kind == "mnist":
            refs[image_id], cands[image_id] = _mnist_image(rng)
        else:
            refs[image_id], cands[image_id] = _free_image(rng, synonyms=kind == "synonyms")
        kinds[image_id] = kind
    return refs, cands, kinds


# ---------------------------------------------------------------------------------------------
# The oracle
# ---------------------------------------------------------------------------------------------
def oracle_available():
    """Whether pycocoevalcap and a Java runtime are both installed (the oracle tests need them)."""
    try:
        import pycocoevalcap  # noqa: F401
    except ImportError:
        return False
    try:
        subprocess.run(["java", "-version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return False
    return True


def _require_oracle():
    if not oracle_available():
        raise MinicapError("this measurement needs pycocoevalcap and Java: `pip install pycocoevalcap` "
                           "(a test oracle only, never a dependency of minicap) and a Java runtime")


def ptb_tokenize(refs, cands):
    """Tokenize with pycocoevalcap's Java PTB tokenizer + punctuation removal.

    Returns (ref_strings, cand_strings): dict id -> list of space-joined token strings, and
    dict id -> list with one string, the form pycocoevalcap's scorers take.
    """
    _require_oracle()
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    tokenizer = PTBTokenizer()
    ref_strings = tokenizer.tokenize({i: [{"caption": c} for c in r] for i, r in refs.items()})
    cand_strings = tokenizer.tokenize({i: [{"caption": c}] for i, c in cands.items()})
    return ref_strings, cand_strings


def _meteor_exact_stem():
    """pycocoevalcap's Meteor wrapper, with the jar restricted to the exact and stem modules."""
    from pycocoevalcap.meteor import meteor as meteor_module
    scorer = meteor_module.Meteor.__new__(meteor_module.Meteor)
    import threading
    scorer.meteor_cmd = ["java", "-jar", "-Xmx2G", meteor_module.METEOR_JAR, "-", "-", "-stdio",
                         "-l", "en", "-norm", "-m", "exact stem", "-w", "1.0 0.6"]
    scorer.meteor_p = subprocess.Popen(scorer.meteor_cmd, cwd=os.path.dirname(os.path.abspath(meteor_module.__file__)),
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    scorer.lock = threading.Lock()
    return scorer


def reference_scores(ref_strings, cand_strings, meteor=True):
    """pycocoevalcap's scores of a PTB-tokenized corpus.

    Returns {name: (corpus, per_image list)} for BLEU-1..4, ROUGE-L, CIDEr, and (with
    meteor=True) METEOR (the shipped jar) and METEOR-exact-stem (the jar with -m "exact stem").
    """
    _require_oracle()
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    out = {}
    corpus, per_image = Bleu(4).compute_score(ref_strings, cand_strings, verbose=0)
    for n in range(4):
        out[f"BLEU-{n + 1}"] = (corpus[n], list(per_image[n]))
    corpus, per_image = Rouge().compute_score(ref_strings, cand_strings)
    out["ROUGE-L"] = (float(corpus), list(per_image))
    corpus, per_image = Cider().compute_score(ref_strings, cand_strings)
    out["CIDEr"] = (float(corpus), list(per_image))
    if meteor:
        for name, scorer in (("METEOR", Meteor()), ("METEOR-exact-stem", _meteor_exact_stem())):
            corpus, per_image = scorer.compute_score(ref_strings, cand_strings)
            out[name] = (corpus, per_image)
            scorer.meteor_p.stdin.close()
            scorer.meteor_p.kill()
            scorer.meteor_p.wait()
    return out


def compare(ref_strings, cand_strings, reference, meteor_params=None):
    """Largest |minicap - pycocoevalcap| per metric on the same PTB tokens.

    Returns {name: (corpus difference, max per-image difference, mean per-image difference)}.
    """
    from minicap.metrics.meteor import METEOR_1_5
    from minicap.metrics.score import score_tokenized
    ids = list(cand_strings)
    ref_tokens = [[r.split() for r in ref_strings[i]] for i in ids]
    cand_tokens = [cand_strings[i][0].split() for i in ids]
    corpus, per_image = score_tokenized(ref_tokens, cand_tokens, meteor_params or METEOR_1_5)
    result = {}
    for name, (ref_corpus, ref_images) in reference.items():
        ours = name.split("-exact")[0]
        diffs = [abs(img[ours] - float(r)) for img, r in zip(per_image, ref_images)]
        result[name] = (abs(corpus[ours] - float(ref_corpus)), max(diffs), sum(diffs) / len(diffs))
    return result


def tokenizer_mismatches(refs, cands, ref_strings, cand_strings):
    """Captions whose minicap.text.tokenize tokens differ from the Java PTB tokenizer's."""
    from minicap.text import tokenize
    bad = []
    for i in cands:
        pairs = list(zip(refs[i], ref_strings[i])) + [(cands[i], cand_strings[i][0])]
        bad += [(raw, ptb) for raw, ptb in pairs if tokenize(raw) != ptb.split()]
    return bad


def _compare_tokenizers_on_text(path):
    from minicap.text import tokenize
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip()]
        _, cand_strings = ptb_tokenize({}, {k: line for k, line in enumerate(lines)})
    except (OSError, MinicapError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    bad = [(line, cand_strings[k][0].split()) for k, line in enumerate(lines)
           if tokenize(line) != cand_strings[k][0].split()]
    print(f"{path}: {len(lines) - len(bad)}/{len(lines)} lines tokenized exactly as the Java PTB tokenizer")
    for line, ptb in bad[:20]:
        print(f"   {line!r}\n      PTB     {ptb}\n      minicap {tokenize(line)}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minicap.metrics.coco_compare", description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=400, help="images in the generated corpus (default 400)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    parser.add_argument("--tokenizer-text", metavar="FILE",
                        help="instead: compare the two tokenizers on every non-empty line of FILE")
    args = parser.parse_args(argv)
    if args.tokenizer_text:
        return _compare_tokenizers_on_text(args.tokenizer_text)
    from minicap.metrics.meteor import BANERJEE_LAVIE_2005, METEOR_1_5
    try:
        refs, cands, kinds = generate_corpus(args.images, args.seed)
        ref_strings, cand_strings = ptb_tokenize(refs, cands)
        n_captions = sum(len(r) + 1 for r in refs.values())
        bad = tokenizer_mismatches(refs, cands, ref_strings, cand_strings)
        print(f"corpus: {len(cands)} images, {n_captions} captions (seed {args.seed})")
        print(f"tokenizer: {n_captions - len(bad)}/{n_captions} captions tokenized exactly as the Java PTB tokenizer")
        for raw, ptb in bad[:10]:
            print(f"   {raw!r}: PTB {ptb.split()}")
        subsets = {"all": list(cands)}
        for kind in ("mnist", "free", "synonyms"):
            subsets[kind] = [i for i in cands if kinds[i] == kind]
        settings = [("METEOR 1.5 parameters (the default)", METEOR_1_5),
                    ("Banerjee & Lavie 2005 parameters", BANERJEE_LAVIE_2005)]
        for subset, ids in subsets.items():
            sub_refs = {i: ref_strings[i] for i in ids}
            sub_cands = {i: cand_strings[i] for i in ids}
            reference = reference_scores(sub_refs, sub_cands)
            print(f"\n[{subset}: {len(ids)} images]  |minicap - pycocoevalcap| on the same PTB tokens"
                  "  (corpus / max per-image / mean per-image)")
            for label, params in settings:
                diffs = compare(sub_refs, sub_cands, reference, params)
                if params is METEOR_1_5:
                    for name in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr"):
                        print(f"  {name:18} {diffs[name][0]:.1e} / {diffs[name][1]:.1e} / {diffs[name][2]:.1e}"
                              f"   (pycocoevalcap corpus {reference[name][0]:.4f})")
                print(f"  with {label}:")
                for name in ("METEOR", "METEOR-exact-stem"):
                    target = "Java METEOR 1.5 as shipped" if name == "METEOR" else 'Java -m "exact stem"'
                    shown = " / ".join(f"{x:.4f}" if x >= 1e-4 else f"{x:.1e}" for x in diffs[name])
                    print(f"    vs {target:28} {shown}"
                          f"   (Java corpus {reference[name][0]:.4f})")
    except MinicapError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
