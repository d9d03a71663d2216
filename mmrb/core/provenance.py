"""What every published figure records about how it was produced: commit, package versions, mmrb and protocol
versions, date (one helper for the suite boards, the ranked leaderboard, outside evaluations and the defense
comparison)."""
from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from mmrb.core.version import PROTOCOL_VERSION, __version__

#: The packages whose versions decide the numbers.
PACKAGES = ("torch", "torchvision", "adversarial-robustness-toolbox", "timm", "transformers")
HERE = Path(__file__).resolve().parent


def git_commit(where: Path = HERE) -> str:
    """HEAD of the checkout mmrb runs from, '-dirty' if tracked files (outside leaderboard/) changed;
    'unknown' outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, check=True).stdout.strip()

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        # the leaderboard's own files do not make a checkout dirty: publishing rewrites them
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)leaderboard")
        return head + ("-dirty" if changed else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def package_version(name: str) -> str:
    """The installed version of `name`, or 'absent'."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def package_versions(packages: Sequence[str] = PACKAGES) -> str:
    """Versions of the packages that decide the numbers, as 'name=version;...'."""
    return ";".join(f"{name}={package_version(name)}" for name in packages)


def now() -> str:
    """The UTC time, as every record writes it (2026-12-02T18:45:40Z)."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def provenance(packages: Sequence[str] = PACKAGES, **fields: Any) -> dict[str, Any]:
    """`fields` (suite, hashes, fingerprints, seeds) with the protocol version, commit, versions of `packages`, mmrb
    version and date every record carries."""
    return dict(protocol_version=PROTOCOL_VERSION, **fields, git_commit=git_commit(), packages=package_versions(packages),
                mmrb_version=__version__, date=now())
