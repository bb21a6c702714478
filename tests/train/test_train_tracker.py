"""One epoch bookkeeping and one seed rule for the local loop, the Ray worker and federated clients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from medopt.config import TrainConfig
from medopt.train.seeding import derive_seed, epoch_seed, round_seed
from medopt.train.state import TrainingStateError, checkpoint_state
from medopt.train.tracker import HISTORY_KEYS, EpochTracker, epoch_row

TRAIN_STATS = {"loss": 0.5, "samples": 100.0, "seconds": 2.0, "samples_per_s": 50.0, "lr": 0.01}


def _row(epoch: int, auc: float) -> dict[str, float]:
    return epoch_row(epoch, TRAIN_STATS, 0.4, {"val_acc": 0.8, "val_bacc": 0.7, "val_auc": auc}, 3.0)


def _legacy(*keys: int) -> int:
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


@pytest.mark.parametrize("seed", [0, 7, 2**40 + 5])
def test_seeds_match_the_rules_they_replace(seed: int) -> None:
    # the local loop hashed (seed, epoch), the Ray worker (seed, epoch, rank), federated clients (seed, client, round)
    assert epoch_seed(seed, 3) == _legacy(seed, 3)
    assert epoch_seed(seed, 3, rank=2) == _legacy(seed, 3, 2)
    assert round_seed(seed, server_round=4, client_id=1) == _legacy(seed, 1, 4)
    assert derive_seed(seed, 0, 1000) != derive_seed(seed, 1, 0)  # the old seed + 1000 * client + round collided


def test_epoch_row_has_every_history_key_and_scales_throughput_by_world() -> None:
    row = _row(0, 0.9)
    assert tuple(row) == HISTORY_KEYS
    assert row["samples_per_s"] == 50.0
    assert epoch_row(0, TRAIN_STATS, 0.4, {}, 3.0, world=4)["samples_per_s"] == 200.0


def test_tracker_stops_early_and_finish_restores_the_best_weights() -> None:
    cfg = TrainConfig(epochs=10, monitor="val_auc", early_stopping_patience=2)
    tracker, model = EpochTracker.for_config(cfg), nn.Linear(2, 2)
    stopped_at = None
    for epoch, auc in enumerate([0.6, 0.9, 0.8, 0.7, 0.95]):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        tracker.record(_row(epoch, auc), model)
        if tracker.stops_after(epoch, cfg.epochs):
            stopped_at = epoch
            break
    assert stopped_at == 3
    state = checkpoint_state(model, None, None, stopped_at, tracker.history, extra=tracker.extra())
    result = tracker.finish(model, state)
    assert (result.best_epoch, result.best_score, result.epochs_run, result.stopped_early) == (1, 0.9, 4, True)
    assert torch.all(model.weight == 1.0)  # epoch 1's weights are back
    assert result.training_state() is state


def test_resume_replays_history_and_knows_it_had_stopped() -> None:
    cfg = TrainConfig(epochs=10, monitor="val_loss", early_stopping_patience=1)
    tracker, model = EpochTracker.for_config(cfg), nn.Linear(2, 2)
    for epoch in range(2):
        tracker.record(epoch_row(epoch, TRAIN_STATS, 1.0 - epoch, {"val_acc": 0, "val_bacc": 0, "val_auc": 0}, 1.0),
                       model)
    tracker.record(epoch_row(2, TRAIN_STATS, 5.0, {"val_acc": 0, "val_bacc": 0, "val_auc": 0}, 1.0), model)
    assert tracker.stops_after(2, cfg.epochs)
    state = checkpoint_state(model, None, None, 2, tracker.history, extra=tracker.extra())
    resumed = EpochTracker.resume(cfg, state)
    assert resumed.history == tracker.history and resumed.stopper.best_epoch == 1
    assert resumed.finished_before(3, cfg.epochs)
    assert resumed.best_model is not None and torch.equal(resumed.best_model["weight"], tracker.best_model["weight"])


def test_resume_without_best_weights_takes_the_restored_model_when_it_was_best() -> None:
    cfg = TrainConfig(epochs=5, monitor="val_auc")
    tracker, model = EpochTracker.for_config(cfg), nn.Linear(2, 2)
    tracker.record(_row(0, 0.5))
    tracker.record(_row(1, 0.9))
    state = checkpoint_state(model, None, None, 1, tracker.history)  # an older state: no extra
    resumed = EpochTracker.resume(cfg, state, model)
    assert resumed.best_model is not None and not resumed.stopped


def test_resume_rejects_a_history_without_the_recorded_keys() -> None:
    state = checkpoint_state(nn.Linear(2, 2), None, None, 0, {"epoch": [0.0]})
    with pytest.raises(TrainingStateError, match="history is missing"):
        EpochTracker.resume(TrainConfig(), state)


def test_finish_keeps_the_last_weights_when_the_monitor_was_never_finite() -> None:
    tracker, model = EpochTracker("val_auc", None), nn.Linear(2, 2)
    tracker.record(_row(0, math.nan), model)
    result = tracker.finish(model, checkpoint_state(model, None, None, 0, tracker.history))
    assert result.best_epoch == 0 and math.isnan(result.best_score)
