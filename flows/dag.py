"""The stage order, derived from dvc.yaml (the single definition of the DAG)."""

from __future__ import annotations

from pathlib import Path

import yaml

from transferlab.errors import ConfigError


def _paths(entries) -> list[str]:
    out = []
    for entry in entries or []:
        out.extend(entry.keys() if isinstance(entry, dict) else [entry])
    return [str(p).rstrip("/") for p in out]


def read_stages(dvc_yaml: Path) -> dict[str, dict]:
    try:
        return (yaml.safe_load(Path(dvc_yaml).read_text()) or {})["stages"]
    except FileNotFoundError:
        raise ConfigError(f"{dvc_yaml} does not exist: run from the project root") from None
    except (KeyError, TypeError, yaml.YAMLError):
        raise ConfigError(f"{dvc_yaml} has no readable 'stages' section") from None


def stage_edges(stages: dict[str, dict]) -> dict[str, set[str]]:
    """stage -> the stages whose outs it depends on."""
    producer = {}
    for name, stage in stages.items():
        for out in _paths(stage.get("outs")) + _paths(stage.get("metrics")):
            producer[out] = name
    edges: dict[str, set[str]] = {name: set() for name in stages}
    for name, stage in stages.items():
        for dep in _paths(stage.get("deps")):
            for out, owner in producer.items():
                if owner != name and (dep == out or dep.startswith(out + "/") or out.startswith(dep + "/")):
                    edges[name].add(owner)
    return edges


def stage_order(dvc_yaml: Path = Path("dvc.yaml")) -> list[str]:
    """A topological order of dvc.yaml's stages; ties keep the file's order."""
    stages = read_stages(dvc_yaml)
    edges = stage_edges(stages)
    order: list[str] = []
    pending = list(stages)
    while pending:
        ready = [s for s in pending if edges[s] <= set(order)]
        if not ready:
            raise ConfigError(f"{dvc_yaml} has a dependency cycle among {', '.join(pending)}")
        order.append(ready[0])
        pending.remove(ready[0])
    return order
