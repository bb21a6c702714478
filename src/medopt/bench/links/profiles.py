"""Link profiles: the RTT, jitter, per-direction rate and loss an emulated edge–cloud link is given.

Why a validated model: a typo in a profile (``rate_mbt``, a negative RTT, zero bandwidth) would otherwise run a whole
benchmark over a link that is not the one the report names. Every bad input raises ``LinkError`` with one line
naming the profile and the field.

Definitions shared by both emulation modes (userspace proxy and kernel namespaces):

* ``rtt_ms``: round-trip propagation delay; each direction gets half of it.
* ``jitter_ms``: standard deviation of the extra one-way delay added to each segment, per direction. The extra delay
  is a normal distribution truncated at two of its standard deviations, scaled so that the *truncated* distribution
  has standard deviation ``jitter_ms``; it is symmetric, so the median one-way delay stays ``rtt_ms / 2``.
* ``rate_mbit``: the TCP payload rate (what an application can move), both directions unless ``uplink_mbit`` /
  ``downlink_mbit`` are given. Uplink is edge -> cloud, downlink cloud -> edge.
* ``loss_pct``: probability, in percent, that a segment is lost, per direction.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medopt.errors import MedoptError

RTO_MIN_MS = 200.0  # Linux's TCP_RTO_MIN: the least a retransmission timeout costs


class LinkError(MedoptError, ValueError):
    """A link profile is invalid or unknown, or a link cannot be set up here (one line: which profile, what)."""


class LinkProfile(BaseModel):
    """One emulated link (see the module docstring for what each field means)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    rtt_ms: float = Field(ge=0, allow_inf_nan=False)
    jitter_ms: float = Field(0.0, ge=0, allow_inf_nan=False)
    rate_mbit: float | None = Field(None, gt=0, allow_inf_nan=False)
    uplink_mbit: float | None = Field(None, gt=0, allow_inf_nan=False)
    downlink_mbit: float | None = Field(None, gt=0, allow_inf_nan=False)
    loss_pct: float = Field(0.0, ge=0, le=100, allow_inf_nan=False)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise LinkError(_one_line(data.get("name"), exc)) from None

    @model_validator(mode="after")
    def _both_directions_have_a_rate(self) -> LinkProfile:
        for direction, own in (("uplink", self.uplink_mbit), ("downlink", self.downlink_mbit)):
            if own is None and self.rate_mbit is None:
                raise ValueError(f"no {direction} rate: give rate_mbit or {direction}_mbit")
        return self

    @property
    def uplink(self) -> float:
        """Edge -> cloud payload rate, Mbit/s."""
        return float(self.uplink_mbit if self.uplink_mbit is not None else self.rate_mbit)  # type: ignore[arg-type]

    @property
    def downlink(self) -> float:
        """Cloud -> edge payload rate, Mbit/s."""
        return float(self.downlink_mbit if self.downlink_mbit is not None else self.rate_mbit)  # type: ignore[arg-type]

    @property
    def rto_ms(self) -> float:
        """What one lost segment costs: a retransmission timeout, ``max(200 ms, rtt + 4 * jitter)``.

        Linux computes ``srtt + 4 * rttvar`` with a 200 ms floor; for the short request/response exchanges a bench
        sends, a lost segment is usually the last one in flight, so no duplicate ACKs arrive and the timeout fires.
        """
        return max(RTO_MIN_MS, self.rtt_ms + 4.0 * self.jitter_ms)

    def __str__(self) -> str:
        rates = (f"{_num(self.uplink)} Mbit/s" if self.uplink == self.downlink
                 else f"up {_num(self.uplink)} / down {_num(self.downlink)} Mbit/s")
        return (f"rtt {_num(self.rtt_ms)} ms, jitter {_num(self.jitter_ms)} ms, {rates}, "
                f"loss {_num(self.loss_pct)}%")


def _num(x: float) -> str:
    return f"{x:g}"


def _one_line(name: Any, exc: ValidationError) -> str:
    """The first validation problem as ``link profile 'NAME': FIELD: WHAT (got VALUE)``."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        what = f"unknown field (known: {', '.join(LinkProfile.model_fields)})"
    else:
        what = str(err["msg"]).removeprefix("Value error, ")
    got = f" (got {err['input']!r})" if field and err["type"] != "missing" else ""
    more = len(exc.errors()) - 1
    tail = f"; and {more} more problem{'s' * (more > 1)}" if more else ""
    label = repr(name) if isinstance(name, str) and name else "<unnamed>"
    return f"link profile {label}: {field + ': ' if field else ''}{what}{got}{tail}"


def profile_from_mapping(name: str, fields: Any) -> LinkProfile:
    """A profile from one YAML entry: ``fields`` may omit ``name`` (the key names it) but not contradict it."""
    if not isinstance(fields, Mapping):
        raise LinkError(f"link profile {name!r}: expected a mapping of fields, got {type(fields).__name__}")
    if "name" in fields and fields["name"] != name:
        raise LinkError(f"link profile {name!r}: name: differs from its key (got {fields['name']!r})")
    return LinkProfile(**{**fields, "name": name})


class Profiles(dict[str, LinkProfile]):
    """Profiles by name; looking up an unknown name raises ``LinkError`` listing the known ones."""

    def __missing__(self, name: str) -> LinkProfile:
        raise LinkError(f"unknown link profile {name!r}; known: {', '.join(sorted(self))}")


def _read(text: str, where: str) -> Profiles:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise LinkError(f"profiles file {where}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return Profiles()
    if not isinstance(data, Mapping):
        raise LinkError(f"profiles file {where}: expected a mapping of profile name -> fields, "
                        f"got {type(data).__name__}")
    return Profiles({str(name): profile_from_mapping(str(name), fields) for name, fields in data.items()})


def default_profiles() -> Profiles:
    """The profiles shipped with medopt (``profiles.yaml`` next to this module)."""
    text = resources.files(__package__).joinpath("profiles.yaml").read_text(encoding="utf-8")
    return _read(text, "profiles.yaml (shipped)")


def load_profiles(path: str | Path | None = None) -> Profiles:
    """The shipped profiles, with those in ``path`` (if given) added or replacing same-named ones.

    Why merged: a site adds its own link (or re-measures one) without copying the standard set.
    """
    profiles = default_profiles()
    if path is None:
        return profiles
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LinkError(f"cannot read profiles file {path}: {exc.strerror or exc}") from None
    profiles.update(_read(text, str(path)))
    return profiles


def get_profile(name: str, path: str | Path | None = None) -> LinkProfile:
    """One profile by name; unknown names raise ``LinkError``."""
    return load_profiles(path)[name]

