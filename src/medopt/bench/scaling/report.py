"""HTML reports for the two autoscaling benchmarks: ``benchmarks/autoscale.py`` and ``benchmarks/regime.py``.

Self-contained like the bench report (inline CSS, figures as PNG data URIs, every text HTML-escaped), so a results
JSON and its report can be copied anywhere together. The functions read the JSON the scripts write (as loaded with
``json.loads``); optional keys may be missing, since partial or older results should still render.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medopt.atomic import atomic_write_text
from medopt.bench.report import CSS, figure, img_tag
from medopt.bench.scaling.regime import PLACEMENTS
from medopt.evaluate.plots import PALETTE, to_png

_CSS = CSS + "tr.met td{background:#ecfdf5}tr.missed td{background:#fef2f2;color:#991b1b;font-weight:600}"
_NO_WINNER = "#d1d5db"  # a grid cell where no placement meets the SLO
_ROLLING_S = 10.0  # width of the rolling p99 window


# --- small helpers -----------------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any, digits: int = 1) -> str:
    """A number for a table cell; None, NaN and infinities spelled out rather than crashing the format."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    return _e(value)


def _pct(value: Any) -> str:
    return "—" if not isinstance(value, (int, float)) or math.isnan(value) else f"{100 * value:.2f}%"


def _flat(value: Any) -> str:
    """A nested dict/list as one readable line (for claims and notes)."""
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_flat(v)}" for k, v in value.items()) or "—"
    if isinstance(value, (list, tuple)):
        return ", ".join(_flat(v) for v in value) or "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] | None = None) -> str:
    """``rows`` hold already-escaped cell HTML; ``head`` is plain text."""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = []
    for i, row in enumerate(rows):
        cls = f" class='{classes[i]}'" if classes and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return f"<table><tr>{th}</tr>{''.join(body)}</table>"


def _page(title: str, body: Sequence[str]) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{_CSS}</style>"
            f"</head><body>{''.join(body)}</body></html>")


def _goals_section(goals: Sequence[Mapping[str, Any]]) -> str:
    """Goals with met and missed rows highlighted, so a missed target is seen first."""
    if not goals:
        return "<h2>Goals</h2><p class='note'>no goals recorded</p>"
    rows = [[_e(g.get("name")), _e(_flat(g.get("value"))), _e(g.get("target")), "met" if g.get("met") else "missed"]
            for g in goals]
    classes = ["met" if g.get("met") else "missed" for g in goals]
    return "<h2>Goals</h2>" + _table(["goal", "value", "target", "result"], rows, classes)


def _header_note(result: Mapping[str, Any]) -> str:
    """Mode, date and the machine, so a report is never read without knowing where it was measured."""
    fp = result.get("fingerprint") or {}
    machine = {k: fp[k] for k in ("cpu_model", "cpu_count", "cpu_affinity", "platform", "python") if k in fp}
    parts = [f"{k}: {result[k]}" for k in ("benchmark", "mode", "date") if k in result]
    if result.get("loaded"):
        parts.append("machine was loaded during the run")
    if machine:
        parts.append("machine: " + _flat(machine))
    return f"<p class='note'>{_e(' | '.join(parts))}</p>" if parts else ""


