from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from medopt.config import SchedulerConfig, TrainConfig
from medopt.train.loop import (
    HISTORY_KEYS,
    MetricsError,
    NonFiniteLossError,
    TrainingStateError,
    checkpoint_state,
    evaluate_epoch,
    fit,
    restore_state,
    train_one_epoch,
)
from medopt.train.losses import build_loss
from medopt.train.optim import build_optimizer, build_scheduler

from train_helpers import blobs, loader, multilabel_blobs, tiny_model

CPU = torch.device("cpu")
TIMING = {"epoch_seconds", "samples_per_s"}


def _cfg(**kw: object) -> TrainConfig:
    base = {"epochs": 4, "optimizer": "adam", "lr": 0.01, "device": "cpu", "seed": 3,
            "scheduler": SchedulerConfig(t0=3)}
    return TrainConfig(**{**base, **kw})


def _fit(model: nn.Module, cfg: TrainConfig, metrics_fn: Callable, **kw: object):
    return fit(model, loader(blobs(64, seed=1)), loader(blobs(32, seed=2), shuffle=False), cfg, task="binary",
               metrics_fn=metrics_fn, **kw)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _no_timing(history: dict[str, list[float]]) -> dict[str, list[float]]:
    return {k: v for k, v in history.items() if k not in TIMING}


def test_tiny_model_learns_separable_data(metrics_fn: Callable) -> None:
    rows: list[tuple[int, dict]] = []
    result = _fit(tiny_model(), _cfg(epochs=5), metrics_fn, on_epoch_end=lambda e, row: rows.append((e, row)))
    h = result.history
    assert set(h) == set(HISTORY_KEYS) and all(len(v) == 5 for v in h.values())
    assert h["epoch"] == [0.0, 1.0, 2.0, 3.0, 4.0] and result.epochs_run == 5 and not result.stopped_early
    assert max(h["val_acc"]) >= 0.9 and h["train_loss"][-1] < h["train_loss"][0]
    assert result.best_score == max(h["val_auc"]) and h["val_auc"][result.best_epoch] == result.best_score
    assert [e for e, _ in rows] == [0, 1, 2, 3, 4] and rows[2][1]["val_loss"] == h["val_loss"][2]
    assert h["lr"][0] < 0.01 and all(s > 0 for s in h["samples_per_s"])


def test_seeded_runs_are_bit_identical(metrics_fn: Callable) -> None:
    a, b, c = tiny_model(seed=5), tiny_model(seed=5), tiny_model(seed=5)
    ra, rb = _fit(a, _cfg(), metrics_fn), _fit(b, _cfg(), metrics_fn)
    rc = _fit(c, _cfg(seed=4), metrics_fn)
    assert _same_weights(a, b) and _no_timing(ra.history) == _no_timing(rb.history)
    assert not _same_weights(a, c) and ra.history["train_loss"] != rc.history["train_loss"]


def _scripted_auc(scores: list[float]) -> Callable:
    calls = iter(scores)
    return lambda y_true, y_prob, task: {"acc": 0.5, "bacc": 0.5, "auc": next(calls)}


