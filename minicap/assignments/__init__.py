"""Course assignments built from minicap's own code (docs/assignments.md).

    manifests.py  the assignments: which functions the student writes, the tests, the points
    strip.py      the solution stripper (`# BEGIN SOLUTION` / `# END SOLUTION` -> NotImplementedError)
    cases.py      the test cases and the engine that runs and scores one test
    build.py      `minicap assignment build`: the student folder
    check.py      `minicap assignment check`: the public tests, run by the student
    runner.py     what runs inside a graded submission's own process (no expected values there)
    grade.py      `minicap grade`: every submission in its own limited process, hidden tests, CSV/JSON
    sheets/       the students' sheets (percent-format .py, like lessons/)
"""
from pathlib import Path

from minicap.errors import MinicapError

PUBLIC_SEED = 20260118            # the public checks' inputs (the hidden tests use per-student seeds)
STUDENT_FILE = "assignment.json"  # in a student folder: which assignment it is, its public tests
PUBLIC_EXPECTED = "public_expected.npz"
SHEETS_DIR = Path(__file__).resolve().parent / "sheets"


def manifest(name):
    """The manifest of assignment `name` (minicap.assignments.manifests); MinicapError if unknown."""
    from minicap.assignments.manifests import MANIFESTS
    if name not in MANIFESTS:
        raise MinicapError(f"no assignment {name!r}; the assignments are: {', '.join(MANIFESTS)}")
    return MANIFESTS[name]


def reference_root():
    """The repository root the running minicap was imported from (minicap/, kernels/, data/ below it)."""
    return Path(__file__).resolve().parents[2]


def left_out_kernels(m):
    """The kernel modules ("kernels.lstm", ...) holding a Numba twin of a function of manifest `m`: the
    student version leaves them out, and every hot function they hold runs the NumPy code."""
    from minicap.backend import HOT_FUNCTIONS
    names = {f for functions in m["functions"].values() for f in functions}
    return sorted({HOT_FUNCTIONS[n][1].split(":")[0] for n in names if n in HOT_FUNCTIONS})


def assigned_files(m):
    """The source files (relative paths, e.g. "minicap/nn/lstm.py") a student edits for manifest `m`."""
    return sorted(m["functions"])
