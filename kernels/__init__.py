"""Numba-JIT twins of minicap's hot loops.

Each module here mirrors one in minicap/nn: same function names, same arguments, same results (to
rounding), and - where the caches can be shared - the same cache format. minicap reaches them only
through minicap.backend (MINICAP_BACKEND=numpy|numba, or backend.use / backend.using), so a student
can read minicap/ without ever meeting Numba.

    lstm.py        LSTM step and whole sequence (fused gate math; x Wx and the weight gradients of a
                   sequence as one matrix product each)
    attention.py   soft attention step of Show, Attend and Tell (scores, masked softmax, context, beta
                   gate) and its backward pass
    softmax.py     masked temporal softmax cross-entropy
    filterbank.py  DRAW's Gaussian filterbank read and write
    conv.py        convolution and max-pooling of the image encoder
    elementwise.py the sigmoid of a whole array in one pass (DRAW's canvas at every step)
    vmath.py       exp, sigmoid and tanh written so that LLVM vectorises them (no SVML needed)

Conventions for a kernel:
  - @njit(cache=True): compiled once per dtype and layout, then loaded from __pycache__.
  - Matrix products stay in NumPy's BLAS; the kernels fuse the elementwise work and the reductions
    around them into as few passes over memory as possible.
  - The kernels write into arrays the Python wrapper allocated with NumPy (so `minicap bench` sees
    all memory through tracemalloc), and loop over C-contiguous rows (those vectorise).
  - error_model="numpy" (IEEE division: no zero-division check that would stop vectorisation).
    fastmath at most {"reassoc", "contract"}, never "nnan"/"ninf": masked scores are -inf and a NaN
    must stay visible.
  - Every kernel has a parity test in tests/test_kernels.py (float32 and float64, forward and
    backward), which also runs once with NUMBA_DISABLE_JIT=1.

Threads. On a 2-core machine BLAS already uses both cores for the matrix products, and the
elementwise passes between them are short (0.1 to 3 ms). A prange kernel must wake its worker
threads for each call; whether that pays is measured, kernel by kernel, in the note on PARALLEL in
each module. Numba caches a kernel per source file: after editing vmath.py, delete kernels/__pycache__
(a kernel's cache is not invalidated by a change in a function it calls from another file).
"""
