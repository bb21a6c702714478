import math

import numpy as np
import pytest

from medopt.federate.errors import FederateError
from medopt.federate.privacy import (
    DEFAULT_ORDERS, add_gaussian_noise, clip_update, epsilon, global_norm, noise_std, rdp_sampled_gaussian,
)


def test_clipping_bounds_the_update_norm_and_keeps_direction() -> None:
    old = [np.zeros(3, np.float32), np.ones((2, 2), np.float32)]
    new = [np.array([3.0, 0.0, 0.0], np.float32), np.full((2, 2), 3.0, np.float32)]  # update norm 5
    clipped, norm = clip_update(new, old, clip_norm=1.0)
    assert norm == pytest.approx(5.0)
    update = [c - o for c, o in zip(clipped, old)]
    assert global_norm(update) == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(update[0], [0.6, 0.0, 0.0], rtol=1e-6)


def test_small_updates_are_untouched() -> None:
    old = [np.zeros(2, np.float32)]
    new = [np.array([0.3, 0.4], np.float32)]
    clipped, norm = clip_update(new, old, clip_norm=1.0)
    assert norm == pytest.approx(0.5)
    np.testing.assert_allclose(clipped[0], new[0])


def test_noise_scale_matches_z_c_over_m() -> None:
    std = noise_std(clip_norm=2.0, noise_multiplier=1.5, num_clients=3)
    assert std == pytest.approx(1.0)
    noisy = add_gaussian_noise([np.zeros(200_000, np.float32)], std, np.random.default_rng(0))[0]
    assert noisy.std() == pytest.approx(1.0, rel=0.01)
    assert abs(noisy.mean()) < 0.01
    with pytest.raises(FederateError):
        noise_std(1.0, 1.0, 0)


def test_full_participation_rdp_is_the_gaussian_closed_form() -> None:
    assert rdp_sampled_gaussian(1.0, 2.0, 8) == pytest.approx(8 / (2 * 4.0))
    # with q = 1 the subsampled formula (binomial sum) collapses to the same value
    assert rdp_sampled_gaussian(1 - 1e-12, 2.0, 8) == pytest.approx(1.0, rel=1e-6)
    eps, order = epsilon(1.0, 1.0, rounds=1, delta=1e-5)
    by_hand = min(a / 2 + math.log(1e5) / (a - 1) for a in DEFAULT_ORDERS)
    assert eps == pytest.approx(by_hand)
    assert order == 6  # sqrt(2 log(1/delta)) + 1 is about 5.8


def test_epsilon_grows_with_rounds_and_shrinks_with_noise_and_sampling() -> None:
    by_rounds = [epsilon(0.5, 1.0, t, 1e-5)[0] for t in (1, 5, 20, 100)]
    assert all(a < b for a, b in zip(by_rounds, by_rounds[1:]))
    by_noise = [epsilon(1.0, z, 10, 1e-5)[0] for z in (0.8, 1.0, 2.0, 4.0)]
    assert all(a > b for a, b in zip(by_noise, by_noise[1:]))
    assert epsilon(0.1, 1.0, 10, 1e-5)[0] < epsilon(1.0, 1.0, 10, 1e-5)[0]
    assert epsilon(1.0, 1.0, 0, 1e-5)[0] == 0.0
