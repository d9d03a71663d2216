"""The board's tables: ranking.csv and cells.csv (every figure, as fractions) and README.md (a ranked Markdown table
per protocol version, newest first, through `DataFrame.to_markdown`)."""
from __future__ import annotations

import html
from typing import Any

import pandas as pd

from benchmark.board import figures as fig
from benchmark.board.entry import CELL_FIELDS
from benchmark.board.figures import GENERATED, GLOSSARY, LEGEND
from benchmark.board.ranking import Ranked, tied_pairs
from benchmark.board.references import below_constant, below_text_only

RANKING_COLUMNS = ("protocol_version", "position", "rank_group", "separable_from_above", "model", "family", "modalities",
                   "trained_by", "clean_accuracy", "clean_ci_low", "clean_ci_high", "rank_attack", "rank_epsilon",
                   "robust_accuracy", "robust_ci_low", "robust_ci_high", "rank_not_converged", "floor_robust_accuracy",
                   "floor_ci_low", "floor_ci_high", "image_decides", "image_ignored", "n_flags", "flags", "submitted",
                   "submission_digest", "mmrb_version", "mmrb_commit")


def ranking_frame(board: dict[str, list[Ranked]]) -> pd.DataFrame:
    """One row per (protocol version, model) with the ranked figures (fractions) and the rank group."""
    rows = []
    for version, ranked in board.items():
        for r in ranked:
            e, (mean, low, high) = r.entry, fig.rank_figure(r.entry)
            floor, clean = fig.floor_figure(e), fig.clean_figure(e)
            rows.append(dict(protocol_version=version, position=r.position, rank_group=r.group,
                             separable_from_above=not r.tied_above, model=r.name, family=fig.field(e, "model", "family"),
                             modalities=fig.modalities(e), trained_by=fig.field(e, "card", "trained_by"),
                             clean_accuracy=clean[0], clean_ci_low=clean[1], clean_ci_high=clean[2],
                             rank_attack=fig.field(e, "rank", "attack"),
                             rank_epsilon=fig.num((e.get("rank") or {}).get("epsilon")),
                             robust_accuracy=mean, robust_ci_low=low, robust_ci_high=high,
                             rank_not_converged=fig.rank_not_converged(e),
                             floor_robust_accuracy=floor[0], floor_ci_low=floor[1], floor_ci_high=floor[2],
                             image_decides=fig.image_decides(e), image_ignored=bool(fig.blind(e)),
                             n_flags=len(e.get("flags") or []), flags=";".join(fig.flag_names(e)),
                             submitted=fig.field(e, "provenance", "date"),
                             submission_digest=fig.field(e, "digests", "submission"),
                             mmrb_version=fig.field(e, "provenance", "mmrb_version"),
                             mmrb_commit=fig.field(e, "provenance", "mmrb_commit")))
    return pd.DataFrame(rows, columns=RANKING_COLUMNS).astype({"position": "Int64"})


def cells_frame(board: dict[str, list[Ranked]]) -> pd.DataFrame:
    """Every cell of every entry: protocol_version, model and the cell's fields (CELL_FIELDS, then any others)."""
    rows = [{"protocol_version": version, "model": r.name, **cell} for version, ranked in board.items()
            for r in ranked for cell in fig.cells(r.entry)]
    extra = sorted({k for row in rows for k in row} - {"protocol_version", "model", *CELL_FIELDS})
    return pd.DataFrame(rows, columns=["protocol_version", "model", *CELL_FIELDS, *extra])


def md(text: Any) -> str:
    """Text from an entry, safe inside a Markdown table cell."""
    return html.escape(" ".join(str(text).split()), quote=False).replace("|", "\\|").replace("`", "\\`")


