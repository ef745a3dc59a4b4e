"""Shared test set-up: `slow` tests (long training runs) run only with MINICAP_SLOW=1; the encoder's
feature cache goes to a temporary folder (never the user's ~/.cache/minicap)."""
import os
import tempfile

import matplotlib
import pytest

matplotlib.use("Agg")  # no screen in CI
os.environ.setdefault("MINICAP_CACHE", tempfile.mkdtemp(prefix="minicap-test-cache-"))


def pytest_collection_modifyitems(config, items):
    if os.environ.get("MINICAP_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow training test: set MINICAP_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def encoder_path(tmp_path_factory):
    """A small random image encoder (the shipped one is not needed to test the plumbing): channels
    4, 4, 6, 6, so annotation vectors of D = 6."""
    import numpy as np

    from minicap.checkpoint import save_checkpoint
    from minicap.models import encoder

    path = tmp_path_factory.mktemp("encoder") / "encoder.npz"
    channels = (4, 4, 6, 6)
    save_checkpoint(path, "encoder", encoder.init_params(np.random.default_rng(0), channels), config={"channels": channels})
    return path
