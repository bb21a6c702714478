"""Report figures rendered with matplotlib's Agg canvas to PNG bytes.

Why: the HTML report must be one self-contained file, so every figure is a PNG that the report embeds as a base64
data URI. Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot global state, no GUI backend).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medopt.errors import MedoptError

#: Colour cycle shared by all figures (colour-blind friendly, Okabe-Ito based).
PALETTE: tuple[str, ...] = (
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#7F7F7F", "#F0E442", "#000000",
)
_DPI = 110


class PlotInputError(MedoptError, ValueError):
    """Data handed to a plot has the wrong shape or is empty."""


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _style(ax: Any) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=8.5, colors="#374151")


def to_png(fig: Any) -> bytes:
    """Render a figure to PNG bytes (metadata stripped so equal figures give equal bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white", metadata={"Software": None})
    return buf.getvalue()


def png_data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI, so the image lives inside the HTML file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def roc_png(roc: Mapping[str, Mapping[str, Any]]) -> bytes:
    """ROC curves, one per class, labelled with their AUC, over the chance diagonal."""
    if not roc:
        raise PlotInputError("roc has no curves to plot")
    fig = _figure(5.2, 4.6)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="#9ca3af", linewidth=1, label="chance")
    for i, (name, curve) in enumerate(roc.items()):
        auc = float(curve.get("auc", math.nan))
        label = f"{name}  (AUC {auc:.3f})" if math.isfinite(auc) else f"{name}"
        ax.plot(curve["fpr"], curve["tpr"], color=PALETTE[i % len(PALETTE)], linewidth=1.8, label=label)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("False positive rate (1 - specificity)", fontsize=9)
    ax.set_ylabel("True positive rate (sensitivity)", fontsize=9)
    _style(ax)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    return to_png(fig)


def _heatmap(ax: Any, counts: np.ndarray, ticks: Sequence[str], title: str | None = None) -> None:
    """Row-normalised heatmap annotated with the count and row percentage in each cell."""
    rows = counts.sum(axis=1, keepdims=True)
    frac = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    n = counts.shape[0]
    size = max(6.0, 10.0 - 0.35 * n)
    for r in range(n):
        for c in range(n):
            colour = "white" if frac[r, c] > 0.55 else "#111827"
            ax.text(c, r, f"{int(counts[r, c])}\n{100 * frac[r, c]:.1f}%", ha="center", va="center",
                    fontsize=size, color=colour)
    rotate = n > 4 or sum(len(str(t)) for t in ticks) > 28
    ax.set_xticks(range(n), [str(t) for t in ticks], rotation=30 if rotate else 0, ha="right" if rotate else "center",
                  rotation_mode="anchor")
    ax.set_yticks(range(n), [str(t) for t in ticks])
    ax.tick_params(labelsize=8.5, length=0)
    ax.set_xlabel("Predicted", fontsize=9)
    ax.set_ylabel("True", fontsize=9)
    if title:
        ax.set_title(title, fontsize=9.5)


def confusion_png(confusion: Sequence[Any], class_names: Sequence[str]) -> bytes:
    """Annotated confusion heatmap; a (K, 2, 2) multilabel input gives one small panel per label."""
    cm = np.asarray(confusion, dtype=np.float64)
    names = [str(n) for n in class_names]
    if cm.ndim == 3 and cm.shape[1:] == (2, 2):
        if cm.shape[0] != len(names):
            raise PlotInputError(f"confusion has {cm.shape[0]} labels but class_names has {len(names)}")
        cols = min(2 if cm.shape[0] <= 4 else 3, cm.shape[0])
        nrows = math.ceil(cm.shape[0] / cols)
        fig = _figure(2.5 * cols, 2.4 * nrows)
        for k, name in enumerate(names):
            _heatmap(fig.add_subplot(nrows, cols, k + 1), cm[k], ("neg", "pos"), title=name)
        return to_png(fig)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(names):
        raise PlotInputError(f"confusion shape {cm.shape} does not fit {len(names)} class names")
    side = min(9.0, 2.6 + 0.6 * len(names))
    fig = _figure(side + 0.4, side)
    _heatmap(fig.add_subplot(), cm, names)
    return to_png(fig)


def _split_history(history: Mapping[str, Sequence[float]]) -> list[tuple[str, list[str]]]:
    """Group history keys into panels: losses, other metrics, learning rate."""
    keys = [k for k, v in history.items() if len(v) > 0]
    losses = [k for k in keys if "loss" in k.lower()]
    rates = [k for k in keys if k.lower() == "lr" or k.lower().endswith("_lr") or k.lower().startswith("lr")]
    # Bookkeeping columns (epoch index, timings, throughput) are not quality curves.
    bookkeeping = {"epoch", "epoch_seconds", "samples_per_s", "seconds", "samples"}
    others = [k for k in keys if k not in losses and k not in rates and k.lower() not in bookkeeping]
    panels = [("Loss", losses), ("Metrics", others), ("Learning rate", rates)]
    return [(title, ks) for title, ks in panels if ks]


def history_png(history: Mapping[str, Sequence[float]]) -> bytes:
    """Training curves per epoch: a loss panel, a metric panel and a learning-rate panel (those that apply)."""
    from matplotlib.ticker import MaxNLocator

    panels = _split_history(history)
    if not panels:
        raise PlotInputError("history has no non-empty series to plot")
    fig = _figure(3.6 * len(panels) + 0.6, 3.3)
    for p, (title, keys) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), p + 1)
        for i, key in enumerate(keys):
            values = np.asarray(history[key], dtype=np.float64)
            epochs = np.arange(1, len(values) + 1)
            style = "--" if key.lower().startswith("train") else "-"
            ax.plot(epochs, values, style, color=PALETTE[i % len(PALETTE)], linewidth=1.7,
                    marker="o" if len(values) <= 30 else None, markersize=3, label=key)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if title == "Learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        _style(ax)
        ax.legend(fontsize=8, frameon=False)
    return to_png(fig)
