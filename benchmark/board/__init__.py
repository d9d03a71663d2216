"""The leaderboards.

The ranked board (`mmrb submit` writes one immutable entry per model; `mmrb leaderboard build` turns the entries into
README.md, ranking.csv, cells.csv and a static index.html with its plots):
  entry.py        the entry document's schema (pydantic `Entry`), reading and validating entry files
  figures.py      the figures of one entry, their texts, and what each figure means (legend, glossary)
  ranking.py      rank_entries: order, ≈ (not separable), unranked entries and why
  tables.py       ranking.csv, cells.csv and README.md
  plots.py        robustness curves, per-modality attribution, transfer heatmaps (matplotlib)
  page.py         index.html from templates/index.html.j2 (jinja2, autoescaped)
  screenshot.py   headless Chromium
  build.py        build_board: all of the above, written atomically
The suite boards (`mmrb run` merges every run's cells into a versioned leaderboard.csv per folder) are
`suite_boards.py`."""
from benchmark.board.build import CELLS_NAME, HTML_NAME, RANKING_NAME, README_NAME, build_board
from benchmark.board.entry import CELL_FIELDS, ENTRY_VERSION, BoardError, Entry, is_floor, load_entries, probe_of, read_entry
from benchmark.board.figures import GLOSSARY, LEGEND
from benchmark.board.page import render_html
from benchmark.board.plots import PLOTS_DIR, plot_attribution, plot_curves, plot_transfer, write_plots
from benchmark.board.ranking import Ranked, rank_entries, unranked_reason
from benchmark.board.screenshot import chromium, find_chromium, screenshot
from benchmark.board.tables import RANKING_COLUMNS, cells_frame, ranking_frame, render_readme

__all__ = ["CELLS_NAME", "CELL_FIELDS", "ENTRY_VERSION", "GLOSSARY", "HTML_NAME", "LEGEND", "PLOTS_DIR",
           "RANKING_COLUMNS", "RANKING_NAME", "README_NAME", "BoardError", "Entry", "is_floor", "probe_of", "Ranked", "build_board",
           "cells_frame", "chromium", "find_chromium", "load_entries", "plot_attribution", "plot_curves", "plot_transfer",
           "rank_entries", "ranking_frame", "read_entry", "render_html", "render_readme", "screenshot", "unranked_reason",
           "write_plots"]
