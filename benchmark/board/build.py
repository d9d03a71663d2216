"""`mmrb leaderboard build`: the ranked board regenerated from its entry files (README.md, ranking.csv, cells.csv,
index.html and plots/), every file replaced atomically."""
from __future__ import annotations

from pathlib import Path

from benchmark.board.entry import load_entries
from benchmark.board.page import render_html
from benchmark.board.plots import PLOTS_DIR, write_plots
from benchmark.board.ranking import rank_entries
from benchmark.board.references import protocol_notes
from benchmark.board.tables import cells_frame, ranking_frame, render_readme
from mmrb.core.io import atomic_write

README_NAME, RANKING_NAME, CELLS_NAME, HTML_NAME = "README.md", "ranking.csv", "cells.csv", "index.html"


def build_board(directory: str | Path) -> list[Path]:
    """Regenerate README.md, ranking.csv, cells.csv, index.html and plots/ from directory/*/entries/*.json;
    returns the paths written (plots that no entry needs any more are removed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    board = {version: rank_entries(entries) for version, entries in load_entries(directory).items()}
    plots = write_plots(board, directory)
    notes = {version: protocol_notes(directory, version, [r.entry for r in ranked]) for version, ranked in board.items()}
    written = [atomic_write(directory / README_NAME, render_readme(board, notes)),
               atomic_write(directory / RANKING_NAME, ranking_frame(board).to_csv(index=False)),
               atomic_write(directory / CELLS_NAME, cells_frame(board).to_csv(index=False)),
               atomic_write(directory / HTML_NAME, render_html(board, plots, notes))]
    images = {directory / p for paths in plots.values()
              for p in [paths["attribution"], *(src for _, src in paths["transfer"]), *paths["curves"].values()]}
    for stale in set((directory / PLOTS_DIR).glob("*.png")) - images:
        stale.unlink()
    return written + sorted(images)
