"""Ray Train: 1 and 2 DDP workers, per-epoch progress, checkpoint retention, resume, and a killed worker.

One local Ray head (2 CPUs) serves every Ray test of this module. The unit tests at the top need no Ray.
"""

from __future__ import annotations

import math
import os
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import torch
from sklearn.metrics import roc_auc_score

from medopt.config import ExperimentConfig, load_config
from medopt.data import ImageDataset, make_loader, synthetic_dataset
from medopt.models import create_model
from medopt.train.loop import HISTORY_KEYS, checkpoint_state, evaluate_epoch
from medopt.train.ray_runtime import MAX_SOCKET_PATH, SESSION_SUFFIX_CHARS, ray_session, ray_temp_dir
from medopt.train.ray_trainer import RayTrainOutcome, fit_result_from_state, run_ray_training
from medopt.train.ray_worker import ResumeError, per_worker_batch
from medopt.train.stage import train_model



def _cfg(*overrides: str, samples: int = 400, batch: int = 16) -> ExperimentConfig:
    base = ["model.name=tiny_cnn", "data.synthetic.image_size=16", "data.preprocess.image_size=16",
            f"data.synthetic.num_samples={samples}", f"train.batch_size={batch}", "train.epochs=4",
            "train.device=cpu", "train.num_threads=1"]
    return load_config(None, [*base, *overrides])


def _data(cfg: ExperimentConfig) -> ImageDataset:
    return synthetic_dataset(cfg.data.synthetic, cfg.data.seed, cfg.data.split)


def _auc(model: torch.nn.Module, cfg: ExperimentConfig, split: Any) -> float:
    loader = make_loader(split, cfg.data.preprocess, batch_size=256, shuffle=False, seed=0, task="binary")
    out = evaluate_epoch(model, loader, None, device=torch.device("cpu"), task="binary")
    return float(roc_auc_score(out.y_true, out.y_prob[:, 1]))


# ------------------------------------------------------------------------------------------------- no Ray needed
def test_temp_dir_in_run_folder_when_short_else_tmp(tmp_path: Path) -> None:
    short = Path("/tmp/r")
    assert ray_temp_dir(short) == short / "ray"
    long = tmp_path / ("x" * 80)
    chosen = ray_temp_dir(long)
    assert chosen.parent == Path("/tmp") and chosen.name.startswith("medopt-ray-")
    assert len(str(chosen)) + SESSION_SUFFIX_CHARS <= MAX_SOCKET_PATH
    assert ray_temp_dir(long) == chosen  # stable per run folder


@pytest.mark.parametrize(("batch", "world", "expected"), [(64, 1, 64), (64, 2, 32), (65, 2, 33), (1, 4, 1)])
def test_global_batch_is_split_over_workers(batch: int, world: int, expected: int) -> None:
    assert per_worker_batch(batch, world) == expected


def test_resume_from_without_state_is_rejected_before_ray_starts(tmp_path: Path) -> None:
    cfg = _cfg()
    with pytest.raises(ResumeError, match="training_state.pt"):
        run_ray_training(cfg, _data(cfg), run_dir=tmp_path, resume_from=str(tmp_path))


def test_fit_result_from_checkpoint_restores_best_weights_and_early_stop() -> None:
    cfg = _cfg("train.early_stopping_patience=1")
    best = create_model(cfg.model, in_chans=1, num_classes=2, input_size=16)
    last = create_model(cfg.model, in_chans=1, num_classes=2, input_size=16)
    with torch.no_grad():
        for p in last.parameters():
            p.add_(1.0)
    rows = {k: [0.0, 1.0, 2.0] if k == "epoch" else [0.5, 0.5, 0.5] for k in HISTORY_KEYS}
    rows["val_auc"] = [0.6, 0.9, 0.7]
    state = checkpoint_state(last, None, None, 2, rows, extra={"best_model": best.state_dict(), "stopped_early": True})
    model = create_model(cfg.model, in_chans=1, num_classes=2, input_size=16)
    fit = fit_result_from_state(state, cfg, model)
    assert (fit.best_epoch, fit.best_score, fit.epochs_run, fit.stopped_early) == (1, 0.9, 3, True)
    for key, value in best.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)  # the best epoch's weights, not the last
    assert fit.training_state() is state and fit.history["val_auc"] == [0.6, 0.9, 0.7]