def test_early_stopping_stops_and_restores_best_weights() -> None:
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    model = tiny_model()

    def keep(epoch: int, row: dict) -> None:
        snapshots[epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    result = _fit(model, _cfg(epochs=10, early_stopping_patience=2), _scripted_auc([0.6, 0.9, 0.8, 0.7, 0.99]),
                  on_epoch_end=keep)
    assert result.stopped_early and result.epochs_run == 4 and sorted(snapshots) == [0, 1, 2, 3]
    assert (result.best_epoch, result.best_score) == (1, 0.9)
    assert all(torch.equal(model.state_dict()[k], snapshots[1][k]) for k in snapshots[1])
    assert not torch.equal(snapshots[3]["1.weight"], snapshots[1]["1.weight"])
    last = result.training_state()["model"]  # the checkpoint keeps the last epoch, for resuming
    assert torch.equal(last["1.weight"], snapshots[3]["1.weight"])


def test_monitor_val_loss_is_minimised(metrics_fn: Callable) -> None:
    result = _fit(tiny_model(), _cfg(epochs=3, monitor="val_loss"), metrics_fn)
    assert result.best_score == min(result.history["val_loss"]) and result.monitor == "val_loss"


def test_resume_matches_straight_run(metrics_fn: Callable) -> None:
    straight = tiny_model(seed=1)
    r4 = _fit(straight, _cfg(epochs=4), metrics_fn)
    first = tiny_model(seed=1)
    r2 = _fit(first, _cfg(epochs=2), metrics_fn)
    buf = io.BytesIO()
    torch.save(r2.training_state(), buf)
    state = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    resumed = tiny_model(seed=99)  # fresh objects; weights come from the state
    r = _fit(resumed, _cfg(epochs=4), metrics_fn, state=state)
    assert _same_weights(straight, resumed)
    assert _no_timing(r.history) == _no_timing(r4.history) and r.epochs_run == 4
    assert (r.best_epoch, r.best_score) == (r4.best_epoch, r4.best_score)
    assert _same_weights(straight, resumed)


def test_resume_after_early_stop_runs_nothing_more() -> None:
    model = tiny_model()
    r = _fit(model, _cfg(epochs=10, early_stopping_patience=1), _scripted_auc([0.8, 0.7]))
    again = _fit(tiny_model(seed=2), _cfg(epochs=10, early_stopping_patience=1), _scripted_auc([]),
                 state=r.training_state())
    assert again.stopped_early and again.epochs_run == 2 and again.best_epoch == 0


def test_start_epoch_without_state_sets_epoch_numbers_and_lr_phase(metrics_fn: Callable) -> None:
    cfg = _cfg(epochs=4, optimizer="sgd", lr=0.1, scheduler=SchedulerConfig(t0=5))
    result = _fit(tiny_model(), cfg, metrics_fn, start_epoch=3)
    assert result.history["epoch"] == [3.0] and result.epochs_run == 1
    # 64 samples / 16 = 4 batches; the last one runs at epoch 3.75 of the 5-epoch cosine cycle
    assert result.history["lr"][0] == pytest.approx(0.05 * (1 + math.cos(math.pi * 3.75 / 5)))
    with pytest.raises(ValueError, match="start_epoch"):
        _fit(tiny_model(), _cfg(epochs=2), metrics_fn, start_epoch=-1)


def test_checkpoint_round_trip_and_errors() -> None:
    model, cfg = tiny_model(), _cfg()
    opt = build_optimizer(model.parameters(), cfg)
    sched = build_scheduler(opt, cfg, 4)
    sched.step(1.5)
    state = checkpoint_state(model, opt, sched, 5, {"epoch": [5.0]})
    model2 = tiny_model(seed=8)
    opt2 = build_optimizer(model2.parameters(), cfg)
    sched2 = build_scheduler(opt2, cfg, 4)
    assert restore_state(state, model2, opt2, sched2) == 6
    assert _same_weights(model, model2) and opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert sched2.state_dict()["T_cur"] == 1.5
    with pytest.raises(TrainingStateError, match="missing keys"):
        restore_state({"epoch": 1}, model2, opt2, sched2)
    with pytest.raises(TrainingStateError, match="does not fit the model"):
        restore_state(state, tiny_model(num_outputs=3), None, None)
    with pytest.raises(TrainingStateError, match="no 'scheduler' state"):
        restore_state({**state, "scheduler": None}, model2, opt2, sched2)


def test_evaluate_epoch_matches_direct_computation() -> None:
    model, ds = tiny_model(num_outputs=3), blobs(20, seed=0, num_classes=3)
    loss_fn = build_loss("multiclass", TrainConfig(), None)
    out = evaluate_epoch(model, loader(ds, batch_size=6, shuffle=False), loss_fn, device=CPU, task="multiclass")
    model.eval()
    with torch.no_grad():
        logits = model(ds.tensors[0])
    assert out.loss == pytest.approx(loss_fn(logits, ds.tensors[1]).item(), rel=1e-6)
    np.testing.assert_allclose(out.y_prob, torch.softmax(logits, 1).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(out.y_true, ds.tensors[1].numpy())
    assert out.y_prob.shape == (20, 3) and np.allclose(out.y_prob.sum(1), 1.0)


def test_evaluate_epoch_rejects_single_logit() -> None:
    with pytest.raises(ValueError, match=r"\(B, C>=2\) logits"):
        evaluate_epoch(tiny_model(num_outputs=1), loader(blobs(8, 0)), nn.CrossEntropyLoss(), device=CPU,
                       task="binary")


def test_train_one_epoch_report_and_augment() -> None:
    model, cfg = tiny_model(), _cfg(optimizer="sgd", lr=0.1)
    opt = build_optimizer(model.parameters(), cfg)
    sched = build_scheduler(opt, cfg, 4)
    seen: list[int] = []
    out = train_one_epoch(model, loader(blobs(64, 0)), nn.CrossEntropyLoss(), opt, scheduler=sched, epoch=1,
                          device=CPU, augment=lambda x: (seen.append(len(x)), x.flip(-1))[1], grad_clip=1.0)
    assert out["samples"] == 64 and seen == [16, 16, 16, 16] and out["loss"] > 0
    # last batch (i=3 of 4) of epoch 1 with t0=3 runs at epoch 1.75: 0.1 * (1 + cos(pi * 1.75 / 3)) / 2
    assert out["lr"] == pytest.approx(0.05 * (1 + math.cos(math.pi * 1.75 / 3)))
    with pytest.raises(ValueError, match="grad_clip"):
        train_one_epoch(model, loader(blobs(8, 0)), nn.CrossEntropyLoss(), opt, device=CPU, grad_clip=0.0)


def test_non_finite_loss_raises() -> None:
    ds = blobs(8, 0)
    ds.tensors[0][0, 0, 0, 0] = math.nan
    model = tiny_model()
    opt = build_optimizer(model.parameters(), _cfg())
    with pytest.raises(NonFiniteLossError, match="epoch 0"):
        train_one_epoch(model, loader(ds), nn.CrossEntropyLoss(), opt, device=CPU)


def test_metrics_fn_must_return_required_keys() -> None:
    with pytest.raises(MetricsError, match=r"missing \['auc'\]"):
        _fit(tiny_model(), _cfg(epochs=1), lambda y, p, t: {"acc": 1.0, "bacc": 1.0})


def test_multilabel_path(metrics_fn: Callable) -> None:
    seen: list[np.ndarray] = []

    def record(y_true: np.ndarray, y_prob: np.ndarray, task: str) -> dict[str, float]:
        seen.append(y_prob)
        return metrics_fn(y_true, y_prob, task)

    cfg = _cfg(epochs=6, class_weighting=True, label_smoothing=0.1)
    counts = np.array([[30, 34], [34, 30]])
    result = fit(tiny_model(num_outputs=2), loader(multilabel_blobs(64, 1)),
                 loader(multilabel_blobs(32, 2), shuffle=False), cfg, task="multilabel", metrics_fn=record,
                 class_counts=counts)
    assert seen[0].shape == (32, 2) and ((seen[0] > 0) & (seen[0] < 1)).all()
    assert result.best_score >= 0.9 and result.history["train_loss"][-1] < result.history["train_loss"][0]


def test_resume_from_state_without_best_weights_keeps_last(caplog: pytest.LogCaptureFixture) -> None:
    """A bare checkpoint_state (as a Ray worker may write) cannot restore a best epoch that predates it."""
    model = tiny_model()
    r = _fit(model, _cfg(epochs=2), _scripted_auc([0.9, 0.5]))
    state = {**r.training_state(), "extra": {}}
    resumed = tiny_model(seed=4)
    with caplog.at_level("WARNING", logger="medopt.train.loop"):
        again = _fit(resumed, _cfg(epochs=3), _scripted_auc([0.6]), state=state)
    assert (again.best_epoch, again.best_score, again.epochs_run) == (0, 0.9, 3)
    assert "predates the resumed checkpoint" in caplog.text
    assert not torch.equal(resumed.state_dict()["1.weight"], state["model"]["1.weight"])  # trained one more epoch
