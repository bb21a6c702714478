import numpy as np
import pytest

from federate_helpers import make_config
from medopt.federate.bn_stats import stat_pairs
from medopt.federate.local_training import build_client_model, evaluate_client, fit_client
from medopt.federate.errors import FederateError
from medopt.federate.partitions import split_clients
from medopt.federate.privacy import global_norm
from medopt.models.geometry import ModelGeometry
from medopt.federate.arrays import get_weights, nonnegative_mask, set_weights, weight_shapes


def _setup(cfg, dataset):
    spec = ModelGeometry.from_dataset(cfg.data.preprocess, dataset)
    clients = split_clients(dataset, cfg)
    return spec, clients, get_weights(build_client_model(cfg, spec))


def test_fit_returns_weights_of_the_model_shapes_and_scalar_metrics(cfg, dataset) -> None:
    spec, clients, w0 = _setup(cfg, dataset)
    out = fit_client(cfg, spec, clients[1], w0, server_round=1)
    assert [a.shape for a in out.weights] == weight_shapes(build_client_model(cfg, spec))
    assert out.weight == len(clients[1].train)
    assert out.metrics["client"] == 1.0 and out.metrics["update_norm"] > 0
    assert all(isinstance(v, float) for v in out.metrics.values())
    again = fit_client(cfg, spec, clients[1], w0, server_round=1)
    assert all(np.array_equal(a, b) for a, b in zip(out.weights, again.weights))  # deterministic


def test_dp_clipping_bounds_each_update_and_equal_weights(dataset) -> None:
    cfg = make_config("federate.dp.enabled=true", "federate.dp.clip_norm=0.05")
    spec, clients, w0 = _setup(cfg, dataset)
    out = fit_client(cfg, spec, clients[0], w0, server_round=1)
    assert out.metrics["update_norm"] > 0.05
    assert global_norm([a - b for a, b in zip(out.weights, w0)]) <= 0.05 * (1 + 1e-5)
    assert out.weight == 1


def test_fedprox_stays_closer_to_the_global_model(dataset) -> None:
    far = make_config("federate.strategy=fedavg", "federate.local_epochs=2")
    near = make_config("federate.strategy=fedprox", "federate.proximal_mu=10.0", "federate.local_epochs=2")
    spec, clients, w0 = _setup(far, dataset)
    stats = {i for pair in stat_pairs(build_client_model(far, spec)) for i in pair}  # not what mu pulls back

    def distance(cfg) -> float:
        new = fit_client(cfg, spec, clients[0], w0, server_round=1).weights
        return global_norm([a - b for i, (a, b) in enumerate(zip(new, w0)) if i not in stats])

    assert stats and distance(near) < distance(far)


def test_evaluate_scores_the_clients_own_test_split(cfg, dataset) -> None:
    spec, clients, w0 = _setup(cfg, dataset)
    loss, n, metrics = evaluate_client(cfg, spec, clients[2], w0)
    assert n == len(clients[2].test) and np.isfinite(loss)
    assert set(metrics) == {"client", "acc", "bacc", "auc", "bn_stats", "bn_count"}
    assert metrics["bn_count"] == len(clients[2].train) and isinstance(metrics["bn_stats"], bytes)
    dp = make_config("federate.dp.enabled=true")
    assert "bn_stats" not in evaluate_client(dp, spec, clients[2], w0)[2]  # would bypass the DP noise


def test_weights_roundtrip_and_mismatch_is_named(cfg, dataset) -> None:
    spec, _, w0 = _setup(cfg, dataset)
    model = build_client_model(cfg, spec)
    set_weights(model, [a + 1 for a in w0])
    assert all(np.allclose(a, b + 1) for a, b in zip(get_weights(model), w0))
    assert len(nonnegative_mask(model)) == len(w0)
    with pytest.raises(FederateError, match="weight arrays"):
        set_weights(model, w0[:-1])
    with pytest.raises(FederateError, match="shape"):
        set_weights(model, [np.zeros((1,))] + w0[1:])


def test_class_weighting_trains_a_hospital_that_lacks_a_class(dataset) -> None:
    import dataclasses

    cfg = make_config("train.class_weighting=true")
    spec, clients, w0 = _setup(cfg, dataset)
    client = clients[0]
    keep = client.train.labels == client.train.labels[0]  # a label-skewed hospital with a single class
    one_class = dataclasses.replace(client, train=dataclasses.replace(
        client.train, images=client.train.images[keep], labels=client.train.labels[keep]))
    weighted = fit_client(cfg, spec, one_class, w0, server_round=1)
    plain = fit_client(make_config(), spec, one_class, w0, server_round=1)
    assert np.isfinite(weighted.metrics["train_loss"]) and weighted.metrics["update_norm"] > 0
    # one class present: every target has the same weight, so weighting changes nothing
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(weighted.weights, plain.weights))
    loss, n, _ = evaluate_client(cfg, spec, client, w0)  # scored unweighted, with no training counts needed
    plain_loss, _, _ = evaluate_client(make_config(), spec, client, w0)
    assert n == len(client.test) and loss == pytest.approx(plain_loss)
