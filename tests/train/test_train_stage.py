"""train_model: fresh models by default, and continued training of a given model (progressive resizing)."""

from __future__ import annotations

import torch

from medopt.config import ExperimentConfig, load_config
from medopt.data import synthetic_dataset
from medopt.train.stage import train_model


def _cfg(size: int) -> ExperimentConfig:
    return load_config(None, ["model.name=tiny_cnn", "data.synthetic.image_size=32", "data.synthetic.num_samples=120",
                              f"data.preprocess.image_size={size}", "train.batch_size=16", "train.epochs=1",
                              "train.scheduler.kind=none", "train.device=cpu"])


def test_continues_the_given_model_at_a_new_image_size() -> None:
    small, large = _cfg(16), _cfg(32)
    data = synthetic_dataset(small.data.synthetic, small.data.seed, small.data.split)
    model, _ = train_model(small, data)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    again, fit = train_model(large, data, model=model)
    assert again is model and fit.epochs_run == 1
    changed = [k for k, v in model.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert changed  # trained further, at 32 px, from the 16 px weights rather than from a fresh model


def test_builds_a_fresh_model_by_default() -> None:
    cfg = _cfg(16)
    data = synthetic_dataset(cfg.data.synthetic, cfg.data.seed, cfg.data.split)
    first, _ = train_model(cfg, data)
    second, _ = train_model(cfg, data)
    assert first is not second
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))  # seeded
