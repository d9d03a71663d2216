"""The reference rows of a protocol's ranking and what the page compares each entry with: the constant classifiers
(majority class, always abnormal: the same under any attack), the protocol's text-only entries (no image attack
reaches them) and image-only entries; a multimodal entry below a text-only entry under the rank attack is marked
(benchmark.evaluation.baselines states the flag for run tables); the corruption mCE of an entry relative to its named baseline
entry (benchmark.evaluation.corruption_summary)."""
from __future__ import annotations

from typing import Any

from benchmark.board import figures as fig


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


def corruption_mce(entry: dict[str, Any], entries: list[dict[str, Any]]) -> float | None:
    """mCE of an entry: mean over kinds of its summed error / the baseline entry's (None without both)."""
    own = entry.get("corruption") or {}
    base_name = own.get("baseline")
    base = next((e.get("corruption") for e in entries if e["name"] == base_name), None) if base_name else None
    if not own or not base:
        return None
    ratios = [own["errors"][k] / base["errors"][k] for k in own["errors"] if base["errors"].get(k)]
    return sum(ratios) / len(ratios) if ratios else None
