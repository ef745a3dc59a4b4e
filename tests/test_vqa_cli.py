"""`minicap train vqa`, `minicap ask`, and `minicap evaluate` on a VQA checkpoint (plumbing, on a tiny
random encoder and a few steps), and the localisation score on hand-made attention."""
import json

import numpy as np
import pytest

from minicap.checkpoint import load_checkpoint
from minicap.cli import main
from minicap.commands import vqa as cmd
from minicap.data.vqa_scenes import FAMILIES, make_vqa_scenes

TINY = ["--train-size", "40", "--val-size", "10", "--embed", "4", "--hidden", "6", "--attention-size", "5",
        "--mlp", "7", "--batch", "8", "--eval-every", "3"]



@pytest.fixture(scope="module")
def trained(tmp_path_factory, encoder_path):
    root = tmp_path_factory.mktemp("runs")
    for model in ("san", "naive"):
        assert main(["train", "vqa", "--model", model, "--steps", "6", "--out", str(root / model),
                     "--encoder", str(encoder_path), "--cache", str(root / "cache"), *TINY]) == 0
    return root


def test_train_writes_a_vqa_checkpoint_and_resumes(trained, encoder_path, capsys):
    ck = load_checkpoint(trained / "san" / "last.npz", kind="vqa")
    assert ck.step == 6 and ck.config["model"]["model"] == "san" and ck.config["model"]["hops"] == 2
    assert main(["train", "vqa", "--model", "san", "--steps", "9", "--out", str(trained / "san"), "--resume",
                 "--encoder", str(encoder_path), "--cache", str(trained / "cache")]) == 0
    assert load_checkpoint(trained / "san" / "last.npz").step == 9
    # a model option cannot change on resume
    assert main(["train", "vqa", "--model", "san", "--hops", "1", "--steps", "12", "--out", str(trained / "san"),
                 "--resume", "--cache", str(trained / "cache")]) == 2
    assert "hops" in capsys.readouterr().err


def test_evaluate_dispatches_on_a_vqa_checkpoint(trained, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(trained / "san"), "--split", "novel", "--n", "30", "--json",
                 "--cache", str(trained / "cache")]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores["per_family"]) <= set(FAMILIES) and 0 <= scores["accuracy"] <= 1
    assert scores["attention_localisation"] is not None
    assert main(["evaluate", str(trained / "naive" / "last.npz"), "--n", "20", "--json",
                 "--cache", str(trained / "cache")]) == 0
    assert json.loads(capsys.readouterr().out)["attention_localisation"] is None


def test_ask_prints_top3_and_draws_the_hops(trained, tmp_path, capsys):
    out = tmp_path / "ask.png"
    assert main(["ask", str(trained / "san"), "test:3", "what digit is left of the seven ?",
                 "--attention-png", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("what digit is left of the seven ? -> ") and len(lines) >= 4
    assert out.stat().st_size > 0


def test_ask_names_an_unknown_word_and_refuses_a_figure_without_attention(trained, capsys):
    assert main(["ask", str(trained / "san"), "test:0", "is there a purple ?"]) == 2
    assert "'purple'" in capsys.readouterr().err
    assert main(["ask", str(trained / "naive"), "test:0", "is there a one ?", "--attention-png", "x.png"]) == 2
    assert "attention" in capsys.readouterr().err


def test_localisation_counts_the_weight_on_the_focus_cell():
    data = make_vqa_scenes("test", 60)
    overlap = cmd.cell_overlap()
    np.testing.assert_allclose(overlap.sum(axis=1), 1)
    # attention spread evenly over the regions of the focus cell: localised; on the opposite cell: not
    on = np.stack([overlap[:, max(k, 0)] / overlap[:, max(k, 0)].sum() for k in data.focus])
    off = np.stack([overlap[:, 3 - max(k, 0)] / overlap[:, 3 - max(k, 0)].sum() for k in data.focus])
    C = 17
    probs = np.eye(C)[data.answers]
    assert cmd.score(probs, [off, on], data)["attention_localisation"] == 1.0
    assert cmd.score(probs, [on, off], data)["attention_localisation"] == 0.0
    assert cmd.score(probs, [on], data)["accuracy"] == 1.0


def test_train_evaluate_and_ask_on_a_users_own_file(tmp_path, encoder_path, capsys):
    from PIL import Image
    rng = np.random.default_rng(0)
    entries = []
    for i in range(24):
        name = f"img{i % 6}.png"
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / name)
        entries.append({"image": name, "question": f"is it {'bright' if i % 2 else 'dark'} ?",
                        "answer": "yes" if i % 3 else "no", "split": ("train", "train", "val", "test")[i % 4]})
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"questions": entries}))
    out = tmp_path / "run"
    assert main(["train", "vqa", "--model", "san", "--data", str(path), "--steps", "4", "--out", str(out),
                 "--encoder", str(encoder_path), "--cache", str(tmp_path / "cache"), *TINY]) == 0
    ck = load_checkpoint(out / "last.npz")
    assert ck.config["answers"] == ["no", "yes"] and ck.config["data"]["name"] == "file"
    capsys.readouterr()
    assert main(["evaluate", str(out), "--split", "test", "--json", "--cache", str(tmp_path / "cache")]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["n"] == 6 and scores["per_family"] == {} and scores["attention_localisation"] is None
    assert main(["evaluate", str(out), "--split", "novel", "--cache", str(tmp_path / "cache")]) == 2
    assert main(["ask", str(out), str(tmp_path / "img0.png"), "is it dark ?"]) == 0   # 40x50 RGB, read as training did
    assert capsys.readouterr().out.startswith("is it dark ? -> ")
    assert main(["ask", str(out), "test:0", "is it dark ?"]) == 2      # an mnist-vqa scene: not this model's data
    assert "give an image file" in capsys.readouterr().err
    assert main(["ask", str(out), str(tmp_path / "img0.png"), "is it purple ?"]) == 2
    assert "'purple'" in capsys.readouterr().err
    assert main(["train", "vqa", "--data", "mine.txt", "--out", str(tmp_path / "x")]) == 2
