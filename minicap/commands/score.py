"""`minicap score FILE.json [--json]`: score candidate captions against references.

FILE holds one JSON object:

    {"refs":  {"img1": ["a dog runs on the grass", "a brown dog running"], ...},
     "cands": {"img1": "a dog running on grass", ...}}

It prints BLEU-1..4, METEOR, ROUGE-L and CIDEr (CIDEr-D) for the images in "cands"; with
--json, one JSON object with exactly those keys (fractions in [0, 1] except CIDEr).
"""
import json


def configure(parser):
    parser.add_argument("file", metavar="FILE.json",
                        help='JSON object {"refs": {id: [caption, ...]}, "cands": {id: caption}}')
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object with the seven scores instead of a table")


def load_score_file(path):
    """Read and check a score file. Returns (refs, cands); raises MinicapError naming the file."""
    from minicap.errors import MinicapError
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise MinicapError(f"{path}: no such file; give a JSON file with \"refs\" and \"cands\"") from None
    except (OSError, UnicodeDecodeError) as err:
        raise MinicapError(f"{path}: cannot read it as UTF-8 text ({err})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise MinicapError(f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    if not isinstance(data, dict) or "refs" not in data or "cands" not in data:
        raise MinicapError(f'{path}: expected a JSON object with "refs" and "cands", e.g. '
                           '{"refs": {"img1": ["a dog runs"]}, "cands": {"img1": "a dog running"}}')
    for key, what in (("refs", "image id -> list of reference captions"), ("cands", "image id -> candidate caption")):
        if not isinstance(data[key], dict):
            raise MinicapError(f'{path}: "{key}" must be an object ({what}), found {type(data[key]).__name__}')
    return data["refs"], data["cands"]


def run(args):
    from minicap.metrics.score import METRIC_NAMES, score_corpus_and_images
    refs, cands = load_score_file(args.file)
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
