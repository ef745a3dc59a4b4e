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
