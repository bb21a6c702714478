"""The price table: shipped values load, derived per-second prices follow the stated assumptions, typos fail."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from medopt.bench.scaling.prices import SECONDS_PER_YEAR, PriceError, Prices, default_prices, load_prices

REPO = Path(__file__).resolve().parents[3]


def test_shipped_prices_load_and_derive_per_second_figures() -> None:
    p = default_prices()
    assert p.currency == "USD"
    assert p.replica_per_s == pytest.approx(p.replica_usd_per_hour / 3600)
    device = p.edge_device_usd / (p.edge_lifetime_years * SECONDS_PER_YEAR)
    power = p.edge_power_w / 1000 * p.electricity_usd_per_kwh / 3600
    assert p.edge_per_s == pytest.approx(device + power)
    assert 0 < p.edge_per_s < p.replica_per_s  # a bought device costs less per second than a rented VM


def test_cost_per_1000_adds_replica_egress_and_edge_time() -> None:
    p = Prices(replica_usd_per_hour=3.6, egress_usd_per_gb=0.1, edge_device_usd=SECONDS_PER_YEAR,
               edge_lifetime_years=1.0)
    # 10 replica-s at $0.001, 2 GB at $0.1, 5 edge-s at $1: $5.21 for 500 requests
    assert p.cost_per_1000(10.0, 2e9, 5.0, 500) == pytest.approx(1000 * (0.01 + 0.2 + 5.0) / 500)
    assert p.cost_per_1000(10.0, 0, 0, 0) == float("inf")


def test_a_user_file_replaces_the_table(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("replica_usd_per_hour: 1\negress_usd_per_gb: 0\nedge_device_usd: 100\nedge_lifetime_years: 1\n")
    assert load_prices(f).replica_usd_per_hour == 1.0
    assert load_prices(None) == default_prices()


@pytest.mark.parametrize(("text", "expected"), [
    ("replica_usd_per_hour: 1\negress_usd_per_gb: 0\nedge_device_usd: 1\nedge_lifetime_years: 1\nvm: 2\n",
     "vm: unknown field"),
    ("replica_usd_per_hour: -1\negress_usd_per_gb: 0\nedge_device_usd: 1\nedge_lifetime_years: 1\n",
     "replica_usd_per_hour"),
    ("- 1\n", "expected a mapping"),
    ("a: [\n", "not valid YAML"),
], ids=["unknown-field", "negative", "not-a-mapping", "bad-yaml"])
def test_bad_price_files_fail_in_one_line(tmp_path: Path, text: str, expected: str) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(PriceError, match=expected) as err:
        load_prices(f)
    assert "\n" not in str(err.value)


def test_an_unreadable_price_file_is_a_price_error(tmp_path: Path) -> None:
    with pytest.raises(PriceError, match="cannot read price file"):
        load_prices(tmp_path / "missing.yaml")


def test_prices_yaml_is_package_data() -> None:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "prices.yaml" in data["tool"]["setuptools"]["package-data"]["medopt.bench.scaling"]
