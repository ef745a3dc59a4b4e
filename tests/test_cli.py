"""The `minicap` command's process set-up."""
import os
import subprocess
import sys

from minicap import cli


def test_one_blas_thread_unless_the_user_chose(monkeypatch):
    for name in cli.BLAS_THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    cli._default_to_one_blas_thread()
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1" and os.environ["MKL_NUM_THREADS"] == "1"
    for name in cli.BLAS_THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    cli._default_to_one_blas_thread()
    assert "OPENBLAS_NUM_THREADS" not in os.environ and os.environ["OMP_NUM_THREADS"] == "4"


def test_the_command_does_not_import_numpy_before_setting_threads():
    """BLAS reads its thread count once, when NumPy loads: importing the CLI must not load NumPy."""
    code = "import sys, minicap.cli; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_closed_pipe_stops_quietly():
    """`minicap gradcheck | head -1`: the reader leaves early; no BrokenPipeError traceback."""
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-u", "-m", "minicap", "gradcheck"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()                      # the reader goes away
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err, err   # -u: each line written at once
