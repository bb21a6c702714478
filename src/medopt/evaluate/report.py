"""One self-contained HTML evaluation report: metrics with CIs, ROC, confusion, training curves, latency, config.

Why: a single file that opens anywhere (artifact store, KFP UI, e-mail) with no network access; all CSS is inline
and every figure is an embedded PNG data URI. Every piece of text is HTML-escaped.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medopt.evaluate import plots
from medopt.evaluate.metrics import SCALAR_METRICS
from medopt.atomic import atomic_write_text
from medopt.errors import MedoptError

log = logging.getLogger(__name__)


class ReportInputError(MedoptError, ValueError):
    """Data handed to the report has the wrong structure (names the argument and what was wrong)."""


METRIC_LABELS: dict[str, str] = {
    "auc": "AUC",
    "acc": "Accuracy",
    "bacc": "Balanced accuracy",
    "precision_weighted": "Precision (weighted)",
    "recall_weighted": "Recall (weighted)",
    "f1_weighted": "F1 (weighted)",
    "precision_macro": "Precision (macro)",
    "recall_macro": "Recall (macro)",
    "f1_macro": "F1 (macro)",
    "avg": "AVG",
}
_HEADLINE = ("auc", "acc", "bacc", "avg")
_LATENCY_LABELS = {
    "median_ms": "median (ms)",
    "p95_ms": "p95 (ms)",
    "mean_ms": "mean (ms)",
    "min_ms": "min (ms)",
    "throughput_per_s": "throughput (samples/s)",
    "runs": "runs",
    "peak_memory_mb": "peak memory (MiB)",
    "params": "parameters",
}

_CSS = """
:root{--ink:#111827;--muted:#6b7280;--line:#e5e7eb;--accent:#0b5cad;--soft:#f3f6fb}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 -apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--ink);
background:#eef1f5}
header{background:linear-gradient(120deg,#0b3d74,#0b5cad 60%,#1479c9);color:#fff;padding:28px 0 22px}
.wrap{max-width:1120px;margin:0 auto;padding:0 24px}
header h1{margin:0 0 6px;font-size:26px;font-weight:650;letter-spacing:.2px} header .meta{opacity:.9;font-size:13px}
header .meta span{margin-right:18px;white-space:nowrap}
nav{margin-top:14px;font-size:12.5px}
nav a{color:#dbeafe;text-decoration:none;margin-right:14px;border-bottom:1px dotted #93c5fd}
main{padding:22px 0 40px}
section{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:18px 22px;margin:0 0 18px}
section h2{font-size:16px;margin:0 0 12px;color:#0b3d74}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;margin-bottom:18px}
.card{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:14px 16px;
border-top:4px solid var(--accent)}
.card .k{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.6px}
.card .v{font-size:28px;font-weight:650;margin:2px 0} .card .ci{font-size:12px;color:var(--muted)}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:middle}
th{background:var(--soft);font-weight:600;color:#374151;position:sticky;top:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:hover{background:#f9fafb}
.bar{position:relative;height:10px;background:#eef2f7;border-radius:5px;min-width:140px}
.bar .fill{position:absolute;left:0;top:0;bottom:0;background:#93c5fd;border-radius:5px}
.bar .ci{position:absolute;top:-3px;bottom:-3px;border-left:2px solid #0b3d74;border-right:2px solid #0b3d74;
background:rgba(11,61,116,.15)}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:18px}
figure{margin:0;text-align:center} figure img{max-width:100%;height:auto}
figcaption{font-size:12px;color:var(--muted);margin-top:4px}
.note{font-size:12px;color:var(--muted);margin:8px 0 0}
.scroll{overflow-x:auto} .facts{max-width:420px;margin-top:16px}
details summary{cursor:pointer;font-weight:600;color:#0b3d74}
pre{background:#0f172a;color:#e2e8f0;padding:14px;border-radius:8px;overflow:auto;font-size:12px;line-height:1.45}
footer{color:var(--muted);font-size:12px;text-align:center;padding-bottom:30px}
"""


# ------------------------------------------------------------------------------------------------- formatting
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """Human formatting of a table cell: NaN as 'n/a', floats to a sensible precision, everything else str."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else ("yes" if value else "no")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if math.isinf(value) or value == 0:
            return str(value) if math.isinf(value) else "0"
        if abs(value) >= 100:
            return f"{value:,.1f}"
        if abs(value) >= 1:
            return f"{value:.3f}"
        return f"{value:.4f}" if abs(value) >= 0.001 else f"{value:.2e}"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    raw_cols: frozenset[int] = frozenset(),
    right_cols: frozenset[int] = frozenset(),
) -> str:
    """An HTML table; cells are formatted and escaped except columns in ``raw_cols`` (pre-built safe HTML).

    Numeric columns (and ``right_cols``) are right-aligned.
    """
    numeric = [
        i in right_cols or (bool(rows) and all(_is_number(r[i]) for r in rows if r[i] is not None))
        for i in range(len(headers))
    ]
    head = "".join(f'<th class="{"num" if numeric[i] else ""}">{_e(h)}</th>' for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            text = v if i in raw_cols else _e(fmt(v))
            cells.append(f'<td class="{"num" if numeric[i] else ""}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{_e(anchor)}"><h2>{_e(title)}</h2>{body}</section>'


def _figure(png: bytes, alt: str, caption: str) -> str:
    uri = plots.png_data_uri(png)
    return f'<figure><img src="{uri}" alt="{_e(alt)}"><figcaption>{_e(caption)}</figcaption></figure>'


# --------------------------------------------------------------------------------------------------- sections
def _ci_text(ci: Mapping[str, Sequence[float]] | None, key: str) -> str:
    if not ci or key not in ci:
        return "—"
    low, high = (float(x) for x in ci[key])
    return "n/a" if math.isnan(low) or math.isnan(high) else f"{low:.4f} – {high:.4f}"


def _value_bar(value: float, bounds: Sequence[float] | None) -> str:
    """Inline bar for a metric in [0, 1] with its CI as a bracket; empty for other ranges."""
    if not 0.0 <= value <= 1.0:
        return ""
    ci = ""
    if bounds is not None and all(math.isfinite(float(b)) for b in bounds):
        low, high = (min(max(float(b), 0.0), 1.0) for b in bounds)
        ci = f'<span class="ci" style="left:{100 * low:.2f}%;width:{100 * max(high - low, 0.004):.2f}%"></span>'
    return f'<div class="bar"><span class="fill" style="width:{100 * value:.2f}%"></span>{ci}</div>'


def _scalar_keys(metrics: Mapping[str, Any]) -> list[str]:
    """SCALAR_METRICS first in display order, then any other numeric scalars (e.g. a loss), except ``n``."""
    extra = [k for k, v in metrics.items() if _is_number(v) and k not in SCALAR_METRICS and k != "n"]
    return [k for k in SCALAR_METRICS if k in metrics] + extra


def _cards(metrics: Mapping[str, Any], ci: Mapping[str, Sequence[float]] | None, level: float) -> str:
    cards = []
    for key in (k for k in _HEADLINE if k in metrics):
        value = fmt(float(metrics[key])) if math.isnan(float(metrics[key])) else f"{float(metrics[key]):.3f}"
        ci_line = _ci_text(ci, key)
        ci_html = f'<div class="ci">{level:.0%} CI {_e(ci_line)}</div>' if ci_line != "—" else ""
        label = METRIC_LABELS.get(key, key)
        cards.append(
            f'<div class="card"><div class="k">{_e(label)}</div><div class="v">{_e(value)}</div>{ci_html}</div>'
        )
    return f'<div class="cards">{"".join(cards)}</div>' if cards else ""


def _metrics_section(metrics: Mapping[str, Any], ci: Mapping[str, Sequence[float]] | None, level: float) -> str:
    rows = []
    for key in _scalar_keys(metrics):
        value = float(metrics[key])
        bounds = ci.get(key) if ci else None
        label = f"{METRIC_LABELS.get(key, key)}"
        rows.append([label, _e(f"{value:.4f}") if math.isfinite(value) else "n/a", _e(_ci_text(ci, key)),
                     _value_bar(value, bounds)])
    table = _table(["Metric", "Value", f"{level:.0%} CI", ""], rows, raw_cols=frozenset({1, 2, 3}),
                   right_cols=frozenset({1, 2}))
    note = ('<p class="note">AVG = mean of accuracy, balanced accuracy and weighted precision, recall and F1. '
            "CIs: percentile bootstrap, resampling within each class (whole rows for multilabel).</p>")
    return _section("metrics", "Metrics", table + note)


def _per_class_section(metrics: Mapping[str, Any]) -> str:
    per_class = metrics.get("per_class")
    if not isinstance(per_class, Mapping) or not per_class:
        return ""
    cols = ["precision", "recall", "f1", "auc", "support"]
    rows = [[name] + [stats.get(c) for c in cols] for name, stats in per_class.items()]
    return _section("per-class", "Per class", _table(["Class", *cols], rows))


def _plots_section(
    roc: Mapping[str, Any] | None, confusion: Sequence[Any] | None, class_names: Sequence[str]
) -> str:
    figures = []
    if roc:
        figures.append(_figure(plots.roc_png(roc), "ROC curves", "ROC curves, one-vs-rest per class"))
    if confusion is not None and len(confusion) > 0:
        png = plots.confusion_png(confusion, class_names)
        figures.append(_figure(png, "Confusion matrix", "Confusion matrix: counts and % of each true class (row)"))
    if not figures:
        return ""
    return _section("curves", "ROC and confusion matrix", f'<div class="grid2">{"".join(figures)}</div>')


def _history_section(history: Mapping[str, Sequence[float]] | None) -> str:
    if not history or not any(len(v) for v in history.values()):
        return ""
    png = plots.history_png(history)
    return _section("training", "Training curves", _figure(png, "Training curves", "Per-epoch training history"))


def _split_latency(latency: Mapping[str, Any]) -> tuple[dict[str, Mapping[str, Any]], dict[str, Any]]:
    """Rows of statistics and scalar facts; one nested level (e.g. a profile's ``{"latency": {batch: stats}}``)."""
    rows: dict[str, Mapping[str, Any]] = {}
    facts: dict[str, Any] = {}
    for key, value in latency.items():
        if isinstance(value, Mapping) and value and all(isinstance(v, Mapping) for v in value.values()):
            rows.update({str(k): v for k, v in value.items()})
        elif isinstance(value, Mapping):
            rows[str(key)] = value
        elif _is_number(value) or isinstance(value, str):
            facts[str(key)] = value
        else:
            raise ReportInputError(f"latency[{key!r}] must be a dict of statistics or a number, got {value!r}")
    return rows, facts


def _latency_section(latency: Mapping[str, Any] | None) -> str:
    """Per-batch latency statistics, plus scalar facts such as peak memory or parameter count."""
    if not latency:
        return ""
    rows, facts = _split_latency(latency)
    body = ""
    if rows:
        keys: list[str] = []
        for stats in rows.values():
            keys += [k for k in stats if k not in keys and k != "batch"]
        ordered = [k for k in _LATENCY_LABELS if k in keys] + [k for k in keys if k not in _LATENCY_LABELS]
        first = "batch size" if all(k.isdigit() for k in rows) else "setting"
        table_rows = [[name] + [stats.get(k) for k in ordered] for name, stats in rows.items()]
        body += _table([first] + [_LATENCY_LABELS.get(k, k) for k in ordered], table_rows)
    if facts:
        facts_table = _table(["measure", "value"], [[_LATENCY_LABELS.get(k, k), v] for k, v in facts.items()])
        body += f'<div class="facts">{facts_table}</div>'
    return _section("latency", "Latency and footprint", body)


def _extra_sections(extra_tables: Mapping[str, Sequence[Mapping[str, Any]]] | None) -> str:
    out = []
    for i, (title, rows) in enumerate((extra_tables or {}).items()):
        if not all(isinstance(r, Mapping) for r in rows):
            raise ReportInputError(f"extra_tables[{title!r}] must be a list of dicts (one per row)")
        cols: list[str] = []
        for r in rows:
            cols += [str(k) for k in r if str(k) not in cols]
        body = _table(cols, [[r.get(c) for c in cols] for r in rows]) if rows else '<p class="note">no rows</p>'
        out.append(_section(f"extra-{i}", str(title), body))
    return "".join(out)


def _config_section(config_yaml: str | None) -> str:
    if not config_yaml:
        return ""
    body = f"<details><summary>Resolved configuration (YAML)</summary><pre>{_e(config_yaml)}</pre></details>"
    return _section("config", "Configuration", body)


def _data_source_from_config(config_yaml: str | None) -> str | None:
    """``data.source`` (and ``data.path``) from the resolved config, when it has a data section."""
    if not config_yaml:
        return None
    import yaml

    try:
        data = (yaml.safe_load(config_yaml) or {}).get("data")
    except (yaml.YAMLError, AttributeError):
        log.warning("report: config_yaml is not a YAML mapping; data source not shown")
        return None
    if not isinstance(data, Mapping) or "source" not in data:
        return None
    return f"{data['source']} ({data['path']})" if data.get("path") else str(data["source"])


def _header(title: str, data_source: str | None, n: Any, anchors: Sequence[tuple[str, str]]) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = [f"Generated {when}", f"Data: {data_source or 'not recorded'}"]
    if _is_number(n):
        meta.append(f"Evaluated on {int(n):,} samples")
    spans = "".join(f"<span>{_e(m)}</span>" for m in meta)
    nav = "".join(f'<a href="#{_e(a)}">{_e(t)}</a>' for a, t in anchors)
    return (f'<header><div class="wrap"><h1>{_e(title)}</h1><div class="meta">{spans}</div>'
            f"<nav>{nav}</nav></div></header>")


def _page(title: str, body: str, source: str | None, n: Any) -> str:
    """The full HTML document around the rendered sections, with a navigation bar to those present."""
    from medopt import __version__

    titles = {"metrics": "Metrics", "per-class": "Per class", "curves": "ROC & confusion", "training": "Training",
              "latency": "Latency", "config": "Config"}
    anchors = [(a, t) for a, t in titles.items() if f'id="{a}"' in body]
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(title)}</title>'
            f"<style>{_CSS}</style></head><body>{_header(title, source, n, anchors)}"
            f'<main><div class="wrap">{body}</div></main>'
            f"<footer>medopt {_e(__version__)} · self-contained report</footer></body></html>")


# ------------------------------------------------------------------------------------------------------ public
def write_report(
    path: Path,
    *,
    title: str,
    metrics: dict,
    ci: dict | None,
    roc: dict | None,
    confusion: list | None,
    class_names: Sequence[str],
    history: dict[str, list[float]] | None,
    latency: dict | None,
    config_yaml: str | None,
    extra_tables: dict[str, list[dict]] | None = None,
    data_source: str | None = None,
    ci_level: float = 0.95,
) -> Path:
    """Render the evaluation report to one self-contained HTML file, written atomically.

    Args:
        metrics: compute_metrics output (other numeric scalars are listed after the standard ones).
        ci: bootstrap_ci output, or None. roc: roc_points output, or None.
        confusion: (C, C) counts, or (K, 2, 2) for multilabel. class_names: labels for the confusion axes.
        history: per-epoch series such as train_loss, val_loss, val_auc, lr. latency: latency_by_batch output.
        config_yaml: the resolved config, shown collapsed; its data section names the data source.
        extra_tables: titled tables (e.g. compression comparisons), one dict per row.
        data_source: shown in the header; defaults to ``data.source (data.path)`` from config_yaml.
        ci_level: the confidence level ``ci`` was computed at, for the column header.

    Returns:
        ``path``.
    """
    body = [
        _cards(metrics, ci, ci_level),
        _metrics_section(metrics, ci, ci_level),
        _per_class_section(metrics),
        _plots_section(roc, confusion, class_names),
        _history_section(history),
        _latency_section(latency),
        _extra_sections(extra_tables),
        _config_section(config_yaml),
    ]
    page = _page(title, "".join(body), data_source or _data_source_from_config(config_yaml), metrics.get("n"))
    out = Path(path)
    atomic_write_text(out, page)
    log.info("wrote evaluation report %s (%d bytes)", out, len(page))
    return out
