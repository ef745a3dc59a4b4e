"""The student's public checks: `python -m minicap assignment check` in the assignment folder.

Each public test runs the student's function on the public inputs and compares with the reference
answers shipped in public_expected.npz (relative error, the bound of the test); backward tests also
report the finite differences of the student's own forward. The messages say what to look at:

    lstm_step_backward: dWh relative error 3.1e-02 (should be < 1e-06); against finite differences of
    your own forward: 2.9e-02: check the forget gate's term df = dc prev_c

A folder is checked with the minicap it contains: run from another minicap (the reference, say), the
check refuses, since it would not be checking the student's code.
"""
import json
import traceback
from pathlib import Path

import numpy as np

from minicap.assignments import PUBLIC_EXPECTED, STUDENT_FILE, manifest
from minicap.assignments.cases import Score, compare, run_test
from minicap.errors import MinicapError

MAX_EXPECTED_BYTES = 16 * 2 ** 20


def load_folder(folder):
    """(manifest, student file dict) of an assignment folder; MinicapError when it is not one, or when
    the running minicap is not the folder's own."""
    folder = Path(folder).resolve()
    info_path = folder / STUDENT_FILE
    if not info_path.is_file():
        raise MinicapError(f"{folder}: no {STUDENT_FILE} here; run the check in a folder made by "
                           f"`minicap assignment build`")
    if info_path.stat().st_size > 2 ** 20:
        raise MinicapError(f"{info_path}: too large for an assignment file")
    try:
        info = json.loads(info_path.read_text())
        name = info["assignment"]
    except (ValueError, KeyError, TypeError):
        raise MinicapError(f"{info_path}: not an assignment file (JSON with an 'assignment' name)") from None
    import minicap
    running = Path(minicap.__file__).resolve().parent
    if running != folder / "minicap":
        raise MinicapError(f"this is the minicap at {running.parent}, not the one in {folder}: run the check "
                           f"with the folder's own code (cd {folder} && python -m minicap assignment check, or "
                           f"pip install -e {folder} first)")
    return manifest(name), info


def _expected(folder):
    path = Path(folder) / PUBLIC_EXPECTED
    if not path.is_file() or path.stat().st_size > MAX_EXPECTED_BYTES:
        raise MinicapError(f"{path}: missing or too large; rebuild the folder with `minicap assignment build`")
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def describe_exception(function, err):
    """One line for an exception raised by the student's code."""
    if isinstance(err, NotImplementedError):
        return f"{function}: not written yet (raises NotImplementedError)"
    frames = traceback.extract_tb(err.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{function}: raised {type(err).__name__}: {err}{where}"


def run_public_test(folder, name, m=None, expected=None):
    """Run public test `name` of the folder's assignment; returns its Score."""
    from minicap.assignments import PUBLIC_SEED
    if m is None:
        m, _ = load_folder(folder)
    expected = _expected(folder) if expected is None else expected
    test = next(t for t in m["tests"] if t["name"] == name)
    want = {key.split("/", 1)[1]: value for key, value in expected.items() if key.split("/", 1)[0] == name}
    try:
        got, fd = run_test(test, PUBLIC_SEED)
    except Exception as err:   # the student's code: any error is feedback, not a crash of the check
        return Score(0.0, test["points"], {}, [describe_exception(test["function"], err)])
    return compare(test, want, got, fd)


def check_one(folder, name):
    """Run one public test and print its result with the messages (the sheets' check cells).
    Returns whether it passed."""
    score = run_public_test(folder, name)
    print(f"{name}: {'ok' if score.passed else 'not yet'} ({score.points:g}/{score.max_points:g})")
    for message in score.messages:
        print("   ", message)
    return score.passed


def check(folder, out=print):
    """Run every public test of the assignment folder; print one line per test and the score.
    Returns (points, max points)."""
    m, info = load_folder(folder)
    expected = _expected(folder)
    total = maximum = 0.0
    out(f"{m['name']}: {m['title']}")
    for name in info["public_tests"]:
        score = run_public_test(folder, name, m, expected)
        total, maximum = total + score.points, maximum + score.max_points
        mark = "ok  " if score.passed else "FAIL"
        out(f"  {mark} {name:36s} {score.points:.3g}/{score.max_points:g}")
        for message in score.messages:
            out(f"       {message}")
    hidden = sum(1 for t in m["tests"] if not t["public"])
    out(f"score: {total:.4g}/{maximum:g} on the public checks"
        + (f" ({hidden} more hidden tests are graded, on other inputs)" if hidden else ""))
    return total, maximum
