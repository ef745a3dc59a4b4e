"""The workloads `minicap bench` times (the command: minicap/commands/bench.py) and how it times them,
with the NumPy reference and with the Numba kernels.

    minicap bench                                   every workload, both backends, float32 and float64
    minicap bench --workload lstm_seq --backend numba --dtype float32 --repeat 21
    minicap bench --json                            a JSON list of result objects
    minicap bench --cpu-time                        the process's CPU time instead of wall time (CLOCKS)

Each measurement: build the workload (fixed random data, seed 0) under the chosen backend; run one
iteration as a warm-up (Numba compiles its kernels here, or loads them from its cache); run one more
untimed; then time `repeat` single iterations with the garbage collector off and report the median
seconds per iteration. One iteration is forward + backward of the whole workload, no optimizer step.
The backends and dtypes of one workload take their timed iterations in turn (numpy, numba, numpy, ...),
so that load from other programs on a shared machine hits them alike.

    compile_s   the warm-up's extra time over a timed iteration (JIT compilation or cache loading;
                about 0 for numpy)
    peak_mb     the most memory one iteration holds at once (caches, gradients, temporaries), measured
                by tracemalloc during one extra iteration (NumPy reports its arrays to tracemalloc;
                the kernels allocate their arrays with NumPy too). The workload's inputs and
                parameters, allocated before, are not counted.

The GEMM ceiling. The `gemm` workload is one NumPy matrix product C = A B of two 1024 x 1024 matrices
(2 * 1024^3 floating-point operations), timed like the others: the speed this machine's BLAS reaches
on a large product, with the thread count of the run. `minicap bench` always times it first (for the
chosen dtypes and backends; its code is the same under both), so every run carries its own ceiling:

    gflops         the workload's floating-point operations (FLOPS below) / median_s / 1e9
    ceiling_share  gflops / the gemm rows' best gflops of the same dtype in the same run

Workloads are listed in WORKLOADS, name -> ("module:function", description), and their operation
counts in FLOPS, name -> "module:function" of a flops(dtype, quick) -> int. The counts are analytic and
cover the matrix products only (matrix-matrix and matrix-vector, 2 m n k each), which dominate every
workload; elementwise work (gate nonlinearities, softmax, exp of the filters, pooling, im2col) is not
counted, so a share of the ceiling is a lower bound on how well the products run. A product's
backward pass is counted as two products of its size (the gradient of each factor), so most products
count three times; one whose factor needs no gradient (frozen features, the images) counts twice.

A workload function takes (dtype, quick) and returns step(): one iteration, returning the loss. It gets its hot functions
from `minicap.backend` (or calls layers that do), so the same function times either backend. Sizes
are fixed (the same as the PyTorch peer in /work/shared/bench/torch_peer.py); quick=True shrinks them
to seconds-long smoke tests (the hidden --quick flag, used by the tests). To add a workload, write its
function and its flops function and add one line to WORKLOADS and one to FLOPS.
"""
import gc
import importlib
import statistics
import time
import tracemalloc

import numpy as np

from minicap import backend, nn
from minicap.errors import MinicapError

WORKLOADS = {
    "gemm": ("minicap.bench:gemm", "the machine's GEMM ceiling: NumPy's C = A B, A and B 1024 x 1024 (quick: 64)"),
    "lstm_seq": ("minicap.bench:lstm_seq",
                 "LSTM over T=16 steps, B=32, D=256, H=512; loss sum_t <h_t, R_t>; forward + backward"),
    "soft_attention_step": ("minicap.bench:soft_attention_step",
                            "Show-Attend-Tell soft-attention decoder, L=196 D=512 B=32 T=16 E=256 H=512 A=256 "
                            "V=1000; cross-entropy + doubly stochastic penalty; forward + backward"),
    "draw_step": ("minicap.models.draw:bench_step", "DRAW with filterbank attention, 28x28, B=64, T=16, read 2x2, "
                  "write 5x5, LSTMs 256, z 100; negative bound; forward + backward"),
    "conv_encoder": ("minicap.models.encoder:bench_conv_encoder",
                     "image encoder CNN (4 conv layers, 3 max-pools) on B=64 60x60 canvases; forward + backward"),
}
DTYPES = ("float32", "float64")
CEILING = "gemm"   # the workload whose rate is the ceiling that ceiling_share divides by

# name -> "module:function" of flops(dtype, quick): the floating-point operations of one iteration
FLOPS = {
    "gemm": "minicap.bench:gemm_flops",
    "lstm_seq": "minicap.bench:lstm_seq_flops",
    "soft_attention_step": "minicap.bench:soft_attention_step_flops",
    "draw_step": "minicap.models.draw:bench_flops",
    "conv_encoder": "minicap.bench:conv_encoder_flops",
}


