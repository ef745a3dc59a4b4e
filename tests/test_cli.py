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
    """`minicap gradcheck | head -1`: the reader leaves early; no BrokenPipeError traceback, exit 141.

    A race the test cannot rule out: if the machine stalls this process between reading the first line
    and closing the pipe, the child may write everything into the pipe's buffer and exit 0 before the
    reader has gone; then the closed-pipe case never happened, and the attempt is repeated."""
    import subprocess
    import sys
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-u", "-m", "minicap", "gradcheck"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)   # -u: each line written at once
        proc.stdout.readline()
        proc.stdout.close()                      # the reader goes away
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=120)
        if code != 0:
            break
    assert code == 141 and "Traceback" not in err, (code, err)
