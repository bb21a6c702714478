"""The HTML report: self-contained, escaped, complete, written atomically."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest

from medopt.evaluate.metrics import compute_metrics, roc_points
from medopt.evaluate.plots import PlotInputError
from medopt.evaluate.report import METRIC_LABELS, ReportInputError, write_report
from medopt.evaluate.stats import bootstrap_ci

NAMES = ["normal", "<script>alert(1)</script>", "pneumonia"]
CONFIG = "data:\n  source: medmnist\n  path: pneumonia.npz\nmodel:\n  name: resnet18  # a <b>comment</b>\n"


def _inputs(task: str = "multiclass", c: int = 3) -> dict:
    rng = np.random.default_rng(0)
    if task == "multilabel":
        y = rng.integers(0, 2, (40, c))
        p = np.clip(0.4 * y + 0.6 * rng.random((40, c)), 0, 1)
    else:
        y = rng.integers(0, c, 40)
        p = rng.dirichlet(np.ones(c), 40)
        p[np.arange(40), y] += 0.5
        p /= p.sum(axis=1, keepdims=True)
    names = NAMES if task != "multilabel" else ["a", "b", "c"]
    m = compute_metrics(y, p, task, names)
    return {"metrics": m, "ci": bootstrap_ci(y, p, task, n_resamples=50), "roc": roc_points(y, p, task, names),
            "confusion": m["confusion_matrix"], "class_names": names}


@pytest.fixture(scope="module")
def full_report(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("report") / "sub" / "report.html"
    out = write_report(
        path, title="Run <1> & co", **_inputs(),
        history={"train_loss": [1.0, 0.7, 0.5], "val_loss": [1.1, 0.8, 0.7], "val_auc": [0.6, 0.7, 0.8],
                 "lr": [1e-3, 5e-4, 1e-4]},
        latency={"latency": {"1": {"median_ms": 1.5, "p95_ms": 2.0, "mean_ms": 1.6, "min_ms": 1.4, "runs": 5}},
                 "peak_memory_mb": 12.25, "params": 11_000_000},
        config_yaml=CONFIG,
        extra_tables={"Compression <vs> baseline": [{"model": "int8", "auc": 0.91, "p_value": 0.4},
                                                    {"model": "prune30", "auc": 0.9, "size_mb": 3.2}]},
    )
    assert out == path
    return path, path.read_text(encoding="utf-8")


def test_report_lists_every_metric_with_ci(full_report) -> None:
    _, text = full_report
    for label in METRIC_LABELS.values():
        assert f">{label}<" in text
    assert "95% CI" in text
    assert text.count(" – ") >= len(METRIC_LABELS)  # low – high per metric


def test_report_embeds_pngs_and_references_nothing_external(full_report) -> None:
    _, text = full_report
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(uris) == 3  # ROC, confusion, training curves
    assert all(base64.b64decode(u)[:8] == b"\x89PNG\r\n\x1a\n" for u in uris)
    assert "http" not in text.lower()
    assert not re.search(r"<(link|script)\b", text, re.IGNORECASE)


def test_report_escapes_all_text(full_report) -> None:
    _, text = full_report
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script" not in text.lower()
    assert "Run &lt;1&gt; &amp; co" in text
    assert "Compression &lt;vs&gt; baseline" in text
    assert "&lt;b&gt;comment&lt;/b&gt;" in text


def test_report_has_header_sections_and_tables(full_report) -> None:
    _, text = full_report
    assert "Data: medmnist (pneumonia.npz)" in text
    assert "Evaluated on 40 samples" in text
    assert re.search(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", text)
    assert "<details><summary>Resolved configuration (YAML)</summary>" in text
    for anchor in ("metrics", "per-class", "curves", "training", "latency", "config"):
        assert f'id="{anchor}"' in text and f'href="#{anchor}"' in text
    assert ">batch size<" in text and ">median (ms)<" in text and ">1.500<" in text
    assert ">peak memory (MiB)<" in text and ">12.250<" in text and ">11,000,000<" in text
    assert ">size_mb<" in text and ">3.200<" in text and ">int8<" in text


def test_report_written_atomically_and_overwrites(full_report, tmp_path) -> None:
    path, _ = full_report
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]
    target = tmp_path / "r.html"
    target.write_text("old")
    write_report(target, title="t", metrics={"acc": 0.5, "auc": float("nan")}, ci=None, roc=None, confusion=None,
                 class_names=[], history=None, latency=None, config_yaml=None, data_source="folder x")
    text = target.read_text()
    assert text.startswith("<!DOCTYPE html>") and "Data: folder x" in text
    assert ">n/a<" in text and "data:image/png" not in text
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_multilabel_report_renders_per_label_confusion(tmp_path) -> None:
    text = write_report(tmp_path / "ml.html", title="ml", **_inputs("multilabel"), history=None, latency=None,
                        config_yaml=None).read_text()
    assert text.count("data:image/png;base64,") == 2


def test_report_rejects_mismatched_inputs(tmp_path) -> None:
    base = dict(title="t", metrics={"acc": 0.5}, ci=None, roc=None, history=None, config_yaml=None)
    with pytest.raises(PlotInputError, match="does not fit 3 class names"):
        write_report(tmp_path / "a.html", **base, confusion=[[1, 2], [3, 4]], class_names=NAMES, latency=None)
    with pytest.raises(ReportInputError, match="latency"):
        write_report(tmp_path / "b.html", **base, confusion=None, class_names=[], latency={"1": [2.0]})
    assert not list(tmp_path.iterdir())
