"""The one seam between the NumPy reference in minicap/ and the Numba kernels in kernels/.

A *hot function* is one the training loops spend their time in. Each has a NumPy reference (in
minicap/nn, what students read) and a Numba twin (in kernels/, same signature, same results). Code
that wants speed asks this module for the current implementation:

    from minicap import backend
    lstm_step_forward = backend.get("lstm_step_forward")

The backend is chosen by the environment variable MINICAP_BACKEND=numpy|numba (default numba), or
in code with `backend.use("numpy")`. Nothing else in minicap imports kernels/: a student can read
minicap/ top to bottom without meeting Numba.
"""
import contextlib
import importlib
import os

from minicap.errors import MinicapError

BACKENDS = ("numpy", "numba")

# hot function name -> (NumPy reference, Numba twin), as "module:function" strings.
HOT_FUNCTIONS = {}

# The captioner's sequence loops (issue 3): LSTM step and sequence, soft attention, masked softmax loss
HOT_FUNCTIONS.update({
    "lstm_step_forward": ("minicap.nn.lstm:lstm_step_forward", "kernels.lstm:lstm_step_forward"),
    "lstm_step_backward": ("minicap.nn.lstm:lstm_step_backward", "kernels.lstm:lstm_step_backward"),
    "lstm_step_gate_grads": ("minicap.nn.lstm:lstm_step_gate_grads", "kernels.lstm:lstm_step_gate_grads"),
    "lstm_forward": ("minicap.nn.lstm:lstm_forward", "kernels.lstm:lstm_forward"),
    "lstm_backward": ("minicap.nn.lstm:lstm_backward", "kernels.lstm:lstm_backward"),
    "soft_attention_forward": ("minicap.nn.attention:soft_attention_forward", "kernels.attention:soft_attention_forward"),
    "soft_attention_backward": ("minicap.nn.attention:soft_attention_backward", "kernels.attention:soft_attention_backward"),
    "temporal_softmax_loss_forward": ("minicap.nn.temporal:temporal_softmax_loss_forward",
                                      "kernels.softmax:temporal_softmax_loss_forward"),
    "temporal_softmax_loss_backward": ("minicap.nn.temporal:temporal_softmax_loss_backward",
                                       "kernels.softmax:temporal_softmax_loss_backward"),
})

# DRAW's Gaussian filterbank attention (issue 9)
HOT_FUNCTIONS.update({
    name: (f"minicap.nn.filterbank:{name}", f"kernels.filterbank:{name}")
    for name in ("filterbank_forward", "filterbank_backward", "read_forward", "read_backward",
                 "write_forward", "write_backward")
})

# DRAW's canvas: sigmoid(c) of the whole canvas at every drawing step (issue 20)
HOT_FUNCTIONS["sigmoid"] = ("minicap.nn.basic:sigmoid", "kernels.elementwise:sigmoid")

# The image encoder's convolution and max-pooling (issue 7)
HOT_FUNCTIONS.update({
    name: (f"minicap.nn.conv:{name}", f"kernels.conv:{name}")
    for name in ("conv2d_forward", "conv2d_backward", "max_pool_forward", "max_pool_backward")
})

_current = None   # the backend in use; None until first asked for (see current())
_cache = {}


def use(name):
    """Switch every hot function to the 'numpy' or 'numba' implementation."""
    global _current
    if name not in BACKENDS:
        raise MinicapError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    _current = name


def current():
    """The name of the backend in use.

    The first call reads MINICAP_BACKEND (unset or empty: numba; case and spaces are ignored). It
    is checked here, at first use, not when this module is imported: a bad value then raises
    MinicapError inside a command, and the command line prints one line
    `minicap: error: MINICAP_BACKEND='...' is not a backend; ...` instead of a traceback.
    """
    global _current
    if _current is None:
        value = os.environ.get("MINICAP_BACKEND", "")
        name = value.strip().lower() or "numba"
        if name not in BACKENDS:
            raise MinicapError(f"MINICAP_BACKEND={value!r} is not a backend; set it to one of: "
                               f"{', '.join(BACKENDS)} (or unset it for the default, numba)")
        _current = name
    return _current


def _load(path):
    module, function = path.split(":")
    return getattr(importlib.import_module(module), function)


def get(name, backend=None):
    """The implementation of hot function `name` for `backend` (default: the current one)."""
    backend = backend or current()
    if name not in HOT_FUNCTIONS:
        raise KeyError(f"{name!r} is not a hot function; known: {', '.join(sorted(HOT_FUNCTIONS))}")
    key = (name, backend)
    if key not in _cache:
        _cache[key] = _load(HOT_FUNCTIONS[name][BACKENDS.index(backend)])
    return _cache[key]


def kernel_threads():
    """How many threads minicap may use for work it splits itself (encoding a dataset's batches,
    encoder.encode): 1 under the numpy backend (the reference stays single-threaded); under numba,
    NUMBA_NUM_THREADS if it is set (as for the kernels' own threads), else the number of cores."""
    if current() == "numpy":
        return 1
    value = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            raise MinicapError(f"NUMBA_NUM_THREADS={value!r} is not a whole number of threads") from None
    return os.cpu_count() or 1


@contextlib.contextmanager
def using(name):
    """Run a block with backend `name`, then restore the previous one:

        with backend.using("numpy"):
            loss, grads = model.loss(params, batch, rng)

    Switch between whole forward+backward passes, never between a forward and its backward: a
    sequence cache (lstm_forward's) is only understood by the same backend's backward.
    """
    global _current
    before = _current   # (may be None: not chosen yet; restored as it was)
    use(name)
    try:
        yield
    finally:
        _current = before