# --- workloads -----------------------------------------------------------------------------------------
def gemm(dtype, quick=False):
    """The GEMM ceiling: one NumPy product C = A B of two n x n matrices (n = 1024; quick: 64), the
    same call under either backend. Returns step() -> C[0, 0]."""
    n = 64 if quick else 1024
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype)

    def step():
        return float((A @ B)[0, 0])

    return step


def gemm_flops(dtype, quick=False):
    """2 n^3: n^2 outputs, each n multiplications and n additions."""
    n = 64 if quick else 1024
    return 2 * n ** 3


def lstm_seq(dtype, quick=False):
    """An LSTM over a sequence and its gradients (as torch_peer.py's lstm_seq: nn.LSTMCell in a loop).

    x: (B, T, D) random, h0 = c0 = 0, loss = sum_t <h_t, R_t> for a fixed random R (B, T, H), so
    dL/dh = R. Backward gives dx, dWx, dWh, db (dx is computed, as the peer's x requires grad)."""
    T, B, D, H = (3, 2, 4, 5) if quick else (16, 32, 256, 512)
    rng = np.random.default_rng(0)
    bound = 1 / np.sqrt(H)  # PyTorch's LSTMCell initialisation: U(-1/sqrt(H), 1/sqrt(H))
    Wx = rng.uniform(-bound, bound, (D, 4 * H)).astype(dtype)
    Wh = rng.uniform(-bound, bound, (H, 4 * H)).astype(dtype)
    b = rng.uniform(-2 * bound, 2 * bound, 4 * H).astype(dtype)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    R = rng.standard_normal((B, T, H)).astype(dtype)
    zeros = np.zeros((B, H), dtype)
    forward, backward = backend.get("lstm_forward"), backend.get("lstm_backward")

    def step():
        (h, _), cache = forward(x, zeros, zeros, Wx, Wh, b)
        backward(R, zeros, cache)
        return float(np.sum(h * R))

    return step


def lstm_seq_flops(dtype, quick=False):
    """Per step: x Wx and h Wh forward (2 B 4H (D + H)); backward dx, dh and dWx, dWh (twice that)."""
    T, B, D, H = (3, 2, 4, 5) if quick else (16, 32, 256, 512)
    return 3 * T * 2 * B * 4 * H * (D + H)


