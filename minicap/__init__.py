"""minicap: attention-based image captioning and caption-to-image generation,
built from NumPy with hand-written backward passes.

Read it top to bottom (docs/architecture.md draws the data flow of one training step):
  minicap/nn/          layers as (forward, backward) function pairs
  minicap/gradcheck    finite-difference checks of every backward pass (gradcheck_cases: the suite)
  minicap/models/      models, math only: loss(params, batch, rng) -> (loss, grads), generate
  minicap/data/        datasets, vocabulary, batches, the encoder's feature cache
  minicap/metrics/     BLEU, METEOR, ROUGE-L, CIDEr-D
  minicap/assignments/ course assignments: manifests, solution stripper, student build, grader
  minicap/optim        optimizers and gradient clipping
  minicap/train        the one training loop (steps, evaluation, checkpoints, exact resume)
  minicap/checkpoint   atomic .npz checkpoints
  minicap/decode       greedy, sampling and beam search
  minicap/viz          every figure
  minicap/commands/    the command line (minicap/cli.py lists the commands)
"""
from pathlib import Path

from minicap.errors import MinicapError

__version__ = "0.1.0"

# The shipped data files live at the top of the repository (installed with `pip install -e .`).
DATA_DIR = Path(__file__).resolve().parent.parent / "data"

__all__ = ["MinicapError", "DATA_DIR", "__version__"]
