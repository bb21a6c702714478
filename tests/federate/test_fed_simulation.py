"""End-to-end federations on Flower's Ray-backed simulation engine (3 clients, 2 rounds, tiny_cnn at 16 px)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from flwr.common import bytes_to_ndarray

import federate_helpers
from federate_helpers import FailOn, make_config
from medopt.federate.bn_stats import stat_pairs
from medopt.federate.local_training import build_client_model
from medopt.federate.privacy import epsilon
from medopt.models.geometry import ModelGeometry
from medopt.federate.stage import federate_dataset, run_federate
from medopt.federate.arrays import nbytes, get_weights, weight_shapes

pytestmark = [pytest.mark.slow, pytest.mark.integration]
SCALARS = (int, float, str, bool)


@pytest.fixture(autouse=True)
def _pickle_helpers_by_value() -> None:
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(federate_helpers)  # Ray workers cannot import the tests folder


def _inspect(msg: Any) -> dict[str, list[Any]]:
    """Everything a reply holds, taken when the server receives it (Flower then consumes the arrays)."""
    assert msg.has_content()
    content = msg.content
    arrays = [bytes_to_ndarray(arr.data) for rec in content.array_records.values() for _, arr in rec.items()]
    values = [v for rec in [*content.metric_records.values(), *content.config_records.values()]
              for _, v in rec.items()]
    return {"arrays": arrays, "values": values}


def test_fedavg_server_receives_only_parameters_and_scalar_metrics(tmp_path, dataset) -> None:
    cfg = make_config("federate.strategy=fedavg")
    received: list[dict[str, list[Any]]] = []
    fed = federate_dataset(cfg, dataset, run_dir=tmp_path, observer=lambda msg: received.append(_inspect(msg)))
    rounds = fed.outcome.rounds
    assert [r["round"] for r in rounds] == [1, 2] and all(r["fit_results"] == 3 for r in rounds)
    assert 0.0 <= rounds[-1]["test_bacc"] <= 1.0 and "test_f1_macro" in rounds[-1]
    shapes = weight_shapes(build_client_model(cfg, ModelGeometry.from_dataset(cfg.data.preprocess, dataset)))
    allowed = set(shapes)
    # every reply: fit (weights + metrics) and evaluate (loss + metrics), from 3 clients in 2 rounds
    assert len(received) == 12
    arrays = [a for r in received for a in r["arrays"]]
    assert len(arrays) == 6 * len(shapes)
    assert all(tuple(a.shape) in allowed and a.dtype == np.float32 for a in arrays)
    values = [v for r in received for v in r["values"]]
    # no arrays or lists among metrics; the only bytes are each evaluate reply's BatchNorm statistics
    model = build_client_model(cfg, ModelGeometry.from_dataset(cfg.data.preprocess, dataset))
    stats_bytes = 4 * sum(int(np.prod(shapes[i])) for pair in stat_pairs(model) for i in pair)
    blobs = [v for v in values if isinstance(v, bytes)]
    assert stats_bytes > 0 and len(blobs) == 6 and all(len(b) == stats_bytes for b in blobs)
    assert all(isinstance(v, SCALARS) for v in values if not isinstance(v, bytes))
    model_bytes = nbytes(get_weights(fed.model))
    for r in rounds:
        assert set(r["clients"]) == {"0", "1", "2"}
        for c in r["clients"].values():  # weights go out twice (fit, evaluate), come back once (fit)
            assert 2 * model_bytes <= c["bytes_sent"] <= 2 * model_bytes + 32_000
            assert model_bytes <= c["bytes_received"] <= model_bytes + stats_bytes + 32_000
        assert sum(c["bytes_sent"] for c in r["clients"].values()) == pytest.approx(r["sent_mb"] * 1e6)


def test_fedprox_run_stores_a_loadable_model_with_its_manifest(tmp_path, dataset) -> None:
    from medopt.data.artifact import save_dataset
    from medopt.models.model_file import load_model_file
    from medopt.store.local import LocalStore

    cfg = make_config("federate.strategy=fedprox", "federate.proximal_mu=0.1", f"output_dir={tmp_path / 'runs'}")
    store = LocalStore(tmp_path / "store")
    save_dataset(dataset, tmp_path / "ds.npz")
    ds_key = store.put_file("runs/r1/data/dataset.npz", tmp_path / "ds.npz", kind="dataset").key
    result = run_federate(cfg, store, dataset_key=ds_key, prefix="runs/r1")
    assert result.model.key == "runs/r1/federate/model.pt" and result.model.parents == (ds_key,)
    assert result.metrics["rounds"] == 2 and result.metrics["failures"] == 0
    assert result.model.config["federate"]["strategy"] == "fedprox"
    bundle = load_model_file(store.get_file(result.model.key, tmp_path / "m.pt"))
    assert bundle.geometry.class_names == dataset.class_names and bundle.geometry.input_size == 16
    assert math.isfinite(result.metrics["test_loss"])


def test_failing_and_killed_clients_do_not_stop_the_run(tmp_path, dataset) -> None:
    cfg = make_config("federate.strategy=fedavg_equal", "federate.round_timeout_s=600")  # generous: a loaded CI box
    fed = federate_dataset(cfg, dataset, run_dir=tmp_path, fault=FailOn(fail=((1, 1),), kill=((2, 2),)))
    r1, r2 = fed.outcome.rounds
    assert r1["fit_results"] == 2 and len(r1["failures"]) == 1
    assert "hospital 1 went offline" in r1["failures"][0] and "\n" not in r1["failures"][0]
    assert r2["fit_results"] <= 2 and len(r2["failures"]) >= 1
    assert all(np.isfinite(a).all() for a in get_weights(fed.model))


def test_secagg_with_dp_reports_the_privacy_budget(tmp_path, dataset) -> None:
    cfg = make_config("federate.secagg=true", "federate.min_available_clients=3", "federate.dp.enabled=true",
                      "federate.dp.noise_multiplier=0.5", "federate.dp.clip_norm=0.5", "federate.strategy=fedavg")
    fed = federate_dataset(cfg, dataset, run_dir=tmp_path)
    rounds = fed.outcome.rounds
    expected = [epsilon(1.0, 0.5, t, 1e-5)[0] for t in (1, 2)]
    assert [r["epsilon"] for r in rounds] == pytest.approx(expected)
    assert rounds[0]["dp_noise_std"] == pytest.approx(0.5 * 0.5 / 3)
    assert all(r["fit_results"] == 3 for r in rounds)
    assert rounds[0]["received_mb"] > rounds[0]["sent_mb"] / 2  # masked vectors and key shares come back too
