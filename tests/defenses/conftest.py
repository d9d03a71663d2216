"""One torch thread for these tests: the CI machine has two cores, shared with other jobs."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    """Every test of this module runs on one torch thread (tests/conftest.py)."""
