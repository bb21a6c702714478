"""Checks of the ``bench`` section that need more than the schema, run before any step (``medopt run``).

Why before: an unknown link profile or a split layer the model does not have would otherwise fail only after data
loading, training and compression.
"""

from __future__ import annotations

from medopt.bench.hybrid import BenchError
from medopt.config import ExperimentConfig


def check_bench(cfg: ExperimentConfig) -> None:
    """Raise ``LinkError``/``BenchError`` (one line) for unknown profiles or a split layer the model lacks."""
    from medopt.bench.links.profiles import load_profiles

    profiles = load_profiles(cfg.bench.profiles_file)
    for name in cfg.bench.links:
        profiles[name]  # an unknown name raises LinkError listing the known ones
    if cfg.bench.split_at is not None:
        import torch

        from medopt.models import create_model
        from medopt.serve.split import split_points

        size = cfg.data.preprocess.crop_size or cfg.data.preprocess.image_size
        with torch.device("meta"):
            model = create_model(cfg.model, in_chans=1, num_classes=2, input_size=size)
        names = split_points(model)
        if cfg.bench.split_at not in names:
            raise BenchError(f"bench.split_at {cfg.bench.split_at!r} is not a layer of {cfg.model.name}; "
                             f"valid: {', '.join(names)}")
