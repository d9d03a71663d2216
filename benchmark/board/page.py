"""index.html: the board as one page that opens from file:// with no server and nothing fetched, rendered from
templates/index.html.j2 (jinja2, autoescaped: no string from an entry reaches the page unescaped). This module only
shapes each entry's figures into the rows the template lays out."""
from __future__ import annotations

import re
from typing import Any

from benchmark.board import figures as fig
from benchmark.board.figures import GENERATED, GLOSSARY, LEGEND
from benchmark.board.paired import detectable_sentence
from benchmark.board.ranking import TIED_TITLE, Ranked, tied_pairs
from benchmark.board.references import below_constant, below_text_only, corruption_mce, reference_rows
from benchmark.board.samples_page import entry_samples
from benchmark.board.tables import rank_metric_sentence
from benchmark.board.templating import template

RANKING_HEAD = ("rank", "model", "family", "modalities", "trained by", "clean", "robust (rank metric)", "text floor",
                "sens / spec @ op", "A→N / N→A", "false reassurance", "corruption mCE", "flags", "submitted")
BASELINE_HEAD = ("reference", "clean", "under any image attack", "what it says")
ATTRIBUTION_HEAD = ("model", "clean", "best image attack", "best text attack", "best joint attack", "text floor",
                    "modality reliance (pt)")
ATTRIBUTION_KEYS = ("clean", "image", "text", "joint", "floor", "reliance")
FLAG_HEAD = ("flag", "cell", "detail")
CELL_HEAD = ("attack", "source", "modality", "ε", "transfer from", "n", "seeds", "clean", "robust", "naive (masking)",
             "normal / abnormal", "F1 (abnormal)", "AUC", "attack success", "flags")


def render_html(board: dict[str, list[Ranked]], plots: dict[str, dict[str, Any]],
                notes: dict[str, list[tuple[str, str]]] | None = None) -> str:
    """index.html: per protocol version the sortable ranking, attribution, transfer heatmaps and a section per
    model (curves, flags, cells). `plots[version]` holds the relative paths written by `plots.write_plots`; `notes`
    what each protocol runs (benchmark.board.references.protocol_notes)."""
    protocols = [{**_protocol(i, version, ranked, plots[version]), "notes": (notes or {}).get(version) or []}
                 for i, (version, ranked) in enumerate(board.items())]
    return template().render(generated=GENERATED, legend=LEGEND, glossary=GLOSSARY, tied_title=TIED_TITLE,
                              protocols=protocols, heads=dict(ranking=RANKING_HEAD, attribution=ATTRIBUTION_HEAD,
                                                              flags=FLAG_HEAD, cells=CELL_HEAD, baselines=BASELINE_HEAD))


def _protocol(index: int, version: str, ranked: list[Ranked], plots: dict[str, Any]) -> dict[str, Any]:
    anchors = {r.name: f"model-{index}-{k}" for k, r in enumerate(ranked)}
    entries = [r.entry for r in ranked]
    return dict(anchor=f"protocol-{index}", version=version, plots=plots,
                sentence=rank_metric_sentence(ranked).replace("`", ""),
                detectable=detectable_sentence([r.test for r in ranked], entries),
                baselines=reference_rows(entries), samples=entry_samples(entries),
                ranking=[_ranking_row(r, anchors[r.name], entries) for r in ranked],
                pairs=[f"{name} ≈ {above}" for name, above in tied_pairs(ranked)],
                attribution=[dict(model=row["model"], figures=[(interval(row[k][0], k == "reliance"), row[k][1])
                                                               for k in ATTRIBUTION_KEYS])
                             for row in fig.attribution_rows([r.entry for r in ranked])],
                models=[_model(r, anchors[r.name], plots["curves"][r.name]) for r in ranked])


def _sort_value(value: float | int | None) -> str:
    return "" if value is None or not fig.finite(float(value)) else f"{float(value):.6g}"


def interval(figures: fig.Interval, signed: bool = False) -> dict[str, str]:
    """A figure as a table cell shows it: its text (`mean [low, high]`, inside 0–100, or −100–100 where `signed`),
    its sort key and its 95 % interval as the tooltip."""
    text = fig.interval_text(figures, bounds=(-1.0, 1.0) if signed else (0.0, 1.0))
    return dict(text=text, sort=_sort_value(figures[0]), title=f"95 % interval {text.partition(' [')[2][:-1]}" if " [" in text else "")


