"""A student and its exponential-moving-average teacher (Tarvainen & Valpola 2017), shared by
``mean-teacher`` (whose consistency target the teacher is) and ``adamatch`` (whose weight average
it can be): the loop trains the student's weights and scores, checkpoints and returns the teacher.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class StudentTeacher(nn.Module):
    """The pair the loop trains (the student's weights) and scores (the teacher's predictions).

    Batch-norm running statistics: a teacher that runs forward in train mode during training
    (mean-teacher's, on target batches) keeps its own; one that never runs until it is scored
    (adamatch's weight average) takes the student's with ``share_statistics``, since an average
    of running statistics is not the statistics of the averaged network.
    """

    def __init__(self, student: nn.Module, share_statistics: bool = False):
        super().__init__()
        self.student = student
        self.share_statistics = share_statistics
        self.teacher = copy.deepcopy(student)
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.teacher(x)

    @torch.no_grad()
    def update_teacher(self, alpha: float) -> None:
        """θ' ← α θ' + (1 − α) θ (and the student's buffers, when shared)."""
        for t, s in zip(self.teacher.parameters(), self.student.parameters()):
            t.mul_(alpha).add_(s.detach(), alpha=1 - alpha)
        if self.share_statistics:
            for t, s in zip(self.teacher.buffers(), self.student.buffers()):
                t.copy_(s)
