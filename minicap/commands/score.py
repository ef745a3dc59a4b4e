"""`minicap score FILE.json [--json]`: score candidate captions against references.

FILE holds one JSON object:

    {"refs":  {"img1": ["a dog runs on the grass", "a brown dog running"], ...},
     "cands": {"img1": "a dog running on grass", ...}}

It prints BLEU-1..4, METEOR, ROUGE-L and CIDEr (CIDEr-D) for the images in "cands"; with
--json, one JSON object with exactly those keys (fractions in [0, 1] except CIDEr).
The file is read and checked (size, JSON, shape, caption lengths) by read_score_file and
tokenize_corpus in minicap.metrics.score: every bad input is one line naming the file.
"""
import json


def configure(parser):
    parser.add_argument("file", metavar="FILE.json",
                        help='JSON object {"refs": {id: [caption, ...]}, "cands": {id: caption}}')
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object with the seven scores instead of a table")


def run(args):
    from minicap.metrics.score import METRIC_NAMES, read_score_file, score_corpus_and_images
    refs, cands = read_score_file(args.file)
    corpus, _ = score_corpus_and_images(refs, cands, where=args.file)
    if args.json:
        print(json.dumps(corpus))
    else:
        ignored = len(set(refs) - set(cands))
        note = f" ({ignored} reference image(s) without a candidate ignored)" if ignored else ""
        print(f"{len(cands)} images scored{note}")
        for name in METRIC_NAMES:
            print(f"{name:8} {corpus[name]:.4f}")
    return 0
