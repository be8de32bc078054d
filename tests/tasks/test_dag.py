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


def test_every_output_persists_until_its_stage_replaces_it():
    """DVC deletes a stage's outputs before running it unless they persist; the stages replace each
    output atomically, so with persist a failed or killed stage leaves the last good run's outputs
    (and dvc.lock still describes them) instead of none."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        for entry in (stage.get("outs") or []) + (stage.get("metrics") or []):
            assert isinstance(entry, dict), f"{name}: {entry} has no options (persist: true)"
            (path, options), = entry.items()
            assert options.get("persist") is True, f"{name}: {path} does not persist"


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


# --- code deps: derived from each stage module's imports (flows/code_deps.py) ---

import sys  # noqa: E402
import typing  # noqa: E402

from pydantic import BaseModel  # noqa: E402

from flows.code_deps import import_closure, is_code_dep, rewrite_dvc_yaml, stage_code_deps, undeclared  # noqa: E402
from transferlab.config import PipelineParams  # noqa: E402


def test_code_deps_in_dvc_yaml_are_exactly_the_imported_ones():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, module in STAGE_MODULES.items():
        declared = [d for d in _paths(stages[name].get("deps")) if is_code_dep(d)]
        assert undeclared(ROOT, module, declared) == [], \
            f"{name} imports modules dvc.yaml does not list: run `python -m flows.code_deps --write`"
        assert sorted(declared) == stage_code_deps(ROOT, module), \
            f"{name}'s code deps in dvc.yaml drifted from its imports: run `python -m flows.code_deps --write`"


def test_validators_and_dann_are_deps_of_exactly_the_stages_that_import_them():
    closure = {name: import_closure(ROOT, module) for name, module in STAGE_MODULES.items()}
    dann = {n for n, files in closure.items() if Path("transferlab/methods/dann.py") in files}
    validators = {n for n, files in closure.items() if Path("transferlab/validators.py") in files}
    assert dann == {"select", "adapt", "evaluate"}
    assert {"select", "adapt", "evaluate"} <= validators and "prepare" not in validators


def _write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


def test_an_undeclared_import_is_caught_wherever_it_is_written(tmp_path):
    _write(tmp_path, "tasks/__init__.py", "")
    _write(tmp_path, "tasks/helper.py", "X = 1\n")
    _write(tmp_path, "tasks/stage_x.py",
           "from . import helper\n\ndef run():\n    from transferlab.methods import dann\n")
    _write(tmp_path, "transferlab/__init__.py", "")
    _write(tmp_path, "transferlab/schema.py", "")
    _write(tmp_path, "transferlab/methods/__init__.py", "from transferlab.schema import X  # code-deps: schema\n")
    _write(tmp_path, "transferlab/methods/dann.py", "import numpy\n")
    missing = undeclared(tmp_path, "tasks.stage_x", ["tasks/stage_x.py", "tasks/__init__.py"])
    assert missing == ["tasks/helper.py", "transferlab/__init__.py", "transferlab/methods/__init__.py",
                       "transferlab/methods/dann.py"]
    assert undeclared(tmp_path, "tasks.stage_x", ["tasks", "transferlab/__init__.py", "transferlab/methods"]) == []
    assert stage_code_deps(tmp_path, "tasks.stage_x") == [
        "tasks/__init__.py", "tasks/helper.py", "tasks/stage_x.py", "transferlab/__init__.py", "transferlab/methods"]


def test_rewrite_replaces_code_deps_and_keeps_data_deps_and_comments():
    text = ("stages:\n  a:\n    cmd: x\n    deps:\n      - tasks/old.py\n      - data/raw   # the user's data\n"
            "    params:\n      - seed\n")
    assert rewrite_dvc_yaml(text, {"a": ["tasks/a.py", "transferlab/data"]}) == (
        "stages:\n  a:\n    cmd: x\n    deps:\n      - tasks/a.py\n      - transferlab/data\n"
        "      - data/raw   # the user's data\n    params:\n      - seed\n")


def _schema_files(annotation) -> set[Path]:
    """The project files defining the pydantic models a params section is made of."""
    files: set[Path] = set()
    pending, seen = [annotation], set()
    while pending:
        t = pending.pop()
        if isinstance(t, type) and issubclass(t, BaseModel) and t not in seen:
            seen.add(t)
            files.add(Path(sys.modules[t.__module__].__file__).resolve().relative_to(ROOT))
            pending.extend(f.annotation for f in t.model_fields.values())
        pending.extend(typing.get_args(t))
    return files


def test_a_stage_imports_the_schema_of_every_params_section_it_declares():
    """Why config.py's `code-deps: schema` imports need not be followed: each stage that reads a
    section imports the code that defines it (method configs live with their methods)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    extra = {"adapt": {Path("transferlab/methods/__init__.py")}, "select": {Path("transferlab/methods/__init__.py")}}
    for name, module in STAGE_MODULES.items():
        closure = import_closure(ROOT, module)
        for section in stages[name].get("params") or []:
            field = PipelineParams.model_fields[section]
            needed = _schema_files(field.annotation) | extra.get(section, set())
            assert needed <= closure, f"{name} reads params.{section} but does not import {needed - closure}"


# --- DVC experiments: what a commit or a `dvc exp run` experiment must carry ---

import subprocess  # noqa: E402

from tasks.paths import METRICS  # noqa: E402


def _git_ignored(path: str) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT).returncode == 0


def test_the_one_dvc_metric_is_the_headline_file_and_git_holds_it():
    """`dvc exp show` / `dvc metrics diff` read metrics from each revision: a metric that is neither
    committed nor cached shows as `!`; more than one metrics file makes `dvc metrics show` a table
    hundreds of characters wide."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    declared = {name: stage["metrics"] for name, stage in stages.items() if stage.get("metrics")}
    assert declared == {"evaluate": [{str(METRICS): {"cache": False, "persist": True}}]}
    assert not _git_ignored(str(METRICS))


def test_plot_files_are_carried_by_dvc_and_dvc_plots_output_is_ignored():
    """`dvc plots diff` reads each revision's plot files: they must lie in an output DVC caches."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    cached = {path for stage in dvc["stages"].values() for entry in stage.get("outs") or []
              for path, options in (entry.items() if isinstance(entry, dict) else [(entry, {})])
              if (options or {}).get("cache", True)}
    for plot in dvc["plots"]:
        path = next(iter(plot)) if isinstance(plot, dict) else plot
        assert any(path == out or path.startswith(out + "/") for out in cached), f"{path} is in no cached out"
    assert _git_ignored("dvc_plots/index.html")


def test_the_plots_page_template_is_set_and_keeps_dvcs_placeholders():
    """DVC's interactive plots load vega from a CDN; the project's page template (.dvc/plots.html)
    shows a note when that failed instead of a silently missing plot, and keeps DVC's own scripts."""
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc" / "config")
    template = (ROOT / ".dvc" / config["plots"]["html_template"]).read_text()
    assert "{plot_divs}" in template and "{scripts}" in template
    assert 'typeof vegaEmbed === "undefined"' in template
