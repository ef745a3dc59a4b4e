"""Build the student version of an assignment: `minicap assignment build NAME --out DIR`.

The folder it writes installs and runs as-is (`pip install -e DIR`, or `PYTHONPATH=DIR`):

    DIR/minicap/        a copy of the package; each marked region of the assignment's functions is
                        `raise NotImplementedError(...)` (signatures and docstrings kept); every other
                        marker line is removed and its reference code kept, so what is not assigned works
    DIR/kernels/        the Numba kernels, less the modules holding a twin of an assigned function;
                        minicap/backend.py of the copy maps every hot function of those modules to its
                        NumPy code, so the student's code is what runs with either backend
    DIR/data/           the shipped data files
    DIR/NAME.py         the sheet (percent-format: run it as a script, or open it as a notebook)
    DIR/tests/test_public.py, DIR/assignment.json, DIR/public_expected.npz
                        the public checks (`minicap assignment check`, or pytest), their reference answers
    DIR/setup.cfg, DIR/pyproject.toml, DIR/README.md
"""
import json
import shutil
from pathlib import Path

import numpy as np

from minicap.assignments import (PUBLIC_EXPECTED, PUBLIC_SEED, SHEETS_DIR, STUDENT_FILE, assigned_files,
                                 left_out_kernels, manifest, reference_root)
from minicap.assignments.strip import BEGIN, strip_source
from minicap.errors import MinicapError

IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")

BACKEND_PATCH = '''

# --- added by `minicap assignment build {name}` ------------------------------------------------------
# The Numba twins of the assigned functions are left out of this copy: every hot function whose twin
# lived in one of these kernel modules runs its NumPy code (the student's) with either backend.
ASSIGNMENT_LEFT_OUT_KERNELS = {left_out!r}
for _name, (_reference, _twin) in list(HOT_FUNCTIONS.items()):
    if _twin.split(":")[0] in ASSIGNMENT_LEFT_OUT_KERNELS:
        HOT_FUNCTIONS[_name] = (_reference, _reference)
'''

STUDENT_README = """# minicap assignment: {title}

This folder is minicap with some functions left for you to write: each one raises
`NotImplementedError` until you do. Their docstrings say what they take and return; the sheet
`{name}.py` explains the equations and runs the checks.

    pip install -e .                     # or: export PYTHONPATH=$PWD
    python -m minicap assignment check   # the public checks, with a score
    python {name}.py                     # the sheet (or open it as a notebook with jupytext)

Functions to write:

{functions}

Hand in this whole folder (or a .zip of it). Hidden tests check the same functions on other inputs:
passing the public checks is necessary, not sufficient.
"""

PUBLIC_TESTS_PY = '''"""The public checks of this assignment: `pytest tests/` runs the same checks as
`python -m minicap assignment check`, one test per function."""
from pathlib import Path

import pytest

from minicap.assignments import check

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", {names!r})
def test_public(name):
    result = check.run_public_test(ROOT, name)
    assert result.passed, "\\n".join(result.messages)
'''


def public_expected(m):
    """The reference answers of the manifest's public tests on the public seed: {"test/output": array}.
    Computed with the NumPy backend (the student's copy runs NumPy code for the assigned functions)."""
    from minicap import backend
    from minicap.assignments.cases import run_test
    expected = {}
    with backend.using("numpy"):
        for test in m["tests"]:
            if test["public"]:
                answers, _ = run_test(test, PUBLIC_SEED, fd=False)
                expected.update({f"{test['name']}/{k}": v for k, v in answers.items()})
    return expected


def build(name, out, root=None):
    """Write the student folder of assignment `name` to `out` (which must not exist or be empty).
    Returns the list of files written for the assigned functions (relative paths)."""
    m = manifest(name)
    root = Path(root) if root else reference_root()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MinicapError(f"{out}: exists and is not an empty folder; give a new folder to build into")
    out.mkdir(parents=True, exist_ok=True)
    left_out = left_out_kernels(m)

    shutil.copytree(root / "minicap", out / "minicap", ignore=IGNORE, dirs_exist_ok=True)
    skip = {module.split(".")[1] + ".py" for module in left_out}
    shutil.copytree(root / "kernels", out / "kernels", dirs_exist_ok=True,
                    ignore=lambda folder, names: set(IGNORE(folder, names)) | (skip & set(names)))
    if (root / "data").is_dir():
        shutil.copytree(root / "data", out / "data", ignore=IGNORE, dirs_exist_ok=True)
    for extra in ("setup.cfg", "pyproject.toml"):
        if (root / extra).exists():
            shutil.copy2(root / extra, out / extra)

    # strip the assigned regions, remove every other marker
    for path in sorted((out / "minicap").rglob("*.py")):
        source = path.read_text()
        if BEGIN not in source:
            continue
        relative = path.relative_to(out).as_posix()
        path.write_text(strip_source(source, m["functions"].get(relative, ()), name, relative))
    missing = [f for f in assigned_files(m) if not (out / f).exists()]
    if missing:
        raise MinicapError(f"assignment {name}: the manifest names files that do not exist: {', '.join(missing)}")
    backend_py = out / "minicap" / "backend.py"
    backend_py.write_text(backend_py.read_text() + BACKEND_PATCH.format(name=name, left_out=set(left_out)))

    # the sheet, the public checks, the README
    shutil.copy2(SHEETS_DIR / m["sheet"], out / f"{name}.py")
    public = [t["name"] for t in m["tests"] if t["public"]]
    (out / "tests").mkdir()
    (out / "tests" / "test_public.py").write_text(PUBLIC_TESTS_PY.format(names=public))
    np.savez(out / PUBLIC_EXPECTED, **public_expected(m))
    (out / STUDENT_FILE).write_text(json.dumps({
        "assignment": name, "title": m["title"], "public_seed": PUBLIC_SEED, "public_tests": public,
        "files": assigned_files(m), "kernels_left_out": left_out}, indent=2) + "\n")
    functions = "\n".join(f"- `{path}`: " + ", ".join(f"`{f}`" for f in fns) for path, fns in m["functions"].items())
    (out / "README.md").write_text(STUDENT_README.format(title=m["title"], name=name, functions=functions))
    return assigned_files(m)
