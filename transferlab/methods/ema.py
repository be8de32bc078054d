"""A student and its exponential-moving-average teacher (Tarvainen & Valpola 2017), shared by
``mean-teacher`` (whose consistency target the teacher is) and ``adamatch`` (whose weight average
it can be): the loop trains the student's weights and scores, checkpoints and returns the teacher.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class StudentTeacher(nn.Module):
    """The pair the loop trains (the student's weights) and scores (the teacher's predictions)."""

    def __init__(self, student: nn.Module):
        super().__init__()
        self.student = student
        self.teacher = copy.deepcopy(student)
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.teacher(x)

    @torch.no_grad()
    def update_teacher(self, alpha: float) -> None:
        """θ' ← α θ' + (1 − α) θ; buffers (batch-norm running statistics) are the student's own,
        since an average of running statistics is not the statistics of the averaged network."""
        for t, s in zip(self.teacher.parameters(), self.student.parameters()):
            t.mul_(alpha).add_(s.detach(), alpha=1 - alpha)
        for t, s in zip(self.teacher.buffers(), self.student.buffers()):
            t.copy_(s)
