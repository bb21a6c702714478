import numpy as np
import pytest

from medopt.config import FederateConfig
from medopt.federate.aggregate import ServerOptimizer, server_optimizer, uses_equal_weights, weighted_average
from medopt.federate.errors import FederateError

A = [np.array([1.0, 2.0], np.float32), np.array([[0.0]], np.float32)]
B = [np.array([3.0, 6.0], np.float32), np.array([[4.0]], np.float32)]


def test_weighted_average_weighs_by_examples() -> None:
    out = weighted_average([A, B], [1, 3])  # (1*A + 3*B) / 4
    np.testing.assert_allclose(out[0], [2.5, 5.0])
    np.testing.assert_allclose(out[1], [[3.0]])
    assert out[0].dtype == np.float32


def test_equal_weights_give_the_plain_mean() -> None:
    out = weighted_average([A, B], [1, 1])
    np.testing.assert_allclose(out[0], [2.0, 4.0])
    np.testing.assert_allclose(out[1], [[2.0]])


def test_weighted_and_equal_differ_when_clients_differ_in_size() -> None:
    assert not np.allclose(weighted_average([A, B], [10, 1])[0], weighted_average([A, B], [1, 1])[0])


@pytest.mark.parametrize("weights", [[0, 0], [-1, 2], [1]])
def test_bad_weights_are_refused(weights: list[int]) -> None:
    with pytest.raises(FederateError):
        weighted_average([A, B], weights)


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(FederateError, match="client result 1"):
        weighted_average([A, [A[0], np.zeros((2, 2))]], [1, 1])


def test_fedavgm_heavy_ball_by_hand() -> None:
    opt = ServerOptimizer("fedavgm", lr=0.5, momentum=0.9)
    w = [np.array([1.0])]
    w1 = opt.step(w, [np.array([0.0])])  # g = 1, v = 1, w = 1 - 0.5 = 0.5
    np.testing.assert_allclose(w1[0], [0.5])
    w2 = opt.step(w1, [np.array([0.5])])  # g = 0, v = 0.9, w = 0.5 - 0.45
    np.testing.assert_allclose(w2[0], [0.05], rtol=1e-6)


def test_fedadam_and_fedyogi_first_step_by_hand() -> None:
    for kind in ("fedadam", "fedyogi"):
        opt = ServerOptimizer(kind, lr=0.1, momentum=0.9, beta2=0.99, tau=1e-3)
        out = opt.step([np.array([0.0])], [np.array([2.0])])
        m, v = 0.1 * 2.0, 0.01 * 4.0  # both rules agree from v = 0 (sign(0 - 4) = -1)
        np.testing.assert_allclose(out[0], [0.1 * m / (np.sqrt(v) + 1e-3)], rtol=1e-6)


def test_fedavg_adopts_the_mean_and_defaults_follow_strategy() -> None:
    out = server_optimizer(FederateConfig(strategy="fedavg")).step(A, B)
    np.testing.assert_allclose(out[0], B[0])
    assert server_optimizer(FederateConfig(strategy="fedadam")).lr == 0.01
    assert server_optimizer(FederateConfig(strategy="fedavgm", server_lr=0.3)).lr == 0.3
    assert uses_equal_weights(FederateConfig(strategy="fedavg_equal"))
    assert uses_equal_weights(FederateConfig(dp={"enabled": True}))
    assert not uses_equal_weights(FederateConfig(strategy="fedavg"))
