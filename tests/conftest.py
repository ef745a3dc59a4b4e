"""Shared test set-up: `slow` tests (long training runs) run only with MINICAP_SLOW=1."""
import os

import matplotlib
import pytest

matplotlib.use("Agg")  # no screen in CI


def pytest_collection_modifyitems(config, items):
    if os.environ.get("MINICAP_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow training test: set MINICAP_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
