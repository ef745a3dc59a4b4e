"""min-char-rnn and the LSTM language model: gradients, truncated BPTT, learning, exact resume, the CLI."""
import numpy as np
import pytest

from minicap import MinicapError
from minicap.checkpoint import load_checkpoint
from minicap.cli import main
from minicap.gradcheck import check_model
from minicap.models import charrnn
from minicap.commands.charrnn import DEFAULT_TEXT, read_text
from minicap.optim import Adagrad
from minicap.train import Run, train

V, N, T = 7, 3, 6
TEXT = "the cat sat on the mat. the dog sat on the log.\n" * 4


def random_params(model, rng):
    """Random params of the right shapes, biases included (a wrong bias gradient must not hide behind zeros)."""
    shapes = charrnn.rnn_init(V, rng, hidden_size=5) if model == "rnn" else \
        charrnn.lstm_init(V, rng, hidden_size=5, embed_size=4)
    return {name: rng.standard_normal(p.shape) * 0.5 for name, p in shapes.items()}


def random_batch(model, rng):
    H = 5
    batch = {"x": rng.integers(0, V, (N, T)), "y": rng.integers(0, V, (N, T)), "h0": rng.standard_normal((N, H)) * 0.5}
    if model == "lstm":
        batch["c0"] = rng.standard_normal((N, H))
    return batch


LOSSES = {"rnn": charrnn.rnn_loss, "lstm": charrnn.lstm_loss}


@pytest.mark.parametrize("model", ["rnn", "lstm"])
def test_whole_model_gradients_with_a_nonzero_initial_state(model):
    rng = np.random.default_rng(0)
    params = random_params(model, rng)
    batch = random_batch(model, rng)
    errors = check_model(LOSSES[model], params, batch, max_coords=30)
    assert set(errors) == set(params)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("model", ["rnn", "lstm"])
def test_gradient_of_the_initial_state(model):
    """d loss / d h0 (and c0): the path by which gradient would flow into the previous chunk."""
    rng = np.random.default_rng(1)
    params = random_params(model, rng)
    batch = random_batch(model, rng)
    m = charrnn.MODELS[model]
    keys = m.state_keys

    def loss_wrt_state(state, batch_, rng_):
        value, _, _, dstate = m.forward_backward(params, batch_["x"], batch_["y"], state)
        return value, dict(dstate)

    state = {k: batch[k + "0"] for k in keys}
    errors = check_model(loss_wrt_state, state, batch, max_coords=None)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("model", ["rnn", "lstm"])
def test_carried_state_joins_chunks_into_one_sequence(model):
    """Two chunks, the second starting from the state the first ended with, score exactly what one long
    sequence scores; and the gradient of the second chunk is right from that carried (non-zero) state."""
    rng = np.random.default_rng(2)
    params = random_params(model, rng)
    m = charrnn.MODELS[model]
    x, y = rng.integers(0, V, (N, 2 * T)), rng.integers(0, V, (N, 2 * T))
    state0 = {k: rng.standard_normal((N, 5)) * 0.5 for k in m.state_keys}
    whole, _, end_whole, _ = m.forward_backward(params, x, y, state0)
    first, _, carried, _ = m.forward_backward(params, x[:, :T], y[:, :T], state0)
    second, _, end_second, _ = m.forward_backward(params, x[:, T:], y[:, T:], carried)
    assert first + second == pytest.approx(whole, rel=1e-12)
    for k in m.state_keys:   # T and 2T steps are differently shaped products: close, not bit-equal
        np.testing.assert_allclose(end_second[k], end_whole[k], rtol=1e-12, atol=1e-13)
        assert np.abs(carried[k]).min() > 0
    batch = {"x": x[:, T:], "y": y[:, T:], **{k + "0": v for k, v in carried.items()}}
    errors = check_model(LOSSES[model], params, batch, max_coords=20)
    assert max(errors.values()) < 1e-6, errors


