"""`minicap bench`: the JSON it prints, its errors, and that both backends compute the same workload.

Speed is never asserted here (DESIGN.md: numbers come from `minicap bench`, not from timed tests); the
hidden --quick flag shrinks every workload to a smoke-test size.
"""
import json

import pytest

from minicap import bench
from minicap.cli import main

REQUIRED_KEYS = {"workload", "backend", "dtype", "median_s", "peak_mb"}


def run_json(capsys, *args):
    assert main(["bench", "--json", "--quick", "--repeat", "2", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def all_results():
    """One `minicap bench --json --quick` over every workload, backend and dtype, shared by the tests."""
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["bench", "--json", "--quick", "--repeat", "2"]) == 0
    return json.loads(out.getvalue())


def test_json_lists_every_workload_backend_and_dtype(all_results):
    results = all_results
    combos = {(r["workload"], r["backend"], r["dtype"]) for r in results}
    assert combos == {(w, b, d) for w in bench.WORKLOADS for b in ("numpy", "numba") for d in ("float32", "float64")}
    for r in results:
        assert REQUIRED_KEYS <= set(r)
        assert r["median_s"] > 0 and r["peak_mb"] >= 0 and r["compile_s"] >= 0
        assert r["min_s"] <= r["median_s"] and r["repeat"] == 2


def test_both_backends_compute_the_same_loss(all_results):
    loss = {(r["workload"], r["dtype"], r["backend"]): r["loss"] for r in all_results}
    for workload in bench.WORKLOADS:
        for dtype, tol in (("float32", 1e-4), ("float64", 1e-10)):
            numpy_loss, numba_loss = loss[(workload, dtype, "numpy")], loss[(workload, dtype, "numba")]
            assert numba_loss == pytest.approx(numpy_loss, rel=tol), (workload, dtype)


def test_filters_select_one_measurement(capsys):
    results = run_json(capsys, "--workload", "lstm_seq", "--backend", "numba", "--dtype", "float32")
    assert [(r["workload"], r["backend"], r["dtype"]) for r in results] == [("lstm_seq", "numba", "float32")]


def test_table_output_reports_the_speed_up(capsys):
    assert main(["bench", "--quick", "--repeat", "1", "--workload", "lstm_seq", "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    assert "median_ms" in out and "numpy / numba" in out


@pytest.mark.parametrize("backend_name", ["numpy", "numba"])
def test_peak_memory_sees_the_iterations_arrays(backend_name):
    result = bench.measure("lstm_seq", backend_name, "float64", repeat=1, quick=True)
    # caches and gradients of 3 steps of (2, 5) states: a few KiB that tracemalloc must see
    assert 1e-3 < result["peak_mb"] < 1


@pytest.mark.parametrize("args, message", [
    (["--workload", "no_such_workload"], "unknown workload"),
    (["--repeat", "0"], "--repeat"),
])
def test_bad_arguments_are_user_errors(capsys, args, message):
    assert main(["bench", "--quick", *args]) == 2
    assert message in capsys.readouterr().err


def test_every_registered_workload_loads():
    for name in bench.WORKLOADS:
        assert callable(bench.load_workload(name))
