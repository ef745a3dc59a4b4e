"""The assignment manifests: which functions a student writes, which tests check them, for how many points.

Each manifest is plain data (a dict of strings, numbers and lists: no code), so it reads like a
config file and can be checked by tests/test_assignments.py:

    name        the command-line name (`minicap assignment build NAME`)
    title       one line for `minicap assignment list`
    sheet       the student's sheet, a percent-format .py in minicap/assignments/sheets/
    functions   {source file (relative to the repository root): [function names]}: every one has a
                `# BEGIN SOLUTION` / `# END SOLUTION` region in its body, which the student version
                replaces by `raise NotImplementedError(...)`
    tests       [{name, function, case, part, points, public, hint, hints}], where
                  case   a test case of minicap.assignments.cases (inputs built from a seed)
                  part   "forward": compare the outputs with the reference;
                         "backward": compare the gradients with the reference's (and report the
                         finite differences of the student's own forward beside them)
                  public True: also in the student's public checks (`minicap assignment check`, with
                         a fixed public seed); False: hidden, only the grader runs it
                  hint   what to look at when the test fails; hints: per output name, more precise

Points are whole numbers; a test with k outputs gives points * (outputs right) / k (partial credit).
"""

RNN_LSTM = {
    "name": "rnn_lstm",
    "title": "RNN and LSTM language model: rnn step/sequence, LSTM step, temporal softmax loss",
    "sheet": "rnn_lstm.py",
    "functions": {
        "minicap/nn/rnn.py": ["rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward"],
        "minicap/nn/lstm.py": ["lstm_step_forward", "lstm_step_backward", "lstm_step_gate_grads"],
        "minicap/nn/temporal.py": ["temporal_softmax_loss_forward", "temporal_softmax_loss_backward"],
    },
    "tests": [
        {"name": "rnn_step_forward", "function": "rnn_step_forward", "case": "rnn_step", "part": "forward",
         "points": 2, "public": True, "hint": "next_h = tanh(x Wx + prev_h Wh + b)"},
        {"name": "rnn_step_backward", "function": "rnn_step_backward", "case": "rnn_step", "part": "backward",
         "points": 3, "public": True, "hint": "da = dnext_h (1 - next_h^2), then the affine rule",
         "hints": {"dWx": "dWx = x^T da (not da^T x: check the shape)",
                   "dWh": "dWh = prev_h^T da (not da^T prev_h: check the shape)"}},
        {"name": "rnn_forward", "function": "rnn_forward", "case": "rnn_seq", "part": "forward",
         "points": 2, "public": True, "hint": "run rnn_step_forward for t = 0..T-1, carrying h"},
        {"name": "rnn_backward", "function": "rnn_backward", "case": "rnn_seq", "part": "backward",
         "points": 3, "public": False,
         "hint": "go t = T-1..0; the state's gradient is dh[:, t] + the one coming back from t+1; sum the "
                 "weight gradients over time"},
        {"name": "lstm_step_forward", "function": "lstm_step_forward", "case": "lstm_step", "part": "forward",
         "points": 2, "public": True, "hint": "gates in the order i, f, o, g; next_c = f prev_c + i g"},
        {"name": "lstm_step_backward", "function": "lstm_step_backward", "case": "lstm_step", "part": "backward",
         "points": 4, "public": True,
         "hint": "dc = dnext_c + dnext_h o (1 - tanh(c)^2); check the forget gate's term df = dc prev_c",
         "hints": {"dprev_c": "dprev_c = dc f",
                   "dWh": "dWh = prev_h^T da: check the forget gate's term df = dc prev_c"}},
        {"name": "temporal_softmax_loss_forward", "function": "temporal_softmax_loss_forward",
         "case": "temporal_softmax", "part": "forward", "points": 2, "public": True,
         "hint": "sum -mask log softmax(x)[y] over n and t, then divide by N (not by the number of words)"},
        {"name": "temporal_softmax_loss_backward", "function": "temporal_softmax_loss_backward",
         "case": "temporal_softmax", "part": "backward", "points": 2, "public": False,
         "hint": "dx = dloss mask (softmax(x) - onehot(y)) / N"},
    ],
}

