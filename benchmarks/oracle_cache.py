"""A disk cache of the selection benchmark's oracle runs, so that comparing rankers costs only trials.

The oracle (every candidate trained in full, several times) is most of ``selection.py``'s time, and
it does not depend on how trials are ranked. With ``--cache DIR`` each full run's test-split
probabilities, its fit time and (without labels) its label-free validator scores are stored under a
key made of the scenario, the method, its settings, the training seed and a hash of the code that
trains and predicts. Selection code (``transferlab/selection/``) and the validators are left out of
that hash: changing them cannot change a full run. Scores are reused only while the validators'
own code is unchanged; fit times are those of the run that filled the cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
# What a full run's outputs cannot depend on: how trials are ranked and scored.
_RANKING = ("transferlab/selection/", "transferlab/validators.py", "transferlab/probe_validators.py")
_VALIDATORS = ("transferlab/validators.py", "transferlab/probe_validators.py")


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.relative_to(ROOT).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


@functools.cache  # once per process: every scenario of a run reads the same files
def training_code_hash() -> str:
    """A hash of the code a full run executes: transferlab minus the ranking code, and the stage's predict_proba."""
    files = [p for p in (ROOT / "transferlab").rglob("*.py")
             if not p.relative_to(ROOT).as_posix().startswith(_RANKING)]
    return _digest([*files, ROOT / "tasks" / "evaluate.py"])


@functools.cache
def validators_code_hash() -> str:
    return _digest([ROOT / p for p in _VALIDATORS])


Fit = Callable[[], tuple[np.ndarray, float, dict | None]]


class OracleCache:
    """``get(..., fit)`` returns (probabilities, seconds, scores or None), from disk or by calling ``fit``.
    ``folder`` None: no cache, ``fit`` every time."""

    def __init__(self, folder: Path | None, scenario: dict):
        self.folder = folder
        self.scenario = {**scenario, "torch": torch.__version__, "threads": torch.get_num_threads(),
                         "code": training_code_hash() if folder else None}
        self.validators = validators_code_hash() if folder else None
        self.hits = 0

    def _path(self, method: str, config: object, seed: int) -> Path:
        key = json.dumps({**self.scenario, "method": method, "config": repr(config), "seed": seed}, sort_keys=True)
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"

    def get(self, method: str, config: object, seed: int, fit: Fit) -> tuple[np.ndarray, float, dict | None]:
        if self.folder is None:
            return fit()
        path = self._path(method, config, seed)
        if path.exists():
            with np.load(path) as z:
                meta = json.loads(str(z["meta"]))
                self.hits += 1
                scores = meta["scores"] if meta["validators"] == self.validators else None
                return z["probs"], meta["seconds"], scores
        probs, seconds, scores = fit()
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")  # written whole, then renamed: a killed run leaves no half entry
        np.savez(tmp, probs=probs, meta=json.dumps({"seconds": seconds, "scores": scores,
                                                    "validators": self.validators}))
        tmp.replace(path)
        return probs, seconds, scores
