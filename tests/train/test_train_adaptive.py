from __future__ import annotations

import copy

import pytest
import torch

from medopt.train.adaptive import AdaptiveMomentumLR

# Hand-computed with lr (eta_0) = 0.1, alpha = 0.5, gamma = 1, theta_0 = [1, -2]:
# t=1: g=[2,-1]  beta=[0,0]              eta=[0.1, 0.1]                          theta=[0.8, -1.9]
# t=2: g=[1, 3]  beta=[0.5,-0.5]         eta=[0.1e^-0.5, 0.1e^0.5]
#                   =[0.0606530660, 0.1648721271]                                theta=[0.7393469340, -2.3946163812]
# t=3: g=[-1,0]  beta=[1.0, 0.0]         eta=[0.1e^-1, 0.1]=[0.0367879441, 0.1]  theta=[0.7761348781, -2.3946163812]
GRADS = [[2.0, -1.0], [1.0, 3.0], [-1.0, 0.0]]
THETAS = [[0.8, -1.9], [0.7393469340, -2.3946163812], [0.7761348781, -2.3946163812]]
BETAS = [[0.0, 0.0], [0.5, -0.5], [1.0, 0.0]]


def _param() -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))


def test_three_step_hand_example() -> None:
    p = _param()
    opt = AdaptiveMomentumLR([p], lr=0.1, alpha=0.5, gamma=1.0)
    for grad, theta, beta in zip(GRADS, THETAS, BETAS):
        p.grad = torch.tensor(grad, dtype=torch.float64)
        opt.step()
        torch.testing.assert_close(p.detach(), torch.tensor(theta, dtype=torch.float64), atol=1e-9, rtol=0)
        torch.testing.assert_close(opt.state[p]["beta"], torch.tensor(beta, dtype=torch.float64))
    assert opt.state[p]["step"] == 3


def test_weight_decay_is_added_to_gradient() -> None:
    # theta_0=1, grad 0.5, wd 0.1: g1=0.6 -> theta=0.94; g2=0.594, beta=0.5, eta=0.0606530660 -> theta=0.9039720788
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = AdaptiveMomentumLR([p], lr=0.1, alpha=0.5, gamma=1.0, weight_decay=0.1)
    for expected in (0.94, 0.9039720788):
        p.grad = torch.tensor([0.5], dtype=torch.float64)
        opt.step()
        assert p.item() == pytest.approx(expected, abs=1e-9)


def test_closure_is_called_and_loss_returned() -> None:
    p = torch.nn.Parameter(torch.tensor([3.0]))
    opt = AdaptiveMomentumLR([p], lr=0.25, alpha=0.1, gamma=1.0)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (p**2).sum()  # grad = 2p = 6
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(9.0)
    assert p.item() == pytest.approx(3.0 - 0.25 * 6.0)


def test_state_dict_round_trip_continues_identically() -> None:
    a, b = _param(), _param()
    opt_a = AdaptiveMomentumLR([a], lr=0.1, alpha=0.5, gamma=1.0)
    for grad in GRADS[:2]:
        a.grad = torch.tensor(grad, dtype=torch.float64)
        opt_a.step()
    with torch.no_grad():
        b.copy_(a)
    opt_b = AdaptiveMomentumLR([b], lr=0.1, alpha=0.5, gamma=1.0)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))  # as if saved to disk: torch aliases same-device state
    for p, opt in ((a, opt_a), (b, opt_b)):
        p.grad = torch.tensor(GRADS[2], dtype=torch.float64)
        opt.step()
    torch.testing.assert_close(b.detach(), torch.tensor(THETAS[2], dtype=torch.float64), atol=1e-9, rtol=0)
    assert torch.equal(a, b)


def test_params_without_grad_are_skipped() -> None:
    p, q = _param(), _param()
    opt = AdaptiveMomentumLR([p, q], lr=0.1)
    p.grad = torch.ones(2, dtype=torch.float64)
    opt.step()
    assert q.tolist() == [1.0, -2.0] and q not in opt.state


@pytest.mark.parametrize("kwargs", [{"lr": 0.0}, {"alpha": -1.0}, {"gamma": -0.1}, {"weight_decay": -1e-3}])
def test_invalid_hyperparameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        AdaptiveMomentumLR([_param()], **kwargs)
