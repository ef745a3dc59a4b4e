"""`minicap assignment list|build|check`: course assignments made from minicap's own code.

    minicap assignment list                          the assignments, their functions and points
    minicap assignment build NAME --out DIR          the student folder (docs/assignments.md)
    python -m minicap assignment check [--dir DIR]   the public checks, run by the student in DIR

Grading a class is `minicap grade` (minicap/commands/grade.py).
"""


def configure(parser):
    what = parser.prog.split()[-1]
    parser.set_defaults(_assignment_command=what)
    if what == "build":
        parser.add_argument("name", metavar="NAME", help="the assignment (see `minicap assignment list`)")
        parser.add_argument("--out", required=True, metavar="DIR", help="a new (or empty) folder to write")
    elif what == "check":
        parser.add_argument("--dir", default=".", metavar="DIR",
                            help="the assignment folder (default: the current folder)")


def run(args):
    what = args._assignment_command
    if what == "list":
        from minicap.assignments.manifests import MANIFESTS
        for m in MANIFESTS.values():
            points = sum(t["points"] for t in m["tests"])
            public = sum(1 for t in m["tests"] if t["public"])
            print(f"{m['name']}: {m['title']}")
            print(f"    {len(m['tests'])} tests ({public} public), {points} points; functions:")
            for path, functions in m["functions"].items():
                print(f"      {path}: {', '.join(functions)}")
        return 0
    if what == "build":
        from minicap.assignments.build import build
        files = build(args.name, args.out)
        print(f"wrote the student version of {args.name} to {args.out}; the student edits: {', '.join(files)}")
        print(f"check it: cd {args.out} && python -m minicap assignment check")
        return 0
    from minicap.assignments.check import check
    total, maximum = check(args.dir)
    return 0 if total == maximum else 1
