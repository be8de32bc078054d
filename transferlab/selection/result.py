"""What the select stage decides: the method, its settings, the candidates and the reasons."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


RULE_SCORE = ("rule preference: 1 = chosen, 0.9, 0.8, ... = the fallbacks in order, 0.1 = eligible but not "
              "preferred, 0 = not eligible; a ranking by the selection rules, not a measurement")


def method_label(method: str, settings: dict[str, Any]) -> str:
    """``dann(trade_off=0.3)``: a method with the settings chosen for it; an ensemble as its members'
    labels joined by ``+`` (``ensemble(mcc + shot)``)."""
    if isinstance(settings.get("members"), list):
        return f"{method}({members_text(settings['members'])})"
    if not settings:
        return method
    return method + "(" + ", ".join(f"{k}={v}" for k, v in sorted(settings.items())) + ")"


def members_text(members: list[dict[str, Any]]) -> str:
    """An ensemble's members (``{"method", "settings"}`` each) as ``mcc + dann(trade_off=0.3)``."""
    return " + ".join(method_label(m["method"], m.get("settings") or {}) for m in members)


@dataclass
class Selection:
    """A chosen method with its evidence; ``to_dict()`` is what ``reports/selection.json`` holds.

    ``candidates``: one ``{"method", "score", "eligible", "why"}`` per method considered. In rule
    mode ``score`` is the rule preference (1 = chosen, lower = less preferred, 0 = not eligible),
    not a measurement; in trial mode it is the trial score that ranked it (higher is better).
    ``score_meaning`` says which, as "column name: explanation", for the report.
    """

    method: str
    settings: dict[str, Any]
    candidates: list[dict[str, Any]]
    reasons: list[str]
    mode: str
    warnings: list[str] = field(default_factory=list)
    decided_by: str = "rules"
    evidence: dict[str, Any] = field(default_factory=dict)
    trials: list[dict[str, Any]] = field(default_factory=list)
    cost: dict[str, Any] = field(default_factory=dict)
    score_meaning: str = RULE_SCORE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
