import pytest
import torch
from torch import nn

from medopt.federate.errors import FederateError
from medopt.federate.proximal import ProximalLoss, proximal_term, snapshot_trainable


def _linear(w: list[float]) -> nn.Linear:
    lin = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([w]))
    return lin


def test_value_and_gradient_by_hand() -> None:
    model = _linear([1.0, 2.0])
    anchor = [torch.tensor([[0.0, 4.0]])]
    term = proximal_term(model, anchor, mu=0.5)
    assert term.item() == pytest.approx(0.25 * (1.0 + 4.0))  # mu/2 * ||(1, -2)||^2
    term.backward()
    torch.testing.assert_close(model.weight.grad, torch.tensor([[0.5, -1.0]]))  # mu * (w - anchor)


def test_zero_at_the_anchor_and_loss_wrapper_adds_it() -> None:
    model = _linear([1.0, -1.0])
    anchor = snapshot_trainable(model)
    assert proximal_term(model, anchor, mu=3.0).item() == 0.0
    with torch.no_grad():
        model.weight += 1.0
    base = nn.MSELoss()
    x, y = torch.ones(4, 2), torch.zeros(4, 1)
    loss = ProximalLoss(base, model, anchor, mu=2.0)(model(x), y)
    assert loss.item() == pytest.approx(base(model(x), y).item() + 2.0)  # mu/2 * (1 + 1)


def test_anchor_count_must_match() -> None:
    with pytest.raises(FederateError, match="anchors"):
        proximal_term(_linear([0.0, 0.0]), [], mu=1.0)
