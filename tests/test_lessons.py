"""Every lesson runs top to bottom in fast mode (MINICAP_FAST=1) without raising."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py"))


def test_there_are_lessons():
    assert len(LESSONS) >= 2


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_in_fast_mode(lesson, tmp_path):
    env = dict(os.environ, MINICAP_FAST="1", MPLBACKEND="Agg", MINICAP_LESSON_FIGURES=str(tmp_path))
    # one BLAS thread: the lessons' matrices are small, and on a busy 2-core runner OpenBLAS threads
    # made an LSTM step ~100x slower
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    # run the lessons against this checkout (minicap/ and kernels/), whatever copy is installed
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, str(lesson)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{lesson.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert list(tmp_path.glob("*.png")), f"{lesson.name} produced no figure"