def soft_attention_step(dtype, quick=False):
    """One training step of the Show-Attend-Tell soft-attention decoder (as torch_peer.py's
    soft_attention_captioner_step), forward + backward, no optimizer:

        h0, c0 = tanh(f_init(mean_i a_i));  a_proj = a Wa + ba (once per image)
        each step t:  z_t, alpha_t = soft attention (with the beta gate) on h_{t-1}
                      h_t, c_t = LSTM([E y_{t-1}; z_t], h_{t-1}, c_{t-1})
        logits = Lo (E y_{t-1} + Lh h_t + Lz z_t) + bo           (deep output, no tanh, all steps at once)
        loss = (sum_t CE(logits_t, y_t) + sum_i (1 - sum_t alpha_ti)^2) / B

    The features a are frozen CNN output (no gradient needed), as in the peer."""
    L, D, B, T, E, H, A, V = (5, 6, 2, 3, 4, 5, 3, 11) if quick else (196, 512, 32, 16, 256, 512, 256, 1000)
    rng = np.random.default_rng(0)

    def init(*shape):
        return rng.uniform(-1, 1, shape).astype(dtype) / np.sqrt(shape[0]).astype(dtype)

    p = dict(W_embed=rng.standard_normal((V, E)).astype(dtype), W_init_h=init(D, H), b_init_h=init(H),
             W_init_c=init(D, H), b_init_c=init(H), Wa=init(D, A), ba=init(A), Wh_att=init(H, A), w_att=init(A),
             W_beta=init(H, 1), b_beta=init(1), Wx=init(E + D, 4 * H), Wh=init(H, 4 * H), b=init(4 * H),
             Lh=init(H, E), Lz=init(D, E), Lo=init(E, V), bo=init(V))
    a = np.maximum(rng.standard_normal((B, L, D)), 0).astype(dtype)
    y = rng.integers(0, V, (B, T + 1))
    y_in, y_out, mask = y[:, :-1], y[:, 1:], np.ones((B, T))
    attend, attend_back = backend.get("soft_attention_forward"), backend.get("soft_attention_backward")
    lstm_step, lstm_gate_grads = backend.get("lstm_step_forward"), backend.get("lstm_step_gate_grads")
    ce_forward, ce_backward = backend.get("temporal_softmax_loss_forward"), backend.get("temporal_softmax_loss_backward")

    def step():
        # forward
        a_mean = a.mean(axis=1)
        h = np.tanh(a_mean @ p["W_init_h"] + p["b_init_h"])
        c = np.tanh(a_mean @ p["W_init_c"] + p["b_init_c"])
        h0, c0 = h, c
        a_proj = a @ p["Wa"] + p["ba"]
        emb, emb_cache = nn.embedding_forward(y_in, p["W_embed"])
        hs, zs, alphas, att_caches, lstm_caches = [], [], [], [], []
        for t in range(T):
            (z, alpha), att_cache = attend(a, a_proj, h, p["Wh_att"], p["w_att"], p["W_beta"], p["b_beta"])
            (h, c), lstm_cache = lstm_step(np.concatenate([emb[:, t], z], axis=1), h, c, p["Wx"], p["Wh"], p["b"])
            hs.append(h), zs.append(z), alphas.append(alpha), att_caches.append(att_cache), lstm_caches.append(lstm_cache)
        logits, out_cache = nn.deep_output_forward(emb, np.stack(hs, 1), np.stack(zs, 1), p["Lh"], p["Lz"], p["Lo"],
                                                   p["bo"], use_tanh=False)
        ce, ce_cache = ce_forward(logits, y_out, mask)
        penalty, penalty_cache = nn.doubly_stochastic_penalty_forward(np.stack(alphas, 1), mask)
        # backward
        grads = {}
        demb, dhs, dzs, grads["Lh"], grads["Lz"], grads["Lo"], grads["bo"] = nn.deep_output_backward(
            ce_backward(1.0, ce_cache), out_cache)
        dalphas = nn.doubly_stochastic_penalty_backward(1.0, penalty_cache)
        for name in ("Wh_att", "w_att", "W_beta", "b_beta"):
            grads[name] = np.zeros_like(p[name])
        da_proj = np.zeros_like(a_proj)
        dh, dc = np.zeros_like(h), np.zeros_like(c)
        das = np.empty((T, B, 4 * H), dtype)
        weights_T = nn.stacked_weights_T(p["Wx"], p["Wh"])
        for t in reversed(range(T)):
            das[t], dc = lstm_gate_grads(dhs[:, t] + dh, dc, lstm_caches[t])
            dx, dh = nn.lstm_input_grads(das[t], weights_T, E + D)   # one product (as captioner.step_backward)
            demb[:, t] += dx[:, :E]
            _, da_proj_t, dh_att, dWh_att, dw_att, dW_beta, db_beta = attend_back(
                dx[:, E:] + dzs[:, t], dalphas[:, t], att_caches[t], need_da=False)  # frozen features
            dh += dh_att
            da_proj += da_proj_t
            grads["Wh_att"] += dWh_att
            grads["w_att"] += dw_att
            grads["W_beta"] += dW_beta
            grads["b_beta"] += db_beta
        # the LSTM's weight gradients: one product over all T steps (as captioner.backward)
        grads["Wx"], grads["Wh"], grads["b"] = nn.lstm_weight_grads(lstm_caches, das)
        grads["Wa"] = a.reshape(-1, D).T @ da_proj.reshape(-1, A)
        grads["ba"] = da_proj.sum(axis=(0, 1))
        dpre_h, dpre_c = dh * (1 - h0 * h0), dc * (1 - c0 * c0)
        grads["W_init_h"], grads["b_init_h"] = a_mean.T @ dpre_h, dpre_h.sum(axis=0)
        grads["W_init_c"], grads["b_init_c"] = a_mean.T @ dpre_c, dpre_c.sum(axis=0)
        grads["W_embed"] = nn.embedding_backward(demb, emb_cache)
        return float(ce + penalty)

    return step


def soft_attention_step_flops(dtype, quick=False):
    """The products of soft_attention_step (the features a are frozen: their products count twice):

        once per image:  h0, c0 = f(mean a) (2 x 2 B D H), a_proj = a Wa (2 B L D A)       x 2
        each step:       h Wh_att (2 B H A), scores hidden w_att (2 B L A), beta (2 B H),
                         the LSTM [E y; z] Wx + h Wh (2 B (E + D + H) 4H)                     x 3
                         context z = sum_i alpha_i a_i (2 B L D)                             x 2
        deep output:     Lh h, Lz z (2 B T (H + D) E), Lo (2 B T E V)                        x 3
    """
    L, D, B, T, E, H, A, V = (5, 6, 2, 3, 4, 5, 3, 11) if quick else (196, 512, 32, 16, 256, 512, 256, 1000)
    per_image = 2 * (2 * 2 * B * D * H + 2 * B * L * D * A)
    per_step = 3 * (2 * B * H * A + 2 * B * L * A + 2 * B * H + 2 * B * (E + D + H) * 4 * H) + 2 * (2 * B * L * D)
    output = 3 * (2 * B * T * (H + D) * E + 2 * B * T * E * V)
    return per_image + T * per_step + output


