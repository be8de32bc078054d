"""An ensemble of finished candidates as a candidate in its own right (EnsV; Hu et al. 2024).

EnsV ("Towards Robust Model Selection for Unsupervised Domain Adaptation", Hu et al. 2024)
observes that every single label-free validator makes some worst-case pick, while the average of
the candidates' predictions is never far below the best candidate. With M members fₘ,

    p_ens(x) = (1/M) Σₘ softmax(fₘ(x))

:class:`EnsembleClassifier` returns log p_ens as its logits, so softmax of its output is exactly
that mean (and argmax is the ensemble's prediction). Its ``features`` are the members' predicted
probabilities side by side (M·C values): the members' own feature spaces differ in kind and size
(and side by side would make DEV's and reverse validation's fits M times wider), while their
probabilities are common ground, so the feature-based validators can score it like any model.

When to use it (:func:`committee_choice`): a *committee* of validators each names its top
candidate. If they all agree, that candidate is chosen; the evidence is consistent. If they
disagree, the evidence is weak and the *finalists* (the distinct top picks, in the committee's
order) are averaged: the ensemble cannot be much worse than its worst finalist and is usually
close to the best, which is the safe choice when no validator can be trusted to say which.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from transferlab.errors import ConfigError


class EnsembleClassifier(nn.Module):
    """Mean of the members' softmax outputs, returned as log-probabilities (see module docstring)."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if not members:
            raise ConfigError("an ensemble needs at least one member model")
        specs = [m.spec for m in members if hasattr(m, "spec")]
        # A member may leave its classes unnamed (a source head adapted in place): it is judged by count.
        names = {tuple(s.classes) for s in specs if s.classes is not None}
        if len(names) > 1 or len({s.num_classes for s in specs}) > 1:
            raise ConfigError("an ensemble's members must predict the same classes in the same order")
        self.members = nn.ModuleList(members)
        # The member that speaks for all (an index: a module attribute would be registered twice).
        self._lead = next((i for i, m in enumerate(members) if getattr(m, "spec", None) and m.spec.classes), 0)

    @property
    def spec(self):
        """The lead member's :class:`~transferlab.models.ModelSpec`, the first that names its classes (else
        the first): what every member reads (its input form) and predicts is the ensemble's too."""
        return self.members[self._lead].spec

    @property
    def classes(self) -> tuple[str, ...]:
        return self.members[self._lead].classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.softmax(m(x), dim=1) for m in self.members]).mean(dim=0)
        return torch.log(probs.clamp_min(1e-12))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.softmax(m(x), dim=1) for m in self.members], dim=1)


# The committee, fixed before any held-out number was seen: the default trial ranker (DEV), the
# validator of the first study (IM) and SKADA-Bench's best deep scorer (entropy).
COMMITTEE = ("dev", "im", "entropy")


@dataclass(frozen=True)
class CommitteeChoice:
    ensemble: bool  # True: average ``finalists``; False: ``finalists[0]`` alone
    finalists: tuple[str, ...]
    reason: str


def committee_top_picks(scores: dict[str, dict[str, float]]) -> dict[str, str]:
    """Each :data:`COMMITTEE` validator that every candidate has → the candidate (a key of ``scores``,
    candidate → its validator scores) it scores highest, the first listed on a tie."""
    keys = [v for v in COMMITTEE if all(v in s for s in scores.values())]
    return {v: max(scores, key=lambda c: scores[c][v]) for v in keys}


def committee_choice(top_picks: dict[str, str]) -> CommitteeChoice:
    """The disagreement rule: ``top_picks`` maps each committee validator to the candidate it ranks
    first. All the same → that candidate; otherwise the ensemble of the distinct picks."""
    if not top_picks:
        raise ConfigError("the validator committee is empty")
    finalists = tuple(dict.fromkeys(top_picks.values()))
    votes = ", ".join(f"{v.upper()} → {c}" for v, c in top_picks.items())
    if len(finalists) == 1:
        return CommitteeChoice(False, finalists, f"the validators agree ({votes}): '{finalists[0]}' is chosen")
    return CommitteeChoice(True, finalists, (
        f"the validators disagree ({votes}), so no single pick is trustworthy: the ensemble of the "
        f"finalists {', '.join(finalists)} (mean of their predicted probabilities) is chosen"))
