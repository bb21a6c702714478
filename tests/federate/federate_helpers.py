"""Shared config for the federate tests: tiny_cnn, 16 px synthetic images, 3 clients, 2 rounds."""

from __future__ import annotations

from medopt.config import ExperimentConfig, load_config

BASE = [
    "data.synthetic.num_samples=150", "data.synthetic.image_size=16", "data.preprocess.image_size=16",
    "model.name=tiny_cnn", "train.batch_size=16", "train.device=cpu", "train.optimizer=adam", "train.lr=0.01",
    "train.scheduler.kind=none", "federate.rounds=2", "federate.ray_num_cpus=2", "federate.enabled=true",
]


def make_config(*overrides: str) -> ExperimentConfig:
    return load_config(None, [*BASE, *overrides])


class FailOn:
    """Client fault for drills: raise in (client, round) pairs listed in ``fail``, hard-exit the process in ``kill``."""

    def __init__(self, fail: tuple[tuple[int, int], ...] = (), kill: tuple[tuple[int, int], ...] = ()) -> None:
        self.fail, self.kill = fail, kill

    def __call__(self, client_id: int, server_round: int) -> None:
        import os

        if (client_id, server_round) in self.kill:
            os._exit(3)
        if (client_id, server_round) in self.fail:
            raise RuntimeError(f"hospital {client_id} went offline in round {server_round}")
