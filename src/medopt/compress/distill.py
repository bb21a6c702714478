"""Knowledge distillation from the unpruned teacher, as a drop-in loss for ``medopt.train.loop.fit``.

Why a loss with a forward hook: ``fit`` calls ``loss_fn(student_logits, y)``; the hook on the student captures the
same input batch so the teacher sees exactly what the student saw, with no second training loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from medopt.compress.errors import CompressError


def kd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    targets: Tensor,
    *,
    alpha: float,
    temperature: float,
    base_loss: nn.Module,
) -> Tensor:
    """alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * base_loss(student, targets).

    The T^2 factor keeps the soft-target gradients on the same scale as the hard-label ones (Hinton et al.).
    """
    if not 0.0 <= alpha <= 1.0 or temperature <= 0:
        raise CompressError(f"kd_loss: alpha must be in [0, 1] and temperature > 0, got {alpha}, {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise CompressError(f"kd_loss: student {tuple(student_logits.shape)} vs teacher {tuple(teacher_logits.shape)}")
    t = float(temperature)
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    reduction="batchmean", log_target=True)
    return alpha * t * t * soft + (1.0 - alpha) * base_loss(student_logits, targets)


class DistillationLoss(nn.Module):
    """``loss(student_logits, y)`` that distils from ``teacher`` on the batch the attached student last saw."""

    def __init__(self, teacher: nn.Module, base_loss: nn.Module, *, alpha: float, temperature: float) -> None:
        super().__init__()
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.base_loss = base_loss
        self.alpha = alpha
        self.temperature = temperature
        self._last_input: Tensor | None = None

    def train(self, mode: bool = True) -> "DistillationLoss":
        """The teacher stays in eval mode (frozen BatchNorm statistics, no dropout) whatever the loss's mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def attach(self, student: nn.Module) -> RemovableHandle:
        """Capture each student input batch; remove the returned handle when fine-tuning ends."""

        def capture(_module: nn.Module, args: tuple[Tensor, ...]) -> None:
            self._last_input = args[0]

        return student.register_forward_pre_hook(capture)

    def forward(self, student_logits: Tensor, targets: Tensor) -> Tensor:
        if self._last_input is None:
            raise CompressError("DistillationLoss: no student input captured; call attach(student) first")
        with torch.no_grad():
            teacher_logits = self.teacher(self._last_input)
        return kd_loss(student_logits, teacher_logits, targets, alpha=self.alpha, temperature=self.temperature,
                       base_loss=self.base_loss)
