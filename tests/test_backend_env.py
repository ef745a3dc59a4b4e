"""MINICAP_BACKEND: a bad value is one clear error line at first use, never a traceback."""
import os
import subprocess
import sys

import pytest

from minicap import backend
from minicap.cli import main
from minicap.errors import MinicapError


@pytest.fixture
def fresh_backend(monkeypatch):
    """The backend module as if just imported: MINICAP_BACKEND not read yet (restored after)."""
    monkeypatch.setattr(backend, "_current", None)
    return monkeypatch


def test_a_bogus_backend_is_a_minicap_error_at_first_use(fresh_backend):
    fresh_backend.setenv("MINICAP_BACKEND", "bogus")
    for first_use in (backend.current, lambda: backend.get("lstm_step_forward")):
        with pytest.raises(MinicapError, match=r"^MINICAP_BACKEND='bogus' is not a backend; set it to "
                                               r"one of: numpy, numba"):
            first_use()
    with backend.using("numpy"):   # an explicit choice still works, and is undone after
        assert backend.current() == "numpy"
    assert backend._current is None
    with pytest.raises(MinicapError, match="unknown backend 'cuda'; choose one of: numpy, numba"):
        backend.use("cuda")


@pytest.mark.parametrize("value, name", [("", "numba"), ("numpy", "numpy"), (" NumPy ", "numpy"),
                                         ("NUMBA", "numba")])
def test_backend_names_ignore_case_and_spaces(fresh_backend, value, name):
    fresh_backend.setenv("MINICAP_BACKEND", value)
    assert backend.current() == name


def test_the_command_line_prints_one_line_for_a_bogus_backend(fresh_backend, capsys):
    fresh_backend.setenv("MINICAP_BACKEND", "bogus")
    assert main(["gradcheck", "--layer", "conv2d"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minicap: error: MINICAP_BACKEND='bogus' is not a backend") and len(err.splitlines()) == 1


def test_a_bogus_backend_in_a_fresh_process(tmp_path):
    env = dict(os.environ, MINICAP_BACKEND="bogus")
    imported = subprocess.run([sys.executable, "-c", "import minicap.backend, minicap.nn, minicap.cli"],
                              env=env, capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr   # importing never fails: the check is at first use
    ran = subprocess.run([sys.executable, "-m", "minicap", "gradcheck", "--layer", "conv2d"],
                         env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert ran.returncode == 2
    assert ran.stderr.strip().splitlines() == [
        "minicap: error: MINICAP_BACKEND='bogus' is not a backend; set it to one of: numpy, numba "
        "(or unset it for the default, numba)"]
