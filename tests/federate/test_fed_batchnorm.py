"""BatchNorm statistics in a federation: exact re-estimation, pooling, transport, and the global model's stats."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from flwr.common import Code, EvaluateRes, Status
from torch import nn

from federate_helpers import make_config
from medopt.data import make_loader
from medopt.data.types import ArraySplit
from medopt.federate.aggregate import weighted_average
from medopt.federate.bn_stats import pack_stats, pool_stats, stat_pairs, unpack_stats
from medopt.models.bn_recalibration import recalibrate_batchnorm
from medopt.federate.local_training import build_client_model, evaluate_client, fit_client
from medopt.federate.errors import FederateError
from medopt.federate.partitions import split_clients
from medopt.federate.rounds import RoundRecorder
from medopt.models.geometry import ModelGeometry
from medopt.federate.strategy import MedoptStrategy
from medopt.federate.arrays import get_weights, set_weights


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))


def test_recalibration_gives_the_exact_statistics_of_the_weights() -> None:
    net, x = _net(), torch.randn(20, 1, 6, 6) * 3 + 2
    net(x)  # materialise the lazy layer
    batches = [(x[:10], None), (x[10:], None)]
    assert recalibrate_batchnorm(net, batches, torch.device("cpu")) == 2
    feats = net[0](x).detach().transpose(0, 1).reshape(3, 2, -1)  # channel, batch, values
    bn = net[1]
    assert torch.allclose(bn.running_mean, feats.mean(dim=2).mean(dim=1), atol=1e-5)
    assert torch.allclose(bn.running_var, feats.var(dim=2, unbiased=True).mean(dim=1), atol=1e-4)
    assert bn.momentum == 0.1 and not net.training


def test_pooled_statistics_are_those_of_the_union() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (30, 4)), rng.normal(3, 2, (90, 4))
    stats = [[x.mean(0), x.var(0)] for x in (a, b)]
    mean, var = pool_stats(stats, [30, 90])
    union = np.concatenate([a, b])
    np.testing.assert_allclose(mean, union.mean(0), rtol=1e-5)
    np.testing.assert_allclose(var, union.var(0), rtol=1e-5)  # not the mean of the two variances
    assert not np.allclose(var, (30 * stats[0][1] + 90 * stats[1][1]) / 120, rtol=0.05)


def test_statistics_survive_transport_and_a_wrong_size_is_named(cfg, dataset) -> None:
    model = build_client_model(cfg, ModelGeometry.from_dataset(cfg.data.preprocess, dataset))
    weights, pairs = get_weights(model), stat_pairs(model)
    assert pairs
    back = unpack_stats(pack_stats(weights, pairs), weights, pairs)
    assert all(np.array_equal(back[2 * k], weights[m]) and np.array_equal(back[2 * k + 1], weights[v])
               for k, (m, v) in enumerate(pairs))
    with pytest.raises(FederateError, match="BatchNorm statistics hold"):
        unpack_stats(b"\0" * 8, weights, pairs)


def _true_statistics(cfg, spec, clients, weights):
    """The global weights' statistics measured on all clients' training data in one place (no federation)."""
    model = build_client_model(cfg, spec)
    set_weights(model, weights)
    pooled = ArraySplit(np.concatenate([c.train.images for c in clients]),
                        np.concatenate([c.train.labels for c in clients]))
    loader = make_loader(pooled, cfg.data.preprocess, batch_size=len(pooled), shuffle=False, seed=0, task=spec.task)
    recalibrate_batchnorm(model, loader, torch.device("cpu"))
    return get_weights(model)


def test_global_model_carries_the_statistics_of_its_averaged_weights(cfg, dataset) -> None:
    """The regression: averaged weights with averaged local running stats predict one class in eval mode."""
    spec, clients = ModelGeometry.from_dataset(cfg.data.preprocess, dataset), split_clients(dataset, cfg)
    torch.manual_seed(0)
    w0 = get_weights(build_client_model(cfg, spec))
    outs = [fit_client(cfg, spec, c, w0, server_round=1) for c in clients]
    averaged = weighted_average([o.weights for o in outs], [o.weight for o in outs])
    replies = [evaluate_client(cfg, spec, c, averaged) for c in clients]
    scored: list = []
    strategy = MedoptStrategy(cfg, averaged, lambda w: scored.append(w) or (0.5, {"bacc": 1.0}), RoundRecorder(),
                              bn_pairs=stat_pairs(build_client_model(cfg, spec)))
    results = [(SimpleNamespace(node_id=i), EvaluateRes(Status(Code.OK, ""), loss, n, metrics))
               for i, (loss, n, metrics) in enumerate(replies)]
    strategy.recorder.start(1)
    strategy.aggregate_evaluate(1, results, [])
    record = strategy.recorder.finish()
    assert strategy.refreshed and record["bn_stats_clients"] == 3 and record["test_bacc"] == 1.0
    assert scored and scored[0] is strategy.current  # the global test pass saw the pooled statistics
    assert all("test_bn_stats" not in c for c in record["clients"].values())
    truth = _true_statistics(cfg, spec, clients, averaged)
    for m, v in strategy.bn_pairs:
        shift = np.abs(strategy.current[m] - truth[m]) / np.sqrt(truth[v])  # in standard deviations
        assert shift.max() < 0.02  # deeper layers see other batch statistics: close, not equal
        np.testing.assert_allclose(strategy.current[v], truth[v], rtol=0.05, atol=1e-4)
    stale = max(float(np.max(np.abs(averaged[v] - truth[v]) / truth[v])) for _, v in strategy.bn_pairs)
    assert stale > 0.05  # without the pooling pass the global statistics were off


def test_deferred_scoring_only_when_clients_send_statistics(dataset) -> None:
    for overrides, deferred in (((), True), (("federate.fraction_evaluate=0",), False),
                                (("federate.dp.enabled=true",), False)):
        cfg = make_config(*overrides)
        model = build_client_model(cfg, ModelGeometry.from_dataset(cfg.data.preprocess, dataset))
        strategy = MedoptStrategy(cfg, get_weights(model), lambda w: (0.1, {}), RoundRecorder(),
                                  bn_pairs=stat_pairs(model))
        assert strategy.pooled_statistics is deferred
        assert strategy.evaluate(0, None) is None  # the initial weights are never scored


def test_clients_get_only_the_sections_they_train_with(dataset) -> None:
    """The instruction's config has no store, serving or cluster settings, and still parses as the client's config."""
    import json

    from medopt.config import config_from_json

    cfg = make_config("store.kind=s3", "store.endpoint=minio.medopt:9000", "store.bucket=medopt")
    model = build_client_model(cfg, ModelGeometry.from_dataset(cfg.data.preprocess, dataset))
    strategy = MedoptStrategy(cfg, get_weights(model), lambda w: (0.1, {}), RoundRecorder())
    sent = json.loads(strategy.config_json)
    assert not {"store", "serve", "deploy", "bench", "kfp"} & set(sent)
    parsed = config_from_json(strategy.config_json)
    assert (parsed.model, parsed.train, parsed.federate, parsed.data) == (cfg.model, cfg.train, cfg.federate, cfg.data)
