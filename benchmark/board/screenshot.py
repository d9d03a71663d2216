"""Headless Chromium: a screenshot of the built page (`mmrb leaderboard screenshot`) and the runner the page tests use."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from benchmark.board.entry import BoardError

CHROMIUM_NAMES = ("chromium", "chromium-browser")


def find_chromium() -> str:
    """The Chromium binary on PATH; a BoardError saying how to install it otherwise."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise BoardError(f"headless Chromium is needed and none of {', '.join(CHROMIUM_NAMES)} is on PATH: "
                     "install it with `sudo apt-get install chromium` (Debian/Ubuntu; scripts/setup.sh does it as root)")


def chromium(url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run headless Chromium on `url` with extra arguments, in a throwaway profile (runs never share state)."""
    with tempfile.TemporaryDirectory(prefix="mmrb-chromium-") as profile:
        command = [find_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                   "--no-first-run", f"--user-data-dir={profile}", *args, url]
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise BoardError(f"Chromium did not finish rendering {url} within {timeout:.0f} s") from None


def screenshot(html: Path, png: Path, width: int = 1400, height: int = 2400) -> Path:
    """A PNG of the page `html` (e.g. leaderboard/index.html) as headless Chromium renders it from file://."""
    html, png = Path(html).resolve(), Path(png).resolve()
    if not html.is_file():
        raise BoardError(f"{html}: no such page; build it first with `mmrb leaderboard build`")
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    done = chromium(html.as_uri(), f"--window-size={width},{height}", "--virtual-time-budget=5000",
                    f"--screenshot={png}")
    if not png.is_file() or png.stat().st_size == 0:
        raise BoardError(f"Chromium wrote no screenshot of {html} (exit {done.returncode}): {done.stderr.strip()[-600:]}")
    return png