def conv_encoder_flops(dtype, quick=False):
    """The products of the conv_encoder workload (minicap.models.encoder.bench_conv_encoder): each conv
    layer is one product of its im2col matrix, 2 N Ho Wo (k k C_in) C_out, and its backward pass forms
    dW and dx (the first layer's too): x 3; the classifier head 2 N C 10, x 3. Max-pooling: no products."""
    from minicap.models.encoder import DEFAULT_CHANNELS, LAYERS, N_CLASSES
    N, size = (2, 20) if quick else (64, 60)
    flops, c_in, channels = 0, 1, iter(DEFAULT_CHANNELS)
    for _, kind, k, stride, pad in LAYERS:
        size = (size + 2 * pad - k) // stride + 1
        if kind == "conv":
            c_out = next(channels)
            flops += 3 * 2 * N * size * size * k * k * c_in * c_out
            c_in = c_out
    return flops + 3 * 2 * N * c_in * N_CLASSES


# --- timing ------------------------------------------------------------------------------------------------
def load_workload(name):
    """The workload function registered under `name`."""
    if name not in WORKLOADS:
        raise MinicapError(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")
    module, function = WORKLOADS[name][0].split(":")
    return getattr(importlib.import_module(module), function)


def flops(name, dtype, quick=False):
    """The floating-point operations of one iteration of workload `name` (FLOPS), or None if not counted."""
    if name not in FLOPS:
        return None
    module, function = FLOPS[name].split(":")
    return int(getattr(importlib.import_module(module), function)(np.dtype(dtype), quick))


def add_rates(result, ceilings, quick=False):
    """Add gflops (flops / median_s / 1e9) and ceiling_share (gflops / ceilings[dtype], the gemm rate
    of the same dtype) to a result dict; None where the count or the ceiling is missing."""
    count = flops(result["workload"], result["dtype"], quick)
    result["flops"] = count
    result["gflops"] = count / result["median_s"] / 1e9 if count is not None else None
    ceiling = ceilings.get(result["dtype"])
    result["ceiling_share"] = result["gflops"] / ceiling if result["gflops"] is not None and ceiling else None
    return result


# The clocks a measurement can use: wall time (what a user waits), or the CPU time of this process (all
# its threads), which leaves out the time spent waiting for a core that other programs hold.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def measure(name, backend_name, dtype, repeat=7, quick=False, clock="wall"):
    """Time one workload with one backend and dtype. Returns the result dict (see the module docstring)."""
    return measure_interleaved(name, [(backend_name, dtype)], repeat, quick, clock)[0]


def measure_interleaved(name, configs, repeat=7, quick=False, clock="wall"):
    """Time one workload under several (backend, dtype) configs, taking their samples in turn
    (config 1, config 2, ..., config 1, ...), so that on a shared machine a burst of load from other
    programs lands on all of them alike and their ratios stay meaningful. Returns one result dict per config.

    clock: "wall" (default) or "cpu" (CLOCKS). On a machine shared with other busy programs, wall time
    includes the waits for a core, which hit a long iteration more than a short one; CPU time leaves
    them out (not the slowdown from sharing the caches). With several threads, CPU time adds up every
    thread's, so it is not a wall time."""
    if clock not in CLOCKS:
        raise MinicapError(f"unknown clock {clock!r}; choose one of: {', '.join(CLOCKS)}")
    now = CLOCKS[clock]
    steps, firsts, losses = [], [], []
    for backend_name, dtype in configs:
        with backend.using(backend_name):
            step = load_workload(name)(np.dtype(dtype), quick)
            start = time.perf_counter()
            losses.append(step())  # warm-up: compiles or loads the kernels
            firsts.append(time.perf_counter() - start)
            step()
        steps.append(step)
    samples = [[] for _ in configs]
    gc.collect()
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            for k, (backend_name, _) in enumerate(configs):
                with backend.using(backend_name):
                    start = now()
                    steps[k]()
                    samples[k].append(now() - start)
    finally:
        if gc_was_on:
            gc.enable()
    results = []
    for k, (backend_name, dtype) in enumerate(configs):
        with backend.using(backend_name):
            tracemalloc.start()
            try:
                steps[k]()
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        median = statistics.median(samples[k])
        results.append({"workload": name, "backend": backend_name, "dtype": str(np.dtype(dtype)), "median_s": median,
                        "peak_mb": peak / 2 ** 20, "compile_s": max(firsts[k] - median, 0.0),
                        "min_s": min(samples[k]), "repeat": repeat, "loss": losses[k], "clock": clock})
    return results