def _series(points: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    """One trajectory column as floats, missing or None values as NaN (so lines break instead of crashing)."""
    return np.asarray([float(p[key]) if p.get(key) is not None else np.nan for p in points], dtype=float)


# --- autoscale ---------------------------------------------------------------------------------------------------


def panic_intervals(points: Sequence[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """(start, end) of every stretch of samples in panic mode; a stretch ends at the next non-panic sample."""
    spans: list[tuple[float, float]] = []
    start: float | None = None
    for p in points:
        panic = p.get("mode") == "panic"
        if panic and start is None:
            start = float(p["t"])
        elif not panic and start is not None:
            spans.append((start, float(p["t"])))
            start = None
    if start is not None:
        spans.append((start, float(points[-1]["t"])))
    return spans


def rolling_p99(samples: Mapping[str, Sequence[Any]], window_s: float = _ROLLING_S
                ) -> tuple[np.ndarray, np.ndarray]:
    """p99 of the successful requests scheduled in the trailing ``window_s``, evaluated every fifth of a window."""
    t = np.asarray(samples.get("scheduled_s", []), dtype=float)
    lat = np.asarray(samples.get("latency_ms", []), dtype=float)
    ok = np.asarray(samples.get("ok", [True] * t.size), dtype=bool)
    if t.size == 0 or t.size != lat.size or t.size != ok.size:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(t)
    t, lat = t[order], np.where(ok[order], lat[order], np.nan)
    ends = np.arange(t[0] + window_s, t[-1] + window_s / 5, window_s / 5)
    out = []
    for end in ends:
        chunk = lat[np.searchsorted(t, end - window_s, side="right"):np.searchsorted(t, end, side="right")]
        chunk = chunk[~np.isnan(chunk)]
        out.append(float(np.quantile(chunk, 0.99)) if chunk.size else np.nan)
    return ends, np.asarray(out, dtype=float)


def controller_png(run: Mapping[str, Any], title: str, slo_ms: float | None = None) -> bytes:
    """Replicas (ready, desired, starting) and queued/in-flight requests over time, panic stretches shaded; with
    per-request ``samples`` a second panel shows the rolling p99 against the SLO."""
    traj = run.get("trajectory") or []
    samples = run.get("samples")
    has_p99 = bool(samples) and len(samples.get("scheduled_s", [])) > 0
    fig = figure(7.2, 5.0 if has_p99 else 3.4)
    ax = fig.add_subplot(2, 1, 1) if has_p99 else fig.add_subplot()
    t = _series(traj, "t")
    for key, style, colour in (("ready", "-", PALETTE[0]), ("desired", "--", PALETTE[1]),
                               ("starting", ":", PALETTE[2])):
        ax.step(t, _series(traj, key), style, where="post", color=colour, linewidth=1.4, label=key)
    for i, (a, b) in enumerate(panic_intervals(traj)):
        ax.axvspan(a, b, color="#fca5a5", alpha=0.35, linewidth=0, label="panic" if i == 0 else None)
    ax.set_ylabel("replicas")
    ax.set_xlabel("time (s)")
    ax2 = ax.twinx()
    ax2.plot(t, _series(traj, "queued"), color=PALETTE[3], linewidth=1, alpha=0.8, label="queued")
    ax2.plot(t, _series(traj, "concurrency"), color=PALETTE[4], linewidth=1, alpha=0.8, label="in flight")
    ax2.set_ylabel("requests")
    handles = ax.get_legend_handles_labels()
    extra = ax2.get_legend_handles_labels()
    ax.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize=7, loc="upper left", ncol=3)
    ax.set_title(title, fontsize=10)
    if has_p99:
        _p99_panel(fig.add_subplot(2, 1, 2, sharex=ax), samples, slo_ms)
    return to_png(fig)


def _p99_panel(ax: Any, samples: Mapping[str, Any], slo_ms: float | None) -> None:
    ends, p99 = rolling_p99(samples)
    ax.plot(ends, p99, color=PALETTE[0], linewidth=1.4, label=f"p99, trailing {_ROLLING_S:g} s")
    if slo_ms:
        ax.axhline(slo_ms, color="#dc2626", linestyle="--", linewidth=1, label="SLO")
    ax.set_ylabel("p99 (ms)")
    ax.set_xlabel("time (s)")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(True, color="#e5e7eb")


def validation_png(rows: Sequence[Mapping[str, Any]], real: Mapping[str, Mapping[str, Any]]) -> bytes:
    """Small multiples, one per validated run: real and simulated ready replicas over time."""
    n = max(1, len(rows))
    cols = min(3, n)
    nrows = math.ceil(n / cols)
    fig = figure(3.2 * cols, 2.3 * nrows)
    for i, row in enumerate(rows):
        ax = fig.add_subplot(nrows, cols, i + 1)
        name = str(row.get("scenario"))
        traj = (real.get(name) or {}).get("trajectory") or []
        if traj:
            ax.step(_series(traj, "t"), _series(traj, "ready"), where="post", color=PALETTE[0], label="real ready")
        sim = row.get("sim_trajectory") or []
        if sim:
            ax.step(_series(sim, "t"), _series(sim, "ready"), "--", where="post", color=PALETTE[1],
                    label="sim ready")
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=6)
    return to_png(fig)


def _run_row(name: str, run: Mapping[str, Any]) -> list[str]:
    lat = run.get("latency") or {}
    errors = run.get("errors")
    errors_text = _flat(errors) if isinstance(errors, (Mapping, list)) else str(errors if errors is not None else "—")
    return [_e(name), _pct(run.get("slo_attainment")), _num(run.get("replica_seconds")), _num(lat.get("p50_ms")),
            _num(lat.get("p99_ms")), _num(run.get("cold_starts")), _num(run.get("cold_start_s"), 2),
            _e(errors_text)]


_RUN_HEAD = ["run", "SLO attainment", "replica-seconds", "p50 ms", "p99 ms", "cold starts", "cold start s", "errors"]


def _validation_table(rows: Sequence[Mapping[str, Any]]) -> str:
    body = [[_e(r.get("scenario")), _num(r.get("real_p50_ms")), _num(r.get("sim_p50_ms")), _pct(r.get("p50_error")),
             _num(r.get("real_p99_ms")), _num(r.get("sim_p99_ms")), _pct(r.get("p99_error")),
             _pct(r.get("ready_within_1")), _num(r.get("real_replica_seconds")), _num(r.get("sim_replica_seconds")),
             _pct(r.get("real_attainment")), _pct(r.get("sim_attainment"))] for r in rows]
    head = ["scenario", "real p50", "sim p50", "p50 error", "real p99", "sim p99", "p99 error", "ready within ±1",
            "real replica-s", "sim replica-s", "real attainment", "sim attainment"]
    return _table(head, body)


def _from_zero_section(zero: Mapping[str, Any] | None) -> str:
    if not zero:
        return "<h2>Scale from zero</h2><p class='note'>not measured</p>"
    body = [[_num(zero.get("first_latency_ms")), _num(zero.get("first_ok")), _num(zero.get("cold_start_s"), 2),
             _num(zero.get("ok")), _num(zero.get("requests")), _e(_flat(zero.get("errors")))]]
    return ("<h2>Scale from zero</h2><p>KPA with minReplicas 0: the first request waits for a cold start.</p>"
            + _table(["first latency ms", "first ok", "cold start s", "ok", "requests", "errors"], body))


def _trace_note(result: Mapping[str, Any]) -> str:
    parts = []
    if result.get("slo_ms") is not None:
        parts.append(f"SLO p99 {result['slo_ms']} ms")
    if isinstance(result.get("replica_capacity_rps"), (int, float)):
        parts.append(f"one replica serves {result['replica_capacity_rps']:.1f} req/s under its CPU limit")
    trace = result.get("trace") or []
    if trace:
        steps = ", ".join(f"{_flat(s.get('seconds'))} s at {_flat(s.get('capacity_multiple'))}x" for s in trace)
        parts.append(f"trace: {steps}")
    for key in ("model", "input_px", "cpu_limit"):
        if key in result:
            parts.append(f"{key}: {result[key]}")
    return f"<p class='note'>{_e('; '.join(parts))}</p>" if parts else ""


def autoscale_html(result: dict[str, Any]) -> str:
    """The autoscaling benchmark's report: goals, each controller over time, the comparison, the simulator check and
    the scale-from-zero latency."""
    controllers: dict[str, Any] = result.get("controllers") or {}
    short: dict[str, Any] = result.get("short_runs") or {}
    slo = result.get("slo_ms")
    body = ["<h1>medopt bench: autoscaling controllers</h1>", _header_note(result), _trace_note(result),
            _goals_section(result.get("goals") or []), "<h2>Controllers over time</h2>",
            "<p class='note'>replicas on the left axis, queued and in-flight requests on the right; panic mode "
            "shaded. A rolling p99 is drawn only where the run kept per-request samples.</p>"]
    for name, run in controllers.items():
        body.append(f"<h3>{_e(name)}</h3>")
        body.append(img_tag(controller_png(run, f"{name}: replicas and load", slo), f"controller {name}"))
    body.append("<h2>Controller comparison</h2>")
    body.append(_table(_RUN_HEAD, [_run_row(n, r) for n, r in controllers.items()]))
    if short:
        body.append("<h3>Short runs</h3>" + _table(_RUN_HEAD, [_run_row(n, r) for n, r in short.items()]))
    rows = result.get("validation") or []
    body.append("<h2>Simulator validation</h2>")
    if rows:
        body.append(_validation_table(rows))
        body.append(img_tag(validation_png(rows, {**short, **controllers}), "real vs simulated replicas"))
    else:
        body.append("<p class='note'>no validation rows</p>")
    body.append(_from_zero_section(result.get("scale_from_zero")))
    return _page("medopt autoscaling report", body)


# --- regime ------------------------------------------------------------------------------------------------------


def placement_colours(names: Sequence[str | None]) -> dict[str, str]:
    """A fixed colour per placement (known ones in PLACEMENTS order, so maps are comparable across reports)."""
    known = list(PLACEMENTS) + sorted({str(n) for n in names if n is not None} - set(PLACEMENTS))
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(known)}


