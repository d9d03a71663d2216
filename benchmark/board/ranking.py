"""Ranking one protocol version's entries: by the rank metric's mean (robust accuracy under the protocol's standard
evaluation at its ranking ε), descending. A model not separable from the model ranked directly above is marked ≈; a
run of such models shares a rank range, e.g. "2–3". Separable: where both entries carry per-sample evidence on the same
samples and seeds, the paired test (benchmark.board.paired: McNemar per seed pooled, Holm over the adjacent pairs);
otherwise, for older entries, their 95 % intervals do not overlap. An entry without a
rank figure, or with a flag in flags.UNRANKING_FLAGS, is listed unranked, last, with its reason."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmark.board.figures import finite, modalities, rank_figure
from benchmark.board.paired import AdjacentTest, adjacent_tests

#: The ≈ mark and what it says, on the page.
TIED_TITLE = "not separable from the model ranked directly above"


@dataclass(frozen=True)
class Ranked:
    """One model's place in its protocol version's ranking."""

    entry: dict[str, Any]
    position: int | None  # None: the entry is unranked
    group: str  # "3"; "2–3" when not separable from a neighbour; "–" when unranked
    tied_above: bool  # its interval overlaps that of the model ranked directly above
    reason: str = ""  # why an entry is unranked ("" when ranked)
    test: AdjacentTest | None = None  # the paired test against the model ranked directly above, where both have evidence

    @property
    def name(self) -> str:
        return str(self.entry["name"])


def rank_entries(entries: list[dict[str, Any]]) -> list[Ranked]:
    """Entries of one protocol version by the rank metric's mean, descending (ties by name); unranked ones last, each
    with its reason (`unranked_reason`)."""
    scored = sorted((e for e in entries if not unranked_reason(e)), key=lambda e: (-rank_figure(e)[0], str(e["name"])))
    unranked = sorted((e for e in entries if unranked_reason(e)), key=lambda e: str(e["name"]))
    tests = adjacent_tests(scored)
    tied = [i > 0 and (not tests[i].separable if tests[i] else _overlap(rank_figure(scored[i - 1]), rank_figure(e)))
            for i, e in enumerate(scored)]
    starts = [i for i, t in enumerate(tied) if not t] + [len(scored)]
    groups = {i: (start, end - 1) for start, end in zip(starts, starts[1:]) for i in range(start, end)}
    out = [Ranked(e, i + 1, _group_label(*groups[i]), tied[i], test=tests[i]) for i, e in enumerate(scored)]
    return out + [Ranked(e, None, "–", False, unranked_reason(e)) for e in unranked]


def unranked_reason(entry: dict[str, Any]) -> str:
    """Why an entry is listed unranked, "" if it is ranked: it has no rank figure (no image input), or it raised a
    flag in flags.UNRANKING_FLAGS (its rank figure may rest on masked gradients or a constant prediction)."""
    from benchmark.evaluation.flags import UNRANKING_FLAGS

    if not finite(rank_figure(entry)[0]):
        return "no image input" if "image" not in modalities(entry).split("+") else "no rank figure"
    raised = [f for f in entry.get("flags") or [] if isinstance(f, dict) and f.get("flag") in UNRANKING_FLAGS]
    return "; ".join(f"{f['flag']}: {f.get('detail', '')}" for f in raised)


def tied_pairs(ranked: list[Ranked]) -> list[tuple[str, str]]:
    """(model, the model ranked directly above it) for every model marked ≈."""
    return [(r.name, ranked[i - 1].name) for i, r in enumerate(ranked) if r.tied_above]


def _group_label(start: int, end: int) -> str:
    return str(start + 1) if start == end else f"{start + 1}–{end + 1}"


def _overlap(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
    """Whether two (mean, low, high) intervals overlap; a missing bound is the mean."""
    a_low, a_high = (x if finite(x) else a[0] for x in a[1:])
    b_low, b_high = (x if finite(x) else b[0] for x in b[1:])
    return a_low <= b_high and b_low <= a_high
