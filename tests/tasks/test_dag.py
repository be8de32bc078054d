"""dvc.yaml is the one definition of the DAG: the stage registry, the flow order and the paths
the stages use must all agree with it."""

from pathlib import Path

import yaml

from flows.dag import stage_order
from tasks.stages import STAGE_MODULES, stage_module

ROOT = Path(__file__).resolve().parents[2]


def _paths(entries):
    out = []
    for entry in entries or []:
        out.extend(entry.keys() if isinstance(entry, dict) else [entry])
    return {str(p) for p in out}


def test_flow_order_is_the_documented_pipeline():
    assert stage_order(ROOT / "dvc.yaml") == ["prepare", "validate", "pretrain", "similarity", "select", "adapt",
                                              "evaluate"]


def test_every_dvc_stage_has_code_and_every_stage_module_is_in_dvc():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert set(stages) == set(STAGE_MODULES)
    for name, stage in stages.items():
        assert stage["cmd"] == f"transferlab stage {name}"


def test_stage_deps_declared_in_code_are_declared_in_dvc():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name in STAGE_MODULES:
        module = stage_module(name)
        declared = _paths(stages[name].get("deps"))
        for dep in module.DEPS:
            assert str(dep) in declared, f"{name} reads {dep} but dvc.yaml does not list it as a dep"


def test_only_validate_and_evaluate_depend_on_the_target_test_split():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    readers = {n for n, s in stages.items() if "data/prepared/target_test" in _paths(s.get("deps"))}
    assert readers == {"validate", "evaluate"}