def _ranking_row(r: Ranked, anchor: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    e, flags = r.entry, fig.flag_names(r.entry)
    point = e.get("operating_point") or {}
    mce, report_mce = corruption_mce(e, entries), corruption_mce(e, entries, "text")
    return dict(ranked=r, anchor=anchor, sort=_sort_value(r.position),
                tied_title=r.test.title if r.test else TIED_TITLE + " (95 % intervals overlap)",
                operating=f"{_bounded(point, 'robust_sensitivity')} / {_bounded(point, 'robust_specificity')}"
                          + (f" @ {100 * point['specificity']:.0f} % spec" if point else ""),
                reassurance=_reassurance(point),
                flips=f"{_count(point.get('false_reassurance'))} / {_count(point.get('false_alarm'))}",
                mce=dict(text=(f"{100 * mce:.0f}" if mce is not None else "–")
                         + (f" · report {100 * report_mce:.0f}" if report_mce is not None else ""), sort=_sort_value(mce)),
                below_text=below_text_only(e, entries), below_constant=below_constant(e, entries),
                rank=r.group if r.position is not None else f"unranked: {r.reason}",
                family=fig.field(e, "model", "family"), modalities=fig.modalities(e),
                trained_by=fig.field(e, "card", "trained_by"), clean=interval(fig.clean_figure(e)),
                robust=interval(fig.rank_figure(e)), not_converged=fig.rank_not_converged(e),
                lowered=fig.lowered(e) + fig.naive(e) + fig.blind(e), image_decides=fig.image_decides_text(e),
                floor=interval(fig.floor_figure(e)), n_flags=len(e.get("flags") or []), flags=", ".join(flags) or "none",
                date=fig.field(e, "provenance", "date")[:10])


def _model(r: Ranked, anchor: str, curves: str) -> dict[str, Any]:
    e, card, provenance = r.entry, r.entry.get("card") or {}, r.entry.get("provenance") or {}
    authors = card.get("authors") or []
    facts = [("family", fig.field(e, "model", "family")), ("modalities", fig.modalities(e)),
             ("defense", fig.defense(e) + (" (robust figures adaptive: BPDA/EOT; naive beside them)" if fig.defense(e)
                                          else "")),
             ("trained by", card.get("trained_by")),
             ("authors", ", ".join(map(str, authors)) if isinstance(authors, list) else authors),
             ("entry point", card.get("entry_point")), ("weights", card.get("weights")), ("tokenizer", card.get("tokenizer")),
             ("data", card.get("data")), ("threat model", card.get("threat_model")),
             ("suite", f"{provenance.get('suite', '')} {provenance.get('suite_hash', '')}"),
             ("data fingerprint", provenance.get("data_fingerprint")), ("split seed", provenance.get("split_seed")),
             ("training seeds", provenance.get("seeds")),
             ("mmrb", f"{provenance.get('mmrb_version', '')} {provenance.get('mmrb_commit', '')}"),
             ("packages", provenance.get("packages")), ("submitted", provenance.get("date")),
             ("digests", "; ".join(f"{k} {v}" for k, v in (e.get("digests") or {}).items() if v))]
    url = str(card.get("url") or "")
    return dict(ranked=r, anchor=anchor, curves=curves, description=card.get("description") or "", url=url,
                linked=bool(re.match(r"^https?://", url, flags=re.IGNORECASE)),  # never a javascript: link
                facts=[(k, str(v)) for k, v in facts if v not in (None, "", [])],
                flags=[f for f in e.get("flags") or [] if isinstance(f, dict)], cells=[_cell(c) for c in fig.cells(e)])


def _pct(value: Any) -> str:
    return f"{100 * fig.num(value):.1f}" if fig.finite(fig.num(value)) else "–"


def _cell(c: dict[str, Any]) -> dict[str, Any]:
    f1 = fig.num(c.get("robust_f1"))
    f1_low, f1_high = fig.num(c.get("robust_f1_ci_low")), fig.num(c.get("robust_f1_ci_high"))
    if not fig.finite(f1_low):  # an entry made before bounded intervals: its seed half-width (cut to 0–100 when shown)
        f1_low, f1_high = f1 - fig.num(c.get("robust_f1_hw")), f1 + fig.num(c.get("robust_f1_hw"))
    return dict(attack=c.get("attack", ""), source=c.get("attack_source", ""), modality=c.get("modality", ""),
                epsilon=fig.epsilon_text(c.get("epsilon")), epsilon_sort=_sort_value(fig.num(c.get("epsilon"))),
                transfer=c.get("transfer_source") or "", n=c.get("n", ""), seeds=c.get("seeds", ""),
                clean=interval(fig.robust(c, "clean_accuracy")), robust=interval(fig.robust(c)),
                not_converged=c.get("not_converged") is True,
                naive=(f"{_pct(c.get('naive_robust_accuracy'))} ({100 * fig.num(c.get('masking')):+.1f})"
                       if fig.finite(fig.num(c.get("naive_robust_accuracy"))) else "–"),
                classes=f"{_pct(c.get('robust_accuracy_normal'))} / {_pct(c.get('robust_accuracy_abnormal'))}",
                f1=interval((f1, f1_low, f1_high)), auc=_pct(c.get("auc")),
                success=_pct(c.get("attack_success_rate")), flags=c.get("flags") or "")


def _bounded(block: dict[str, Any], metric: str) -> str:
    """A figure of a block with its interval where recorded (`mean [low, high]`), else its mean."""
    return fig.interval_text((fig.num(block.get(metric)), fig.num(block.get(f"{metric}_ci_low")),
                              fig.num(block.get(f"{metric}_ci_high"))))


def _reassurance(point: dict[str, Any]) -> str:
    """Sensitivity under the targeted false-reassurance attack [interval] and the studies it made the model miss."""
    block = point.get("reassurance") or {}
    if not block:
        return "–"
    return f"{_bounded(block, 'robust_sensitivity')} · {_count(block.get('missed'))} missed"


def _count(value: Any) -> str:
    return f"{fig.num(value):.1f}" if fig.finite(fig.num(value)) else "–"
