"""minicap: attention-based image captioning and caption-to-image generation,
built from NumPy with hand-written backward passes.

Read it top to bottom:
  minicap/nn/        layers as (forward, backward) function pairs
  minicap/gradcheck  finite-difference checks of every backward pass
  minicap/optim      optimizers and gradient clipping
  minicap/checkpoint atomic .npz checkpoints
  minicap/models/    models: loss(params, batch, rng) -> (loss, grads)
"""
from pathlib import Path

from minicap.errors import MinicapError

__version__ = "0.1.0"

# The shipped data files live at the top of the repository (installed with `pip install -e .`).
DATA_DIR = Path(__file__).resolve().parent.parent / "data"

__all__ = ["MinicapError", "DATA_DIR", "__version__"]
