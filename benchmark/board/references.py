"""The reference rows of a protocol's ranking and what the page compares each entry with: the constant classifiers
(majority class, always abnormal: the same under any attack), the protocol's text-only entries (no image attack
reaches them) and image-only entries; a multimodal entry below a text-only entry under the rank attack is marked
(benchmark.evaluation.baselines states the flag for run tables); the corruption mCE of an entry relative to its named baseline
entry (benchmark.evaluation.corruption_summary)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmark.board import figures as fig

#: Written by `mmrb submit` beside a protocol's entries (benchmark.submission.protocol_text).
PROTOCOL_NAME = "protocol.json"


def _class_counts(entries: list[dict[str, Any]]) -> tuple[float, float] | None:
    for entry in entries:
        for cell in fig.cells(entry):
            n, abnormal = fig.num(cell.get("n")), fig.num(cell.get("n_abnormal"))
            if fig.finite(n) and fig.finite(abnormal) and n > 0:
                return n, abnormal
    return None


def reference_rows(entries: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Rows a reader compares every entry against (accuracy %, clean and under any image attack)."""
    rows = []
    counts = _class_counts(entries)
    if counts:
        share = counts[1] / counts[0]
        majority = max(share, 1 - share)
        rows += [dict(name="constant: always abnormal", clean=f"{100 * share:.1f}", attacked=f"{100 * share:.1f}",
                      note="predicts abnormal for every study; no attack changes it"),
                 dict(name=f"constant: majority ({'abnormal' if share >= 0.5 else 'normal'})", clean=f"{100 * majority:.1f}",
                      attacked=f"{100 * majority:.1f}", note="the majority class of the test split")]
    for entry in entries:
        kind = fig.modalities(entry)
        if kind == "text":
            clean = fig.clean_figure(entry)[0]
            rows.append(dict(name=f"text-only: {entry['name']}", clean=_pct(clean), attacked=_pct(clean),
                             note="ignores the image: a multimodal model below it under attack is worse than ignoring the image"))
        elif kind == "image":
            rows.append(dict(name=f"image-only: {entry['name']}", clean=_pct(fig.clean_figure(entry)[0]),
                             attacked=_pct(fig.rank_figure(entry)[0]), note="the image branch alone"))
    return rows


def _pct(value: float) -> str:
    return f"{100 * value:.1f}" if fig.finite(value) else "–"


def below_text_only(entry: dict[str, Any], entries: list[dict[str, Any]]) -> str:
    """The text-only entry whose clean accuracy lies above this multimodal entry's whole rank interval, "" if none."""
    if set(fig.modalities(entry).split("+")) != {"image", "text"}:
        return ""
    mean, _, high = fig.rank_figure(entry)
    top = high if fig.finite(high) else mean
    for other in entries:
        clean = fig.clean_figure(other)[0]
        if fig.modalities(other) == "text" and fig.finite(clean) and fig.finite(top) and top < clean:
            return f"below the text-only {other['name']} ({100 * clean:.1f} %) under the rank attack"
    return ""


def protocol_notes(directory: Path, version: str, entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """What protocol `version` runs, as generated from its suite file when its entries were submitted: (term, text)
    pairs; [] without the file; one line saying so where the file's suite hash is not its entries'."""
    path = Path(directory) / f"v{version}" / PROTOCOL_NAME
    if not path.is_file():
        return []
    document = json.loads(path.read_text())
    hashes = {(e.get("provenance") or {}).get("suite_hash") for e in entries}
    if hashes and hashes != {document.get("suite_hash")}:
        return [("protocol file", f"{path.name} was generated from suite {document.get('suite_hash')}, the entries "
                                  f"from {', '.join(sorted(map(str, hashes)))}: not shown")]
    return list((document.get("describes") or {}).items())


def below_constant(entry: dict[str, Any], entries: list[dict[str, Any]]) -> str:
    """The constant classifier (the test split's majority class) whose accuracy lies above this entry's whole rank
    interval, "" if none: a reader would do better ignoring the model."""
    counts = _class_counts(entries)
    mean, _, high = fig.rank_figure(entry)
    top = high if fig.finite(high) else mean
    if not counts or not fig.finite(top):
        return ""
    share = counts[1] / counts[0]
    majority = max(share, 1 - share)
    if top < majority:
        return (f"below the constant classifier (always {'abnormal' if share >= 0.5 else 'normal'}: "
                f"{100 * majority:.1f} %) under the rank attack: a reader would do better ignoring the model")
    return ""


#: Report corruption kinds of entries made before the entry recorded each kind's modality.
REPORT_KINDS = ("typos", "abbreviations", "dropped_sections", "dictation")


def corruption_mce(entry: dict[str, Any], entries: list[dict[str, Any]], modality: str = "image") -> float | None:
    """mCE of an entry over its corruption kinds of `modality`: mean over kinds of its summed error / the reference
    entry's — the named baseline (an image-only entry) for image kinds, a text-only entry for report kinds (None
    without both)."""
    own = entry.get("corruption") or {}
    if not own:
        return None
    if modality == "image":
        base = next((e.get("corruption") for e in entries if e["name"] == own.get("baseline")), None)
    else:
        base = next((e.get("corruption") for e in entries if fig.modalities(e) == "text"), None)
    if not base:
        return None
    kinds = own.get("modalities") or {}
    of = [k for k in own["errors"] if kinds.get(k, "text" if k in REPORT_KINDS else "image") == modality]
    ratios = [own["errors"][k] / base["errors"][k] for k in of if base["errors"].get(k)]
    return sum(ratios) / len(ratios) if ratios else None