# ---------------------------------------------------------------------------------------------------- with Ray
@pytest.fixture(scope="module")
def ray_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("ray")
    with pytest.MonkeyPatch.context() as mp:
        # The controller collects reported checkpoints when it polls the workers (default every 2 s); a worker
        # killed before the poll loses its last report, so poll faster to keep the kill test short.
        mp.setenv("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
        with ray_session(run_dir, num_cpus=2) as started:
            assert started
            yield run_dir


@pytest.fixture(scope="module")
def one_worker(ray_dir: Path) -> tuple[RayTrainOutcome, list[tuple[int, dict[str, Any]]]]:
    cfg = _cfg()
    rows: list[tuple[int, dict[str, Any]]] = []
    outcome = run_ray_training(cfg, _data(cfg), run_dir=ray_dir, on_epoch_end=lambda e, r: rows.append((e, r)))
    return outcome, rows


FAULT_CFG = ("train.num_workers=2", "train.max_failures=1")


@pytest.fixture(scope="module")
def two_workers(ray_dir: Path) -> RayTrainOutcome:
    cfg = _cfg(*FAULT_CFG, samples=1600, batch=8)
    return run_ray_training(cfg, _data(cfg), run_dir=ray_dir)


@pytest.mark.integration
@pytest.mark.slow
def test_one_worker_reports_every_epoch_keeps_best_and_two_checkpoints(one_worker: Any) -> None:
    outcome, rows = one_worker
    fit = outcome.fit
    assert [e for e, _ in rows] == [0, 1, 2, 3]
    assert all(set(HISTORY_KEYS) <= set(r) for _, r in rows)
    assert fit.history["epoch"] == [0.0, 1.0, 2.0, 3.0] and fit.epochs_run == 4 and not fit.stopped_early
    assert [r["val_auc"] for _, r in rows] == fit.history["val_auc"]
    assert fit.best_epoch == int(np.argmax(fit.history["val_auc"]))
    assert fit.best_score == max(fit.history["val_auc"])
    cfg = _cfg()
    assert _auc(outcome.model, cfg, _data(cfg).val) == pytest.approx(fit.best_score, abs=1e-6)  # best weights back
    checkpoints = sorted(p.name for p in Path(outcome.run_path).iterdir() if p.is_dir() and p.name.startswith("checkpoint_"))
    assert len(checkpoints) == 2  # train.checkpoints_to_keep default
    assert outcome.workers == 1 and outcome.restarts == () and 0 < outcome.startup_seconds < 300


@pytest.mark.integration
@pytest.mark.slow
def test_fit_result_has_the_shape_of_local_training(one_worker: Any) -> None:
    cfg = _cfg()
    _, local = train_model(cfg, _data(cfg))
    ray_fit = one_worker[0].fit
    assert set(ray_fit.history) == set(local.history)
    assert {k: len(v) for k, v in ray_fit.history.items()} == {k: len(v) for k, v in local.history.items()}
    assert set(ray_fit.training_state()) == set(local.training_state())
    assert ray_fit.training_state()["epoch"] == local.training_state()["epoch"] == 3
    assert ray_fit.monitor == local.monitor == "val_auc"


@pytest.mark.integration
@pytest.mark.slow
def test_two_ddp_workers_train_on_shards(two_workers: RayTrainOutcome) -> None:
    fit = two_workers.fit
    assert two_workers.workers == 2 and two_workers.restarts == ()
    assert fit.history["epoch"] == [0.0, 1.0, 2.0, 3.0]
    assert fit.history["train_loss"][-1] < fit.history["train_loss"][0]
    assert all(math.isfinite(v) for v in fit.history["val_auc"])


@pytest.mark.integration
@pytest.mark.slow
def test_resume_continues_at_epoch_n_like_an_uninterrupted_run(ray_dir: Path, one_worker: Any) -> None:
    straight = one_worker[0]
    cfg = _cfg("train.epochs=2")
    first = run_ray_training(cfg, _data(cfg), run_dir=ray_dir)
    assert first.fit.history["epoch"] == [0.0, 1.0]
    rows: list[int] = []
    resumed = run_ray_training(_cfg(), _data(cfg), run_dir=ray_dir, resume_from=first.checkpoint_path,
                               on_epoch_end=lambda e, r: rows.append(e))
    assert rows == [2, 3]  # continued at epoch N=2
    for key in ("epoch", "train_loss", "val_loss", "val_auc", "lr"):
        # identical numbers after the resume point prove model, Adam moments and the lr schedule were restored
        np.testing.assert_allclose(resumed.fit.history[key], straight.fit.history[key], rtol=0, atol=1e-6)
    last = resumed.fit.training_state()
    for a, b in zip(last["optimizer"]["state"].values(), straight.fit.training_state()["optimizer"]["state"].values()):
        torch.testing.assert_close(a["exp_avg"], b["exp_avg"], atol=1e-6, rtol=0)


def _cmdline(process: psutil.Process) -> list[str] | None:
    try:
        return process.cmdline()
    except psutil.Error:  # exited meanwhile
        return None


def _kill_one_worker() -> int:
    """SIGKILL one Ray Train worker process of this test's own Ray head, as a lost node would; returns its PID.

    Only descendants of this process count: another test process (a parallel pytest worker) may run Ray Train too.
    """
    workers = [p for p in psutil.Process().children(recursive=True)
               if any("RayTrainWorker" in part for part in (_cmdline(p) or []))]
    assert workers, "no Ray Train worker process found"
    victim = max(p.pid for p in workers)
    os.kill(victim, signal.SIGKILL)
    return victim


@pytest.mark.integration
@pytest.mark.slow
def test_killed_worker_resumes_from_last_checkpoint_and_matches_uninterrupted(
    ray_dir: Path, two_workers: RayTrainOutcome
) -> None:
    cfg = _cfg(*FAULT_CFG, samples=1600, batch=8)
    killed: list[tuple[int, list[int]]] = []
    epochs: list[int] = []

    def kill() -> None:
        seen = list(epochs)  # rows arrive only after their checkpoint is stored: these epochs are complete
        killed.append((_kill_one_worker(), seen))

    def on_epoch_end(epoch: int, row: dict[str, Any]) -> None:
        epochs.append(epoch)
        if epoch == 1 and not killed:  # epoch 2 is training now; kill inside it
            threading.Timer(0.2, kill).start()

    outcome = run_ray_training(cfg, _data(cfg), run_dir=ray_dir, on_epoch_end=on_epoch_end)
    assert killed, "the worker was never killed"
    assert killed[0][1] == [0, 1]  # epoch 2 had not finished when the worker died
    # resumed from a checkpoint (epoch 0's or, if the controller collected it in time, epoch 1's), not from scratch
    assert len(outcome.restarts) == 1 and outcome.restarts[0] in (1, 2)
    assert epochs == [0, 1, 2, 3]
    assert outcome.fit.history["epoch"] == [0.0, 1.0, 2.0, 3.0] and outcome.fit.epochs_run == 4
    data = _data(cfg)
    for split in (data.val, data.test):
        assert _auc(outcome.model, cfg, split) == pytest.approx(_auc(two_workers.model, cfg, split), abs=0.02)
