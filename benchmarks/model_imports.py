"""The imports part of benchmarks/new_task.py: a model trained in place, imported three ways, must
give the same numbers to the last digit (CPU).

Project A trains a torchvision ResNet-18 (``model.arch: tv-resnet18``) on the default pair with
``dvc repro``. Then the same network is imported: by its MLflow registry version (in project A), as
its weights folder (project B), and as a plain torchvision state dict (project C, written by
``transferlab.models.torchvision_state_dict``, which is what ``torch.save(model.state_dict())`` of a
torchvision ResNet-18 holds). Every accuracy evaluate reports, and pretrain's source-validation
accuracy, are compared as exact floats.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import torch
import yaml

from benchmarks.results import machine
from tests.e2e.project import BIN, env, make_project, set_param
from transferlab.models import load_model, torchvision_state_dict

ROOT = Path(__file__).resolve().parents[1]
DIGITS = [str(i) for i in range(10)]


def _repro(path: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run([str(BIN / "dvc"), "repro"], cwd=path, env=env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"dvc repro failed in {path}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def numbers(path: Path) -> dict[str, float | None]:
    evaluation = json.loads((path / "reports/evaluation.json").read_text())
    pretrain = json.loads((path / "reports/pretrain.json").read_text())
    out = {"source validation (pretrain)": pretrain["source_val_accuracy"]}
    out.update({f"{name} (test)": m["accuracy_mean"] for name, m in sorted(evaluation["models"].items())})
    return out


def run_imports(args) -> str:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["model"]["arch"] = "tv-resnet18"
    params["data"]["image_size"] = 32
    pretrained = {"kind": "torchvision", "arch": "resnet18", "image_size": 32, "classes": DIGITS}
    rows, seconds = {}, {}
    with tempfile.TemporaryDirectory(prefix="tl-imports-") as tmp:
        a = make_project(Path(tmp) / "a", params)
        seconds["trained in place"] = _repro(a)
        rows["trained in place"] = numbers(a)
        b = make_project(Path(tmp) / "b", {**params, "model": {**params["model"], "pretrained": {
            "kind": "folder", "path": "models/pretrained/source"}}})
        shutil.copytree(a / "models/source", b / "models/pretrained/source")
        seconds["weights folder"] = _repro(b)
        rows["weights folder"] = numbers(b)
        c = make_project(Path(tmp) / "c", {**params, "model": {**params["model"], "pretrained": {
            **pretrained, "path": "models/pretrained/resnet18.pth"}}})
        torch.save(torchvision_state_dict(load_model(a / "models/source")), c / "models/pretrained/resnet18.pth")
        seconds["torchvision state dict"] = _repro(c)
        rows["torchvision state dict"] = numbers(c)
        set_param(a, "model.pretrained", {"kind": "registry", "uri": "models:/transferlab-source/1"})
        seconds["registry version"] = _repro(a)
        rows["registry version"] = numbers(a)
    return imports_table(rows, seconds)


def imports_table(rows: dict[str, dict], seconds: dict[str, float]) -> str:
    reference = rows["trained in place"]
    keys = list(reference)
    lines = ["## Imported models reproduce the model trained in place (`benchmarks/new_task.py --part imports`)", "",
             f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/new_task.py --part imports --out "
             "benchmarks/RESULTS.md`. The default pair (mnist5k → uci-digits) at 32×32 with `model.arch: "
             "tv-resnet18`, the rest of params.yaml as shipped; each row is a fresh `dvc repro`. Accuracies in %, "
             "printed to 4 decimals; 'identical' compares the exact floats.", "",
             "| source of the model | " + " | ".join(keys) + " | identical | pipeline s |",
             "|" + "---|" * (len(keys) + 3)]
    for name, values in rows.items():
        same = all(values.get(k) == reference[k] for k in keys) and set(values) == set(keys)
        cells = ["-" if values.get(k) is None else f"{100 * values[k]:.4f}" for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {'yes' if same else 'NO'} | {seconds[name]:.0f} |")
    ok = all(all(v.get(k) == reference[k] for k in keys) for v in rows.values())
    lines += ["", f"Goal (every import reproduces the in-place numbers to the last digit on CPU): "
                  f"{'met' if ok else 'not met'}."]
    return "\n".join(lines) + "\n"
