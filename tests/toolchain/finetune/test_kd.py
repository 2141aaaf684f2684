from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cplitool.toolchain.finetune.kd import distillation_loss, kd_divergence


def manual_kd(student: torch.Tensor, teacher: torch.Tensor, t: float) -> float:
    """sum_i p_t,i (log p_t,i - log p_s,i), averaged over the batch, times T^2 (Hinton et al.)."""
    total = 0.0
    for s_row, t_row in zip(student.tolist(), teacher.tolist(), strict=True):
        zs = [v / t for v in s_row]
        zt = [v / t for v in t_row]
        ls = [v - math.log(sum(math.exp(u) for u in zs)) for v in zs]
        lt = [v - math.log(sum(math.exp(u) for u in zt)) for v in zt]
        total += sum(math.exp(b) * (b - a) for a, b in zip(ls, lt, strict=True))
    return total / len(student) * t * t


def test_kd_divergence_matches_the_definition() -> None:
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    for temperature in (1.0, 4.0):
        assert abs(kd_divergence(s, t, temperature).item() - manual_kd(s, t, temperature)) < 1e-5
    assert abs(kd_divergence(s, s, 4.0).item()) < 1e-6


class Fixed(nn.Module):
    """A teacher that answers fixed logits and has a parameter, to see that it gets no gradient."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits * self.scale


def test_distillation_loss_mixes_labels_and_teacher() -> None:
    g = torch.Generator().manual_seed(1)
    student = torch.randn(6, 10, generator=g, requires_grad=True)
    teacher_logits = torch.randn(6, 10, generator=g)
    targets = torch.randint(0, 10, (6,), generator=g)
    images = torch.zeros(6, 1, 8, 8)
    teacher = Fixed(teacher_logits)
    ce = F.cross_entropy(student, targets, label_smoothing=0.1)
    kd = kd_divergence(student, teacher_logits, 2.0)

    plain = distillation_loss(teacher, 2.0, 0.0, label_smoothing=0.1)(student, images, targets)
    only_kd = distillation_loss(teacher, 2.0, 1.0, label_smoothing=0.1)(student, images, targets)
    mixed = distillation_loss(teacher, 2.0, 0.3, label_smoothing=0.1)(student, images, targets)
    torch.testing.assert_close(plain, ce)
    torch.testing.assert_close(only_kd, kd)
    torch.testing.assert_close(mixed, 0.7 * ce + 0.3 * kd)

    mixed.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.scale.grad is None and not teacher.training
