"""The samples browser: test samples an attack broke (clean right, attacked wrong), each with its clean and attacked
frontal view and their difference, the report and its attacked version, and both predictions. The leaderboard page
shows the entries' broken samples (benchmark.evaluation.evidence picks them); `mmrb run` writes samples.html for its run folder
from broken.json. Rendered through jinja2 with autoescaping; the images are data URIs (the page fetches nothing)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmark.board.templating import template
from mmrb.core.io import atomic_write

CLASSES = ("normal", "abnormal")
SAMPLES_HTML = "samples.html"


def word_diff(before: str, after: str) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    """Both reports as (word, changed) pairs: the words an attack removed or replaced, and those it put in."""
    import difflib

    old, new = before.split(), after.split()
    left, right = [(w, False) for w in old], [(w, False) for w in new]
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if tag != "equal":
            left[i1:i2] = [(w, True) for w in old[i1:i2]]
            right[j1:j2] = [(w, True) for w in new[j1:j2]]
    return left, right


def sample_rows(model: str, broken: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The browser's rows of one model's broken samples (the reports as words, those an attack changed marked)."""
    return [dict(model=model, sample_id=b.get("sample_id", ""), seed=b.get("seed", ""), attack=b.get("attack", ""),
                 kind=b.get("kind", ""), words=word_diff(b.get("report", ""), b.get("adversarial_report", "")),
                 label=CLASSES[int(b.get("label", 0))], clean=CLASSES[int(b.get("clean_prediction", 0))],
                 adversarial=CLASSES[int(b.get("adversarial_prediction", 0))], report=b.get("report", ""),
                 adversarial_report=b.get("adversarial_report", ""),
                 report_changed=b.get("report", "") != b.get("adversarial_report", ""),
                 images=[(k, (b.get("images") or {}).get(k, "")) for k in ("clean", "adversarial", "difference")
                         if str((b.get("images") or {}).get(k, "")).startswith("data:image/png;base64,")])
            for b in broken]


def entry_samples(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every entry's broken samples, in board order."""
    return [row for e in entries for row in sample_rows(str(e["name"]), ((e.get("evidence") or {}).get("broken") or []))]


def render_samples_page(rows: list[dict[str, Any]], title: str) -> str:
    """A standalone samples browser (a run folder's samples.html)."""
    return template("samples.html.j2").render(title=title, samples=rows)


def write_samples_page(folder: str | Path, title: str) -> Path | None:
    """samples.html of a run folder from its broken.json (None if the run wrote none)."""
    folder = Path(folder)
    source = folder / "broken.json"
    if not source.is_file():
        return None
    broken = json.loads(source.read_text())
    rows = [row for b in broken for row in sample_rows(b.get("model", ""), [b])]
    return atomic_write(folder / SAMPLES_HTML, render_samples_page(rows, title))