def test_decoding_step_matches_the_training_forward_pass():
    """The one-token step used for sampling computes the same distribution as teacher-forced training."""
    rng = np.random.default_rng(3)
    for model in ("rnn", "lstm"):
        params = random_params(model, rng)
        m = charrnn.MODELS[model]
        x = rng.integers(0, V, (2, 4))
        state = tuple(rng.standard_normal((2, 5)) for _ in m.state_keys)
        step = m.make_step(params)
        s = state
        for t in range(4):
            log_probs, s = step(x[:, t], s)
        # loss of target y at the last step alone, from the training pass
        y = rng.integers(0, V, (2, 4))
        full, _, final, _ = m.forward_backward(params, x, y, dict(zip(m.state_keys, state)))
        np.testing.assert_allclose(s[0], final["h"], rtol=1e-12, atol=1e-13)   # step by step vs all steps at once
        prefix, _, _, _ = m.forward_backward(params, x[:, :3], y[:, :3], dict(zip(m.state_keys, state)))
        last_step_loss = full - prefix
        assert last_step_loss == pytest.approx(-log_probs[np.arange(2), y[:, 3]].mean(), rel=1e-10)
        np.testing.assert_allclose(np.exp(log_probs).sum(axis=1), 1)


def test_rnn_overfits_hello(tmp_path):
    vocab = sorted(set("hello"))
    data = np.array([vocab.index(c) for c in "hello"])
    rng = np.random.default_rng(0)
    run = Run("charrnn", {}, charrnn.rnn_init(len(vocab), rng, hidden_size=10), Adagrad(0.1), rng)
    train(run, charrnn.make_train_step("rnn", data, 4, 1), 300, tmp_path, clip=("value", 5.0), log_every=1,
          progress=False)
    losses = [loss for _, loss in run.history]  # nats per character
    assert losses[0] > 1.0 and losses[-1] < 0.01
    sampled = charrnn.generate("rnn", run.params, [vocab.index("h")], 4, temperature=0)
    assert "".join(vocab[i] for i in sampled) == "ello"


def test_streams_carry_state_and_wrap_at_the_end_of_the_text():
    data = np.arange(20) % V
    rng = np.random.default_rng(0)
    run = Run("charrnn", {}, charrnn.lstm_init(V, rng, hidden_size=4, embed_size=3), Adagrad(0.1), rng)
    step = charrnn.make_train_step("lstm", data, seq_len=4, batch_size=2)
    step(run)
    np.testing.assert_array_equal(run.state["pos"], [4, 14])   # streams start at 0 and 20 // 2
    h_after_first = run.state["h"].copy()
    assert np.abs(h_after_first).min() > 0
    step(run)   # stream 1 would need data[14:19]: fits; then data[18:23] does not
    np.testing.assert_array_equal(run.state["pos"], [8, 18])
    step(run)
    np.testing.assert_array_equal(run.state["pos"], [12, 4])  # stream 1 wrapped to 0 (then moved on)
    with pytest.raises(ValueError, match="at least seq_len"):
        charrnn.make_train_step("rnn", data[:4], seq_len=4, batch_size=1)


# --- the command line ---------------------------------------------------------------------------
@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def train_cli(*args):
    return main(["train", "charrnn", "--sample-len", "20", *map(str, args)])


@pytest.mark.parametrize("model", ["rnn", "lstm"])
def test_resume_continues_the_exact_same_run(tmp_path, text_file, model, capsys):
    common = ["--text", text_file, "--model", model, "--hidden", 8, "--batch", 3, "--seq-len", 7, "--log-every", 5]
    assert train_cli(*common, "--steps", 16, "--out", tmp_path / "straight") == 0
    assert train_cli(*common, "--steps", 8, "--out", tmp_path / "split") == 0
    assert train_cli("--steps", 16, "--out", tmp_path / "split", "--resume") == 0  # settings come from the checkpoint
    a = load_checkpoint(tmp_path / "straight" / "last.npz", kind="charrnn")
    b = load_checkpoint(tmp_path / "split" / "last.npz", kind="charrnn")
    assert a.step == b.step == 16
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    state_keys = [k for k in a.extra if k.startswith("state/")]
    assert {"state/pos", "state/h"} <= set(state_keys)
    for key in state_keys:
        np.testing.assert_array_equal(a.extra[key], b.extra[key])  # the carried hidden state, stream positions
    out = capsys.readouterr().out
    assert "resuming" in out and "nats/char" in out


