"""The price table behind "cost per 1,000 inferences": cloud replica time, egress, edge hardware amortised.

Why a stated, editable table: a placement recommendation is only as good as its prices, so every figure is a named
field in ``prices.yaml`` (shipped next to this module, with the assumption behind each number in comments) that a
user can replace with their own file. Unknown fields are rejected so a misspelled price cannot silently fall back.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medopt.errors import MedoptError

SECONDS_PER_YEAR = 365.25 * 86400.0


class PriceError(MedoptError, ValueError):
    """A price file that cannot be read or validated (one line: which file, which field)."""


class Prices(BaseModel):
    """Unit prices; see ``prices.yaml`` for the assumptions behind the shipped values."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    currency: str = "USD"
    replica_usd_per_hour: float = Field(ge=0, allow_inf_nan=False)
    egress_usd_per_gb: float = Field(ge=0, allow_inf_nan=False)
    edge_device_usd: float = Field(ge=0, allow_inf_nan=False)
    edge_lifetime_years: float = Field(gt=0, allow_inf_nan=False)
    edge_power_w: float = Field(0.0, ge=0, allow_inf_nan=False)
    electricity_usd_per_kwh: float = Field(0.0, ge=0, allow_inf_nan=False)

    @property
    def replica_per_s(self) -> float:
        """Price of holding one cloud replica for one second."""
        return self.replica_usd_per_hour / 3600.0

    @property
    def edge_per_s(self) -> float:
        """One edge device for one second: purchase price over its lifetime, plus its electricity."""
        power = self.edge_power_w / 1000.0 * self.electricity_usd_per_kwh / 3600.0
        return self.edge_device_usd / (self.edge_lifetime_years * SECONDS_PER_YEAR) + power

    def cost(self, replica_seconds: float, egress_bytes: float, edge_seconds: float) -> float:
        """Total price of a run that held these resources."""
        return (replica_seconds * self.replica_per_s + egress_bytes / 1e9 * self.egress_usd_per_gb
                + edge_seconds * self.edge_per_s)

    def cost_per_1000(self, replica_seconds: float, egress_bytes: float, edge_seconds: float, requests: int) -> float:
        """Price per 1,000 inferences (``requests`` answered); infinite when none were."""
        if requests <= 0:
            return float("inf")
        return 1000.0 * self.cost(replica_seconds, egress_bytes, edge_seconds) / requests


def _parse(text: str, where: str) -> Prices:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PriceError(f"price file {where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise PriceError(f"price file {where}: expected a mapping of price fields, got {type(data).__name__}")
    try:
        return Prices.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        what = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        raise PriceError(f"price file {where}: {field}: {what}") from None


def default_prices() -> Prices:
    """The shipped table (``prices.yaml`` in this package)."""
    text = resources.files(__package__).joinpath("prices.yaml").read_text(encoding="utf-8")
    return _parse(text, "prices.yaml (shipped)")


def load_prices(path: str | Path | None = None) -> Prices:
    """The table in ``path``, or the shipped one when None."""
    if path is None:
        return default_prices()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PriceError(f"cannot read price file {path}: {exc.strerror or exc}") from None
    return _parse(text, str(path))
