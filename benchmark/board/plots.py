"""The board's plots (matplotlib, Agg, no pyplot state): robustness curves per model, per-modality attribution and
transfer heatmaps per protocol version, written as PNG under <board>/plots/ with names stable across builds."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from benchmark.board import figures as fig
from benchmark.board.entry import probe_of
from benchmark.board.ranking import Ranked

PLOTS_DIR = "plots"
MODALITY_COLOURS = {"clean": "#4c4c4c", "image": "#1f77b4", "text": "#2ca02c", "joint": "#d62728", "floor": "#9467bd"}


def write_plots(board: dict[str, list[Ranked]], directory: Path) -> dict[str, dict[str, Any]]:
    """Every plot of the page as PNG under directory/plots/; returns, per protocol version, the relative paths:
    {"attribution": path, "transfer": [(label, path)], "curves": {model: path}}."""
    folder = directory / PLOTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict[str, Any]] = {}
    for version, ranked in board.items():
        entries = [r.entry for r in ranked]
        name = _plot_name("attribution", version)
        plot_attribution(entries, folder / name)
        paths: dict[str, Any] = {"attribution": f"{PLOTS_DIR}/{name}", "transfer": [], "curves": {}}
        for label, cells in transfer_groups(entries).items():
            name = _plot_name("transfer", version, label)
            plot_transfer(label, cells, folder / name)
            paths["transfer"].append((label, f"{PLOTS_DIR}/{name}"))
        for entry in entries:
            name = _plot_name("curves", version, str(entry["name"]))
            plot_curves(entry, folder / name)
            paths["curves"][str(entry["name"])] = f"{PLOTS_DIR}/{name}"
        out[version] = paths
    return out


def _plot_name(kind: str, *parts: str) -> str:
    """A file name for a plot that is safe whatever the entry's names are, and stable across builds."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts))[:60].strip("._-")
    digest = hashlib.sha256("\0".join((kind, *parts)).encode()).hexdigest()[:10]
    return f"{kind}-{slug}-{digest}.png"


def _figure(width: float, height: float, columns: int = 1):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.subplots(1, columns, squeeze=False)[0]


def _save(figure, path: Path) -> Path:
    figure.savefig(path, dpi=90, format="png", metadata={"Software": None})
    return path


def _plot_text(text: Any) -> str:
    """Text from an entry, shown literally by matplotlib (no mathtext)."""
    return str(text).replace("$", r"\$")


def _error_bars(figures: list[fig.Interval]) -> tuple[list[float], list[float]]:
    """Distances (%) from each mean down to its interval's low end and up to its high end; 0 where a bound is missing."""
    lows = [100 * (f[0] - f[1]) if fig.finite(f[1]) else 0.0 for f in figures]
    highs = [100 * (f[2] - f[0]) if fig.finite(f[2]) else 0.0 for f in figures]
    return lows, highs


def _band(axis, x: list[float], figures: list[fig.Interval], label: str, style: str = "-") -> None:
    means = [100 * f[0] for f in figures]
    lows = [100 * (f[1] if fig.finite(f[1]) else f[0]) for f in figures]
    highs = [100 * (f[2] if fig.finite(f[2]) else f[0]) for f in figures]
    (line,) = axis.plot(x, means, style, marker="o", markersize=4, label=label, color=None)
    axis.fill_between(x, lows, highs, color=line.get_color(), alpha=0.18, linewidth=0)


def plot_curves(entry: dict[str, Any], path: Path) -> Path:
    """Robust accuracy vs ε per image attack (ε = 0 is clean), 95 % bands; an attack run at one ε only (the
    standard evaluation) is a point, not a line from clean; text and joint attacks as points. A model without
    image cells (text only) gets the text and joint panel alone."""
    clean, floor = fig.clean_figure(entry), fig.floor_figure(entry)
    image = [c for c in fig.cells(entry) if c.get("modality") == "image" and not c.get("transfer_source")
             and fig.finite(fig.num(c.get("epsilon"))) and fig.finite(fig.robust(c)[0])]
    if image:
        figure, (image_axis, other_axis) = _figure(10, 3.4, columns=2)
        axes = (image_axis, other_axis)
    else:
        figure, (other_axis,) = _figure(5.5, 3.4)
        image_axis, axes = None, (other_axis,)
    for attack in sorted({str(c.get("attack")) for c in image}):
        cells = sorted((c for c in image if str(c.get("attack")) == attack), key=lambda c: fig.num(c["epsilon"]))
        label = _plot_text(attack) + (" ‡" if any(c.get("not_converged") is True for c in cells) else "")
        if len(cells) == 1:  # one ε: a point with its interval (a line from clean would invent a curve)
            f = fig.robust(cells[0])
            image_axis.errorbar([fig.num(cells[0]["epsilon"])], [100 * f[0]], yerr=_error_bars([f]), fmt="s", capsize=3,
                                label=label)
            continue
        points = ([(0.0, clean)] if fig.finite(clean[0]) else []) + [(fig.num(c["epsilon"]), fig.robust(c)) for c in cells]
        style = ":" if probe_of(cells[0]) else "-"
        _band(image_axis, [p[0] for p in points], [p[1] for p in points], label, style)
    for axis in axes:
        if fig.finite(floor[0]):
            axis.axhline(100 * floor[0], color=MODALITY_COLOURS["floor"], linestyle="--", linewidth=1, label="text floor")
        axis.set_ylim(-2, 102)
        axis.set_ylabel("robust accuracy (%)")
    if image_axis is not None:
        image_axis.set_xlabel("ε (L∞, images in [0, 1]); ε = 0: clean")
        image_axis.set_title("image attacks", fontsize=10)
    _text_joint_points(other_axis, entry, clean)
    for axis in axes:
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7, loc="best")
        else:
            axis.text(0.5, 0.5, "no cells", ha="center", va="center", transform=axis.transAxes, color="grey")
    return _save(figure, path)