def _cell_text(row: Mapping[str, Any], by: str) -> str:
    if by == "by_p99":
        return f"{row[by]}\n{_flat_ms(row.get('p99_ms'))}"
    if row.get(by) is None:
        return "no placement\nmeets SLO"
    cost = row.get("cost_per_1000")
    return f"{row[by]}\n{cost:.3g}/1000" if isinstance(cost, (int, float)) else str(row[by])


def _flat_ms(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "—"
    return "∞ ms" if math.isinf(value) else f"{value:.0f} ms"


def _text_colour(hex_colour: str) -> str:
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(hex_colour)
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"


def _heatmap(ax: Any, cells: Mapping[tuple[float, float], Mapping[str, Any]], bws: list[float], rtts: list[float],
             by: str, colours: Mapping[str, str]) -> None:
    """One bandwidth x RTT grid, each cell coloured by its winner under ``by`` and labelled with its figure."""
    from matplotlib.colors import to_rgb

    rgb = np.ones((len(bws), len(rtts), 3))
    for (bw, rtt), row in cells.items():
        i, j = bws.index(bw), rtts.index(rtt)
        colour = colours.get(str(row.get(by)), _NO_WINNER) if row.get(by) is not None else _NO_WINNER
        rgb[i, j] = to_rgb(colour)
        ax.text(j, i, _cell_text(row, by), ha="center", va="center", fontsize=6.5, color=_text_colour(colour))
    ax.imshow(rgb, origin="lower", aspect="auto")
    ax.set_xticks(range(len(rtts)), [f"{r:g}" for r in rtts], fontsize=8)
    ax.set_yticks(range(len(bws)), [f"{b:g}" for b in bws], fontsize=8)
    ax.set_xlabel("RTT (ms)")
    ax.set_ylabel("bandwidth (Mbit/s)")
    ax.set_title("winner by p99" if by == "by_p99" else "cheapest meeting the SLO", fontsize=9)


def regime_png(rows: Sequence[Mapping[str, Any]], title: str, colours: Mapping[str, str]) -> bytes:
    """Two maps for one (model, rate): winner by p99 and winner by cost, a shared legend of placements."""
    from matplotlib.patches import Patch

    cells = {(float(r["bandwidth_mbit"]), float(r["rtt_ms"])): r for r in rows}
    bws = sorted({k[0] for k in cells})
    rtts = sorted({k[1] for k in cells})
    fig = figure(8.6, 1.2 + 0.75 * len(bws))
    for k, by in enumerate(("by_p99", "by_cost")):
        _heatmap(fig.add_subplot(1, 2, k + 1), cells, bws, rtts, by, colours)
    used = sorted({str(r[b]) for r in rows for b in ("by_p99", "by_cost") if r.get(b) is not None},
                  key=list(colours).index)
    handles = [Patch(color=colours[p], label=p) for p in used]
    if any(r.get("by_cost") is None for r in rows):
        handles.append(Patch(color=_NO_WINNER, label="none meets the SLO"))
    fig.legend(handles=handles, loc="outside lower center", ncol=max(1, len(handles)), fontsize=7)
    fig.suptitle(title, fontsize=10)
    return to_png(fig)


def _groups(winners: Sequence[Mapping[str, Any]]) -> dict[tuple[str, float], list[Mapping[str, Any]]]:
    """Winner rows grouped by (model, rate), in the order the grid produced them."""
    out: dict[tuple[str, float], list[Mapping[str, Any]]] = {}
    for w in winners:
        out.setdefault((str(w["model"]), float(w["rate"])), []).append(w)
    return out


def _claims_table(claims: Mapping[str, Any]) -> str:
    if not claims:
        return "<p class='note'>no claims recorded</p>"
    return _table(["claim", "win counts"], [[_e(k.replace("_", " ")), _e(_flat(v))] for k, v in claims.items()])


def _spot_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "<p class='note'>no spot checks</p>"
    placements = sorted({p for r in rows for p in (r.get("real_p99_ms") or {})}, key=_placement_order)
    head = (["link", "rate"] + [f"real p99 {p}" for p in placements] + [f"sim p99 {p}" for p in placements]
            + ["planner", "planner real p99", "best real p99", "within 5%", "sim best", "real best"])
    body = []
    for r in rows:
        real, sim = r.get("real_p99_ms") or {}, r.get("sim_p99_ms") or {}
        body.append([_e(r.get("link")), _num(r.get("rate"))] + [_num(real.get(p)) for p in placements]
                    + [_num(sim.get(p)) for p in placements]
                    + [_e(r.get("planner")), _num(r.get("planner_real_p99_ms")), _num(r.get("best_real_p99_ms")),
                       _num(r.get("within_5pct")), _e(r.get("sim_best")), _e(r.get("real_best"))])
    classes = ["met" if r.get("within_5pct") else "missed" for r in rows]
    return _table(head, body, classes)


def _placement_order(name: str) -> tuple[int, str]:
    return (PLACEMENTS.index(name) if name in PLACEMENTS else len(PLACEMENTS), name)  # type: ignore[arg-type]


def _timing_note(result: Mapping[str, Any]) -> str:
    timing = result.get("timing") or {}
    grid = result.get("grid") or {}
    parts = []
    if "points" in timing:
        parts.append(f"{timing['points']} points simulated")
    if isinstance(timing.get("grid_wall_s"), (int, float)):
        parts.append(f"in {timing['grid_wall_s']:.1f} s")
    if grid.get("slo_ms") is not None:
        parts.append(f"SLO p99 {grid['slo_ms']} ms")
    if grid.get("duration_s") is not None:
        parts.append(f"{grid['duration_s']} s of Poisson load per point")
    return f"<p class='note'>{_e(', '.join(parts))}</p>" if parts else ""


def _at_scale_section(at_scale: Mapping[str, Any]) -> str:
    """The simulated hospital-scale trace per controller (optional: older results lack it)."""
    head = ["controller", "SLO attainment", "replica-seconds", "max ready", "p99 ms", "requests", "cold starts",
            "errors", "sim wall s"]
    rows = [[_e(name), _pct(c.get("slo_attainment")), _num(c.get("replica_seconds")), _num(c.get("max_ready")),
             _num(c.get("p99_ms")), _num(c.get("requests")), _num(c.get("cold_starts")), _e(_flat(c.get("errors"))),
             _num(c.get("sim_wall_s"), 2)] for name, c in (at_scale.get("controllers") or {}).items()]
    line = (f"peak {_flat(at_scale.get('peak_rps'))} req/s, SLO {_flat(at_scale.get('slo_ms'))} ms, fixed peak "
            f"{_flat(at_scale.get('fixed_replicas'))} replicas; simulated with the measured replica profile")
    note = f"<p class='note'>{_e(line)}</p>"
    return "<h2>At scale (simulated)</h2>" + note + _table(head, rows)


def regime_html(result: dict[str, Any]) -> str:
    """The regime map's report: goals, per (model, rate) the winning placement over bandwidth x RTT by p99 and by
    cost, the claims' win counts and the real spot checks."""
    winners = result.get("winners") or []
    colours = placement_colours([w.get(b) for w in winners for b in ("by_p99", "by_cost")])
    body = ["<h1>medopt bench: placement regime map</h1>", _header_note(result), _timing_note(result),
            _goals_section(result.get("goals") or []), "<h2>Regime maps</h2>",
            "<p class='note'>each cell: the winning placement and its p99 (left) or its cost per 1000 requests "
            "(right, the cheapest placement whose p99 meets the SLO; grey where none does).</p>"]
    for (model, rate), rows in _groups(winners).items():
        title = f"{model} at {rate:g} req/s"
        body.append(f"<h3>{_e(title)}</h3>")
        body.append(img_tag(regime_png(rows, title, colours), f"regime map {title}"))
    if not winners:
        body.append("<p class='note'>no grid points</p>")
    body.append("<h2>Claims</h2>" + _claims_table(result.get("claims") or {}))
    body.append("<h2>Spot checks</h2>" + _spot_table(result.get("spot_checks") or []))
    if result.get("at_scale"):
        body.append(_at_scale_section(result["at_scale"]))
    return _page("medopt regime report", body)


# --- writing -----------------------------------------------------------------------------------------------------


def write_report(html: str, path: Path) -> Path:  # noqa: A002 - the name the callers use; no escaping here
    """Write atomically (``medopt.atomic``), so a reader never sees half a report."""
    atomic_write_text(path, html)
    return Path(path)
