"""mmrb's benchmark layer: suites, attacks, the run driver and its cell engine, boards and the gate."""
import os
from pathlib import Path

from mmrb.core.version import PROTOCOL_VERSION, __version__

__all__ = ["PROTOCOL_VERSION", "__version__", "default_cache"]


def default_cache() -> Path:
    """$MMRB_CACHE, else ~/.cache/mmrb: generated data, trained models and crafted attacks are kept there."""
    return Path(os.environ.get("MMRB_CACHE", Path.home() / ".cache" / "mmrb"))
