"""Models composed from the layers in minicap.nn; each exposes loss(params, batch, rng) -> (loss, grads)."""
