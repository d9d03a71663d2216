"""Shared set-up of the attack tests."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def nltk_data(tmp_path_factory):
    """WordNet + stopwords built from the Debian packages into a temporary folder (or a clear error), for a module
    that uses it (`pytestmark = pytest.mark.usefixtures("nltk_data")`)."""
    from benchmark.data.text_resources import ensure_text_resources

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMRB_NLTK_DATA", str(tmp_path_factory.mktemp("nltk_data")))
        ensure_text_resources()
        yield
