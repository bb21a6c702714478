"""The ``bench`` section: hybrid edge/cloud placements timed over emulated links (``medopt bench``, the bench step).

Why in the experiment config: the bench step runs at the end of the same step list as training and compression, so
the links, placements and load it uses travel with the run's config and are validated with it (unknown keys,
negative rates and unknown profile names fail before anything starts).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from medopt.config.base import Section

Placement = Literal["cloud-fp32", "cloud-optimized", "edge-optimized", "split", "cloud-jpeg"]
PLACEMENTS: tuple[str, ...] = ("cloud-fp32", "cloud-optimized", "edge-optimized", "split", "cloud-jpeg")


class BenchConfig(Section):
    """Which placements, over which link profiles, under which open-loop load, and how the edge is limited."""

    enabled: bool = False
    links: list[str] = Field(default_factory=lambda: ["lan", "rural-telemed"], min_length=1,
                             description="Link profile names (bench/links/profiles.yaml or profiles_file).")
    profiles_file: str | None = Field(None, description="YAML of extra or replacement link profiles.")
    placements: list[Placement] = Field(default_factory=lambda: list(PLACEMENTS), min_length=1)
    split_at: str | None = Field(None, description="Split layer; None: chosen Neurosurgeon-style per link.")
    codec: Literal["none", "fp16", "int8", "auto"] = Field("auto", description="Intermediate tensor on the link.")
    jpeg_quality: int = Field(90, ge=1, le=100)
    edge_threads: int = Field(1, ge=1)
    edge_slowdown: float = Field(4.0, ge=1.0, description="Edge device this many times slower than one core.")
    cloud_threads: int = Field(1, ge=1)
    rate_rps: float = Field(2.0, gt=0, description="Poisson arrival rate of the open-loop load.")
    window_s: float = Field(5.0, gt=0, description="Length of one measurement window (one repeat of one arm).")
    repeats: int = Field(5, ge=1, description="Interleaved windows per placement and link.")
    accuracy_images: int = Field(64, ge=1, description="Held-out test images checked through every placement.")
    timeout_s: float = Field(30.0, gt=0)

    @field_validator("placements", "links")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError(f"names must be unique, got {values}")
        return values
