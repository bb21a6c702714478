"""The bench stage's HTML report: per link, placements with CIs, latency CDFs, and the split-point chart.

Self-contained like the evaluation report (inline CSS, figures as PNG data URIs, every text HTML-escaped).
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from medopt.evaluate.plots import png_data_uri, to_png

CSS = ("body{font:14px/1.5 -apple-system,Segoe UI,Roboto,Arial,sans-serif;margin:24px;color:#111827}"
        "table{border-collapse:collapse;margin:8px 0 16px}th,td{padding:4px 10px;border-bottom:1px solid #e5e7eb;"
        "text-align:right}th:first-child,td:first-child{text-align:left}h2{color:#0b3d74}"
        "img{max-width:100%}.note{color:#6b7280;font-size:12px}")


def figure(width: float, height: float) -> Any:
    """A pyplot-free figure on the Agg canvas (matplotlib imported only when a figure is drawn)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def img_tag(png: bytes, alt: str) -> str:
    """An inline <img> of ``png`` (a data URI: the report stays one self-contained file)."""
    return f'<img src="{png_data_uri(png)}" alt="{html.escape(alt)}">'


def cdf_png(samples: dict[str, list[list[float]]], title: str) -> bytes:
    """Empirical CDF of every request's response time, one line per placement (all windows pooled)."""
    fig = figure(6.4, 3.6)
    ax = fig.add_subplot()
    for placement, windows in samples.items():
        values = np.sort(np.concatenate([np.asarray(w, dtype=float) for w in windows if w] or [np.zeros(0)]))
        if values.size:
            ax.plot(values, np.arange(1, values.size + 1) / values.size, label=placement, linewidth=1.4)
    ax.set_xscale("log")
    ax.set_xlabel("response time (ms, log scale)")
    ax.set_ylabel("fraction of requests")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, color="#e5e7eb")
    return to_png(fig)


def split_chart_png(plan: dict[str, Any], title: str) -> bytes:
    """Per split point: edge and cloud compute (bars) and the int8 intermediate's bytes (line)."""
    splits = plan["splits"]
    names = [s["at"] for s in splits]
    fig = figure(7.0, 3.4)
    ax = fig.add_subplot()
    x = np.arange(len(names))
    ax.bar(x - 0.2, [s["edge_ms"] for s in splits], 0.4, label="edge half (ms, 1x)")
    ax.bar(x + 0.2, [s["cloud_ms"] for s in splits], 0.4, label="cloud half (ms)")
    ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("ms")
    ax2 = ax.twinx()
    ax2.plot(x, [s["wire_bytes"]["int8"] / 1024 for s in splits], "k.-", label="int8 bytes (KiB)")
    ax2.set_ylabel("KiB on the link")
    chosen = plan["chosen"]["at"]
    if chosen in names:
        ax.axvline(names.index(chosen), color="#dc2626", linestyle="--", linewidth=1)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    return to_png(fig)


def _ci(block: dict[str, Any] | None) -> str:
    if not block:
        return "—"
    return f"{block['median']:.1f} [{block['ci_low']:.1f}, {block['ci_high']:.1f}]"


def _placement_table(data: dict[str, Any]) -> str:
    rows = []
    for placement, s in data["placements"].items():
        acc = data["accuracy"].get(placement, {})
        errors = ", ".join(f"{k}: {v}" for k, v in s["errors"].items()) or "none"
        rows.append(f"<tr><td>{html.escape(placement)}</td><td>{_ci(s['mean_ms'])}</td><td>{_ci(s['p99_ms'])}</td>"
                    f"<td>{acc.get('agreement_with_fp32', float('nan')):.3f}</td>"
                    f"<td>{acc.get('accuracy', float('nan')):.3f}</td><td>{s['requests']}</td>"
                    f"<td>{html.escape(errors)}</td></tr>")
    head = ("<tr><th>placement</th><th>mean ms [95% CI]</th><th>p99 ms [95% CI]</th><th>agreement with fp32</th>"
            "<th>accuracy</th><th>requests</th><th>errors</th></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _versus(data: dict[str, Any]) -> str:
    parts = []
    for key, label in (("split_vs_cloud_fp32", "split vs cloud-only fp32"), ("split_vs_cloud_jpeg",
                                                                             "split vs cloud JPEG")):
        vs = data.get(key) or {}
        for metric in ("mean_ms", "p99_ms"):
            v = vs.get(metric)
            if v:
                parts.append(f"<li>{label}, {metric[:-3]}: {100 * v['reduction']:.1f}% lower "
                             f"[{100 * v['ci'][0]:.1f}, {100 * v['ci'][1]:.1f}] (n={v['n']} windows)</li>")
    return f"<ul>{''.join(parts)}</ul>" if parts else ""


def render_report(result: dict[str, Any], samples: dict[str, dict[str, list[list[float]]]]) -> str:
    """The whole report as one HTML string."""
    body = ["<h1>medopt bench: hybrid edge/cloud placements</h1>",
            f"<p class='note'>optimized model: {html.escape(str(result['optimized_model']))}; edge slowdown "
            f"{result['config']['edge_slowdown']}x, Poisson {result['config']['rate_rps']} req/s, "
            f"{result['config']['repeats']} interleaved windows of {result['config']['window_s']} s per placement. "
            "Negative reductions mean split was slower.</p>"]
    for link, data in result["links"].items():
        chosen = data["split_plan"]["chosen"]
        body.append(f"<h2>link {html.escape(link)}</h2><p class='note'>{html.escape(str(data['profile']))}</p>")
        body.append(_placement_table(data))
        body.append(_versus(data))
        body.append(f"<p>split chosen at <b>{html.escape(str(chosen['at']))}</b> with codec "
                    f"<b>{html.escape(str(chosen['codec']))}</b>: predicted {chosen['predicted_ms']:.1f} ms "
                    f"({html.escape(', '.join(f'{k} {v:.1f}' for k, v in chosen['parts_ms'].items()))}).</p>")
        body.append(img_tag(cdf_png(samples.get(link, {}), f"response-time CDF over {link}"), f"CDF {link}"))
        body.append(img_tag(split_chart_png(data["split_plan"], f"split points over {link}"), f"splits {link}"))
    return f"<!doctype html><html><head><meta charset='utf-8'><style>{CSS}</style></head><body>" \
           f"{''.join(body)}</body></html>"
