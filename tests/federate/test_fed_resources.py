"""Ray resources per simulated hospital: one wave of clients when they fit two per CPU."""

from __future__ import annotations

import pytest

from federate_helpers import make_config
from medopt.federate.resources import client_resources, client_threads, simulation_backend


@pytest.mark.parametrize(("clients", "cpus", "share"), [(3, 2, 0.66), (4, 2, 0.5), (2, 2, 1.0), (5, 2, 1.0),
                                                         (7, 4, 0.57), (1, 1, 1.0)])
def test_default_share_runs_every_client_at_once_when_they_fit(clients: int, cpus: int, share: float) -> None:
    res = client_resources(make_config(f"federate.ray_num_cpus={cpus}"), clients)
    assert res["num_cpus"] == pytest.approx(share)
    if share < 1.0:
        assert int(cpus / round(res["num_cpus"], 4)) >= clients  # Ray's 4-decimal resources still fit them all


def test_configured_share_wins_and_threads_are_at_least_one() -> None:
    assert client_resources(make_config("federate.client_cpus=2"), 3)["num_cpus"] == 2.0
    assert [client_threads(s) for s in (0.33, 1.0, 2.5)] == [1, 1, 2]


def test_a_ray_address_and_gpu_share_reach_the_session_and_flowers_backend_config() -> None:
    backend = simulation_backend(make_config("federate.ray_address=ray://ray-head.medopt:10001",
                                             "federate.client_gpus=0.25"), 4)
    assert backend.address == "ray://ray-head.medopt:10001"
    assert backend.config == {"client_resources": {"num_cpus": 1.0, "num_gpus": 0.25}}
    joined = simulation_backend(make_config("federate.ray_address=auto"), 3)  # the driver's GPUs say nothing there
    assert joined.address == "auto" and joined.config["client_resources"] == {"num_cpus": 1.0, "num_gpus": 0.0}
    local = simulation_backend(make_config("federate.ray_num_cpus=2", "train.device=cpu"), 3)
    assert local.address is None and local.num_cpus == 2
    assert local.config["client_resources"] == {"num_cpus": 0.66, "num_gpus": 0.0}


def test_a_malformed_ray_address_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="federate.ray_address"):
        make_config("federate.ray_address=head")