ATTENTION_CAPTIONING = {
    "name": "attention_captioning",
    "title": "Captioning with attention: soft attention with the gate, doubly stochastic penalty, decoder step, beam search",
    "sheet": "attention_captioning.py",
    "functions": {
        "minicap/nn/attention.py": ["soft_attention_forward", "soft_attention_backward",
                                    "doubly_stochastic_penalty_forward", "doubly_stochastic_penalty_backward"],
        "minicap/models/captioner.py": ["step_forward"],
        "minicap/decode.py": ["beam_search"],
    },
    "tests": [
        {"name": "soft_attention_forward", "function": "soft_attention_forward", "case": "soft_attention_gated",
         "part": "forward", "points": 3, "public": True,
         "hint": "e = tanh(a_proj + h Wh) w, alpha = softmax over L, z = beta sum_i alpha_i a_i"},
        {"name": "soft_attention_backward", "function": "soft_attention_backward", "case": "soft_attention_gated",
         "part": "backward", "points": 4, "public": True,
         "hint": "through the gate first (dcontext = beta dz), then the softmax: de = alpha (dalpha - sum alpha dalpha)",
         "hints": {"dWh": "dWh = h^T (sum over L of dhidden): check the shape",
                   "dW_beta": "dW_beta = h^T dgate_logit, dgate_logit = (dz . context) beta (1 - beta)"}},
        {"name": "soft_attention_masked", "function": "soft_attention_forward", "case": "soft_attention_masked",
         "part": "forward", "points": 2, "public": False,
         "hint": "masked locations get score -inf (weight exactly 0) before the softmax"},
        {"name": "doubly_stochastic_penalty_forward", "function": "doubly_stochastic_penalty_forward",
         "case": "penalty", "part": "forward", "points": 2, "public": True,
         "hint": "(1/N) sum_n sum_i (1 - sum_t mask_t alpha_ti)^2: leave the padded steps out of the sum over t"},
        {"name": "doubly_stochastic_penalty_backward", "function": "doubly_stochastic_penalty_backward",
         "case": "penalty", "part": "backward", "points": 2, "public": False,
         "hint": "dalphas = -2 (1 - sum_t mask_t alpha_ti) mask_t / N: zero at padded steps"},
        {"name": "decoder_step", "function": "step_forward", "case": "decoder_step", "part": "forward",
         "points": 3, "public": True,
         "hint": "attend from h_{t-1}, gate z = beta c, then one LSTM step on [x_t; z_t]"},
        {"name": "beam_search", "function": "beam_search", "case": "beam_search", "part": "forward",
         "points": 4, "public": True,
         "hint": "keep the k best of the k*V candidates each step; a finished beam has one continuation: itself"},
    ],
}

DRAW_ATTENTION = {
    "name": "draw_attention",
    "title": "DRAW attention: Gaussian filterbank forward and backward, read and write, the Gaussian KL",
    "sheet": "draw_attention.py",
    "functions": {
        "minicap/nn/filterbank.py": ["filter_offsets", "_bank", "filterbank_forward", "_bank_backward",
                                     "filterbank_backward", "read_forward", "read_backward",
                                     "write_forward", "write_backward"],
        "minicap/models/aligndraw.py": ["gaussian_kl_forward", "gaussian_kl_backward"],
    },
    "tests": [
        {"name": "filterbank_forward", "function": "filterbank_forward", "case": "filterbank", "part": "forward",
         "points": 3, "public": True,
         "hint": "pixel coordinates count from 1 (a = 1..A) and filters i = 1..N: mu_i = g + (i - N/2 - 0.5) delta"},
        {"name": "filterbank_backward", "function": "filterbank_backward", "case": "filterbank", "part": "backward",
         "points": 4, "public": False,
         "hint": "dK K = (dF - sum_a dF F) F; dmu = sum_a dK K (a - mu) / sigma^2"},
        {"name": "read_forward", "function": "read_forward", "case": "filterbank_read", "part": "forward",
         "points": 2, "public": True, "hint": "gamma Fy x Fx^T"},
        {"name": "read_backward", "function": "read_backward", "case": "filterbank_read", "part": "backward",
         "points": 3, "public": True, "hint": "with T = Fy x, G = T Fx^T: dT = dG Fx, dFx = dG^T T, dFy = dT x^T"},
        {"name": "write_forward", "function": "write_forward", "case": "filterbank_write", "part": "forward",
         "points": 2, "public": True, "hint": "Fy^T w Fx / gamma"},
        {"name": "write_backward", "function": "write_backward", "case": "filterbank_write", "part": "backward",
         "points": 3, "public": False, "hint": "with Q = w Fx: dQ = Fy dP, dw = dQ Fx^T, dgamma = -sum(w dw) / gamma"},
        {"name": "gaussian_kl_forward", "function": "gaussian_kl_forward", "case": "gaussian_kl", "part": "forward",
         "points": 2, "public": True,
         "hint": "sum_j log sigma_p - log sigma_q + (sigma_q^2 + (mu_q - mu_p)^2) / (2 sigma_p^2) - 1/2"},
        {"name": "gaussian_kl_backward", "function": "gaussian_kl_backward", "case": "gaussian_kl", "part": "backward",
         "points": 2, "public": False, "hint": "d/dlog sigma_q = sigma_q^2 / sigma_p^2 - 1"},
    ],
}

MANIFESTS = {m["name"]: m for m in (RNN_LSTM, ATTENTION_CAPTIONING, DRAW_ATTENTION)}
