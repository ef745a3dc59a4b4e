"""`minicap gradcheck` as a user runs it."""
import json

from minicap.cli import main
from minicap.gradcheck_cases import LAYER_CASES


def test_gradcheck_json_lists_every_layer_and_passes(capsys):
    assert main(["gradcheck", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(LAYER_CASES)
    assert all(set(r) == {"name", "max_rel_error", "passed"} and r["passed"] for r in rows)


def test_gradcheck_table_and_unknown_layer(capsys):
    assert main(["gradcheck", "--layer", "lstm_step"]) == 0
    assert "lstm_step" in capsys.readouterr().out
    assert main(["gradcheck", "--layer", "nope"]) == 2
    assert "unknown layer nope" in capsys.readouterr().err