def _text_joint_points(axis, entry: dict[str, Any], clean: fig.Interval) -> None:
    cells = [c for m in ("text", "joint") for c in fig.own_attacks(entry, m)]
    if fig.finite(clean[0]):
        axis.axhline(100 * clean[0], color=MODALITY_COLOURS["clean"], linewidth=1, label="clean")
    for modality in ("text", "joint"):
        points = [(i, c) for i, c in enumerate(cells) if c.get("modality") == modality]
        if points:
            figures = [fig.robust(c) for _, c in points]
            axis.errorbar([i for i, _ in points], [100 * f[0] for f in figures], yerr=_error_bars(figures), fmt="o",
                          capsize=3, color=MODALITY_COLOURS[modality], label=modality)
    axis.set_xticks(range(len(cells)),
                    [_plot_text(fig.cell_label(c)) + (" ‡" if c.get("not_converged") is True else "") for c in cells],
                    rotation=25, ha="right", fontsize=7)
    axis.set_xlim(-0.7, max(len(cells), 1) - 0.3)
    axis.set_title("text and joint attacks", fontsize=10)


def plot_attribution(entries: list[dict[str, Any]], path: Path) -> Path:
    """Grouped bars per model: clean, strongest image / text / joint attack, text floor, with 95 % intervals."""
    import numpy as np

    rows = fig.attribution_rows(entries)
    figure, (axis,) = _figure(max(7.5, 1.3 * len(rows) + 3), 3.6)
    bars = ("clean", "image", "text", "joint", "floor")
    width = 0.8 / len(bars)
    for k, bar in enumerate(bars):
        figures = [row[bar][0] for row in rows]
        means = np.array([100 * f[0] for f in figures])
        low, high = map(np.array, _error_bars(figures))
        x = np.arange(len(rows)) + (k - (len(bars) - 1) / 2) * width
        shown = np.isfinite(means)
        axis.bar(x[shown], means[shown], width, yerr=[low[shown], high[shown]], capsize=2,
                 color=MODALITY_COLOURS[bar], label="best image attack" if bar == "image" else bar)
    axis.set_xticks(range(len(rows)), [_plot_text(row["model"]) for row in rows], rotation=15, ha="right", fontsize=8)
    axis.set_ylim(0, 105)
    axis.set_ylabel("accuracy (%)")
    figure.suptitle("per-modality attribution: lowest robust accuracy of any attack of each modality", fontsize=10)
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(figure, path)


def transfer_groups(entries: list[dict[str, Any]]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Transfer cells by attack and ε: label -> [(target model, cell)]."""
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for entry in entries:
        for cell in fig.cells(entry):
            if cell.get("transfer_source"):
                label = str(cell.get("attack", "")) + fig.epsilon_label(cell)
                groups.setdefault(label, []).append((str(entry["name"]), cell))
    return groups


def plot_transfer(label: str, cells: list[tuple[str, dict[str, Any]]], path: Path) -> Path:
    """Heatmap: rows = target models, columns = transfer sources, value = robust accuracy (%) [95 % interval]."""
    import numpy as np
    from matplotlib import colormaps

    targets = list(dict.fromkeys(target for target, _ in cells))
    sources = sorted({str(cell["transfer_source"]) for _, cell in cells})
    values = np.full((len(targets), len(sources)), np.nan)
    text = [["–"] * len(sources) for _ in targets]
    for target, cell in cells:
        i, j = targets.index(target), sources.index(str(cell["transfer_source"]))
        values[i, j] = 100 * fig.robust(cell)[0]
        text[i][j] = fig.interval_text(fig.robust(cell), digits=0)
    figure, (axis,) = _figure(max(4.5, 1.5 * len(sources) + 3), max(2.4, 0.5 * len(targets) + 1.6))
    colours = colormaps["viridis"].with_extremes(bad="#e8e8e8")
    image = axis.imshow(np.ma.masked_invalid(values), cmap=colours, vmin=0, vmax=100, aspect="auto")
    for i in range(len(targets)):
        for j in range(len(sources)):
            axis.text(j, i, text[i][j], ha="center", va="center", fontsize=8,
                      color="white" if np.isfinite(values[i, j]) and values[i, j] < 60 else "black")
    axis.set_xticks(range(len(sources)), [_plot_text(s) for s in sources], rotation=15, ha="right", fontsize=8)
    axis.set_yticks(range(len(targets)), [_plot_text(t) for t in targets], fontsize=8)
    axis.set_xlabel("transfer source (adversarial examples crafted on)")
    axis.set_ylabel("target model")
    axis.set_title(f"transfer: {_plot_text(label)}: robust accuracy (%)", fontsize=10)
    figure.colorbar(image, ax=axis, shrink=0.8)
    return _save(figure, path)