def test_training_prints_loss_and_samples_and_sample_command_reads_the_checkpoint(tmp_path, text_file, capsys):
    out_dir = tmp_path / "run"
    assert train_cli("--text", text_file, "--steps", 400, "--log-every", 200, "--hidden", 32, "--out", out_dir) == 0
    printed = capsys.readouterr().out
    losses = [float(line.split()[3]) for line in printed.splitlines() if line.startswith("step ")]
    assert len(losses) == 2 and losses[1] < losses[0]
    ck = load_checkpoint(out_dir / "last.npz", kind="charrnn")
    assert ck.config["vocab"] == sorted(set(TEXT)) and ck.config["model"] == "rnn"

    assert main(["sample", str(out_dir / "last.npz"), "--n", "50", "--seed", "1", "--prime", "the "]) == 0
    text = capsys.readouterr().out
    assert text.startswith("the ") and len(text.rstrip("\n")) >= 50 and set(text) <= set(TEXT) | {"\n"}
    assert main(["sample", str(out_dir), "--n", "30", "--temperature", "0"]) == 0
    greedy_a = capsys.readouterr().out
    assert main(["sample", str(out_dir), "--n", "30", "--temperature", "0", "--seed", "5"]) == 0
    assert capsys.readouterr().out == greedy_a


def test_word_level_lstm(tmp_path, text_file, capsys):
    out_dir = tmp_path / "words"
    assert train_cli("--text", text_file, "--model", "lstm", "--level", "word", "--steps", 6, "--seq-len", 5,
                     "--hidden", 8, "--embed", 4, "--batch", 2, "--out", out_dir) == 0
    assert "nats/word" in capsys.readouterr().out
    assert main(["sample", str(out_dir), "--n", "5", "--prime", "The cat", "--seed", "0"]) == 0
    words = capsys.readouterr().out.split()
    assert words[:2] == ["the", "cat"] and len(words) == 7 and set(words) <= set(TEXT.replace(".", "").split())


def test_sample_rejects_unknown_prime_characters(tmp_path, text_file, capsys):
    assert train_cli("--text", text_file, "--steps", 2, "--out", tmp_path / "r") == 0
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "r"), "--prime", "the Zebra!"]) == 2
    err = capsys.readouterr().err
    assert "4 character(s) the model has never seen: '!', 'Z', 'b', 'r'" in err
    assert main(["sample", str(tmp_path / "r"), "--temperature", "-1"]) == 2
    assert "temperature" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    (b"", "is empty"),
    (b"  \n\n ", "is empty"),
    (b"caf\xe9 au lait", "not valid UTF-8"),
    (b"short", "needs at least"),
])
def test_bad_text_files_give_clear_errors(tmp_path, capsys, content, message):
    path = tmp_path / "bad.txt"
    if content is not None:
        path.write_bytes(content)
    assert train_cli("--text", path, "--steps", 2, "--out", tmp_path / "r") == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err


def test_resume_mistakes_give_clear_errors(tmp_path, text_file, capsys):
    out_dir = tmp_path / "r"
    assert train_cli("--resume", "--text", text_file, "--out", out_dir) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert train_cli("--text", text_file, "--steps", 2, "--out", out_dir) == 0
    assert train_cli("--text", text_file, "--steps", 4, "--out", out_dir) == 2
    assert "--resume" in capsys.readouterr().err
    assert train_cli("--text", text_file, "--steps", 4, "--out", out_dir, "--resume", "--hidden", 7) == 2
    assert "hidden" in capsys.readouterr().err
    other = tmp_path / "other.txt"
    other.write_text(TEXT + "more", encoding="utf-8")
    assert train_cli("--text", other, "--steps", 4, "--out", out_dir, "--resume") == 2
    assert "not the text" in capsys.readouterr().err


def test_default_text_ships_and_trains(tmp_path, capsys):
    text = read_text(DEFAULT_TEXT)
    assert len(text) > 50_000
    assert train_cli("--steps", 3, "--log-every", 3, "--out", tmp_path / "r") == 0
    assert "step 3: loss" in capsys.readouterr().out


def test_read_text_errors_name_the_file(tmp_path):
    with pytest.raises(MinicapError, match="is not a file"):
        read_text(tmp_path)


@pytest.mark.slow
def test_default_rnn_learns_words(tmp_path, capsys):
    """The default command for 20000 steps: the loss falls well below the unigram entropy."""
    assert train_cli("--steps", 20000, "--log-every", 10000, "--out", tmp_path / "r") == 0
    losses = [float(line.split()[3]) for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert losses[-1] < 2.3