def render_readme(board: dict[str, list[Ranked]], notes: dict[str, list[tuple[str, str]]] | None = None) -> str:
    """README.md: one ranked table per protocol version, newest first, each with what its protocol runs (`notes`:
    benchmark.board.references.protocol_notes)."""
    lines = ["# mmrb leaderboard", "", GENERATED, "",
             "Open `index.html` (from disk, no server) for the sortable tables, robustness curves, transfer heatmaps, "
             "per-modality attribution and flags; `ranking.csv` and `cells.csv` hold every figure.", ""]
    if not board:
        lines += ["No entries yet: submit a model with `mmrb submit CARD.yaml`.", ""]
    for version, ranked in board.items():
        said = (notes or {}).get(version) or []
        lines += [f"## Protocol {md(version)}", "", rank_metric_sentence(ranked), "", markdown_ranking(ranked), "",
                  *_separability_sentence(ranked), LEGEND, ""]
        if said:
            lines += [f"**What protocol {md(version)} runs** (generated from its suite file by `mmrb submit`):", "",
                      *(f"- **{md(k)}**: {md(v)}" for k, v in said), ""]
    lines += ["## What the figures mean", "", *(f"- **{md(k)}**: {md(v)}" for k, v in GLOSSARY.items()), ""]
    return "\n".join(lines)


def rank_metric_sentence(ranked: list[Ranked]) -> str:
    """What the ranking is by (attack, ε) and which entries are unranked, why (Markdown)."""
    metric = [r.entry["rank"] for r in ranked if r.entry.get("rank")]
    attacks = sorted({str(m.get("attack")) for m in metric})
    epsilons = sorted({fig.epsilon_text(m.get("epsilon")) for m in metric})
    unranked = [r for r in ranked if r.position is None]
    reasons = "; ".join(f"{md(r.name)} ({md(r.reason.split(':')[0])})" for r in unranked)
    return (f"Ranked by robust accuracy under the `{'`, `'.join(map(md, attacks))}` evaluation at ε = "
            f"{', '.join(epsilons)} (L∞, images in [0, 1]), highest first; {len(ranked) - len(unranked)} model(s) ranked"
            + (f", {len(unranked)} listed unranked: {reasons}." if unranked else "."))


def _separability_sentence(ranked: list[Ranked]) -> list[str]:
    pairs = [f"{md(name)} ≈ {md(above)}" for name, above in tied_pairs(ranked)]
    if not pairs:
        return []
    return [f"Not separable from the model ranked directly above (paired tests that do not both reject, or overlapping "
            f"95 % intervals without per-sample evidence): {'; '.join(pairs)}.", ""]


def markdown_ranking(ranked: list[Ranked]) -> str:
    """The ranked table of one protocol version, in Markdown (▼: below a text-only entry or the constant classifier)."""
    rows, entries = [], [r.entry for r in ranked]
    for r in ranked:
        e, flags = r.entry, fig.flag_names(r.entry)
        beside = fig.lowered(e) + fig.naive(e) + fig.blind(e)  # md() drops a leading space
        rows.append({"rank": r.group if r.position is not None else f"unranked ({md(r.reason)})",
                     "model": md(r.name) + (" ≈" if r.tied_above else ""),
                     "family": md(fig.field(e, "model", "family")), "modalities": md(fig.modalities(e)),
                     "trained by": md(fig.field(e, "card", "trained_by")), "clean": fig.interval_text(fig.clean_figure(e)),
                     "robust (rank metric)": fig.interval_text(fig.rank_figure(e))
                     + (" ‡" if fig.rank_not_converged(e) else "") + (" " + md(beside) if beside else "")
                     + (" ▼ text-only" if below_text_only(e, entries) else "")
                     + (" ▼ constant" if below_constant(e, entries) else ""),
                     "text floor": fig.interval_text(fig.floor_figure(e)) + fig.image_decides_text(e),
                     "flags": f"{len(e.get('flags') or [])}: {', '.join(map(md, flags))}" if flags else "none",
                     "submitted": md(fig.field(e, "provenance", "date")[:10])})
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)
