"""The bad inputs of ``benchmarks/chaos.py``: each case sets up a fresh tiny project so that one
thing is wrong, and names the command a user would run. Expected of every case: a non-zero exit, one
``error:`` line and no traceback, nothing written (no prepared data, models, reports, MLflow store),
``params.yaml`` as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

RUN = ["transferlab", "run"]


@dataclass(frozen=True)
class Case:
    name: str
    setup: Callable[[Path], None]         # makes the project wrong; may write files outside the outputs
    command: list[str] = field(default_factory=lambda: list(RUN))
    expect: str = "error"                 # error: refused in one line | recovered: a note, then exit 0


def _params(path: Path) -> dict:
    return yaml.safe_load((path / "params.yaml").read_text())


def _write_params(path: Path, raw) -> None:
    (path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def _set(dotted: str, value) -> Callable[[Path], None]:
    def setup(path: Path) -> None:
        raw = _params(path)
        node = raw
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
        _write_params(path, raw)
    return setup


def _target_npz(x: np.ndarray, y: np.ndarray, *, source_too: bool = False, **extra) -> Callable[[Path], None]:
    """The target (and with ``source_too`` the source) read from an .npz holding ``x``, ``y``."""
    def setup(path: Path) -> None:
        file = path.parent / f"{path.name}-data.npz"
        np.savez(file, x=x, y=y, **extra)
        raw = _params(path)
        raw["data"]["target"] = {"name": "npz", "path": str(file)}
        if source_too:
            raw["data"]["source"] = {"name": "npz", "path": str(file)}
        _write_params(path, raw)
    return setup


def _raw_file(content: bytes) -> Callable[[Path], None]:
    def setup(path: Path) -> None:
        file = path.parent / f"{path.name}-data.npz"
        file.write_bytes(content)
        raw = _params(path)
        raw["data"]["target"] = {"name": "npz", "path": str(file)}
        _write_params(path, raw)
    return setup


def _imagefolder_with_corrupt_file(path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    root = path.parent / f"{path.name}-images"
    for c in range(10):
        (root / str(c)).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(root / str(c) / f"{i}.png")
    (root / "3" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    raw = _params(path)
    raw["data"]["target"] = {"name": "imagefolder", "path": str(root)}
    _write_params(path, raw)


def _text(content: str) -> Callable[[Path], None]:
    def setup(path: Path) -> None:
        (path / "params.yaml").write_text(content)
    return setup


def _empty_lock(path: Path) -> None:
    (path / "dvc.lock").write_text("")


def _no_setup(path: Path) -> None:
    return None


_RNG = np.random.default_rng(0)
_IMAGES = _RNG.integers(0, 255, (200, 16, 16), dtype=np.uint8)
_LABELS = np.repeat(np.arange(10), 20)


def cases() -> list[Case]:
    with_nan = _IMAGES.astype(np.float32)
    with_nan[5, 3, 3] = np.nan
    return [
        Case("unknown dataset", _set("data.target.name", "no-such-set")),
        Case("missing data folder", _set("data.target", {"name": "usps", "path": "/no/such/folder"})),
        Case("params.yaml is a list", _text("- 1\n- 2\n")),
        Case("params.yaml is not YAML", _text("seed: [0\n")),
        Case("unknown top-level key", _set("colour", "blue")),
        Case("negative label budget", _set("data.target_labels_per_class", -3)),
        Case("seed 2**70", _set("seed", 2 ** 70)),
        Case("empty mlflow.experiment", _set("mlflow.experiment", "")),
        Case("unknown dann key (foo=1)", _set("adapt.methods.dann", {"foo": 1})),
        Case("dann trade_off -1", _set("adapt.methods.dann", {"trade_off": -1})),
        Case("force finetune without labels", _set("select.force_method", "finetune")),
        Case("device cuda without a GPU", _set("device", "cuda")),
        Case("image_size 0", _set("data.image_size", 0)),
        Case("test fraction 1.5", _set("data.target_test_fraction", 1.5)),
        Case("both domains single-class", _target_npz(_IMAGES, np.zeros(200, dtype=np.int64), source_too=True)),
        Case("one-class target", _target_npz(_IMAGES, np.zeros(200, dtype=np.int64))),
        Case("string-typed images", _target_npz(_IMAGES.astype(str), _LABELS)),
        Case("complex-valued images", _target_npz(_IMAGES.astype(np.complex64), _LABELS)),
        Case("negative labels", _target_npz(_IMAGES, _LABELS - 1)),
        Case("float labels", _target_npz(_IMAGES, _LABELS + 0.5)),
        Case("NaN in images", _target_npz(with_nan, _LABELS)),
        Case("pickled object array", _target_npz(np.array([object()] * 200, dtype=object), _LABELS)),
        Case("corrupt .npz", _raw_file(b"PK\x03\x04 this is not a zip archive")),
        Case("corrupt image in an ImageFolder", _imagefolder_with_corrupt_file),
        Case("empty dvc.lock (transferlab run)", _empty_lock, expect="recovered"),
        Case("empty dvc.lock (dvc repro)", _empty_lock, command=["dvc", "repro"], expect="recovered"),
        Case("--set unknown dataset", _no_setup, command=RUN + ["--set", "data.target.name=no-such-set"]),
        Case("--set unknown key", _no_setup, command=RUN + ["--set", "select.colour=blue"]),
    ]
