"""`minicap gradcheck`: check every layer's backward pass in float64 and print a table.

The cases (one small random float64 instance of each layer) are minicap/gradcheck_cases.py.
"""
import json

from minicap.gradcheck_cases import LAYER_CASES, TOLERANCE, check_case


def configure(parser):
    parser.add_argument("--json", action="store_true", help="print a JSON list of {name, max_rel_error, passed}")
    parser.add_argument("--layer", action="append", metavar="NAME",
                        help=f"check only this layer (repeatable); one of: {', '.join(LAYER_CASES)}")


def run(args):
    from minicap.errors import MinicapError
    names = args.layer or list(LAYER_CASES)
    unknown = [n for n in names if n not in LAYER_CASES]
    if unknown:
        raise MinicapError(f"unknown layer {', '.join(unknown)}; choose from: {', '.join(LAYER_CASES)}")
    if not args.json:   # the table row by row, as each layer is checked (a long run shows progress)
        print(f"{'layer':<28} {'max rel. error':>14}  {'worst input':<12} result   (float64, tolerance {TOLERANCE:g})")
    rows = []
    for name in names:
        errors = check_case(name)
        worst = max(errors.values())
        rows.append({"name": name, "max_rel_error": worst, "passed": bool(worst < TOLERANCE),
                     "worst_input": max(errors, key=errors.get)})
        if not args.json:
            r = rows[-1]
            print(f"{r['name']:<28} {r['max_rel_error']:>14.2e}  {r['worst_input']:<12} {'pass' if r['passed'] else 'FAIL'}")
    if args.json:
        print(json.dumps([{k: r[k] for k in ("name", "max_rel_error", "passed")} for r in rows], indent=1))
    else:
        failed = sum(not r["passed"] for r in rows)
        print(f"{len(rows) - failed} passed, {failed} failed")
    return 1 if any(not r["passed"] for r in rows) else 0
