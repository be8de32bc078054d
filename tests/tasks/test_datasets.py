"""The project's own datasets under data/raw, tracked by DVC (tasks/datasets.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tasks import datasets
from transferlab.data import DomainSpec, load_domain
from transferlab.errors import DataError

DVC = str(Path(sys.executable).parent / "dvc")


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([DVC, "init", "-q"], cwd=root, check=True, env={"DVC_NO_ANALYTICS": "1", "PATH": "/usr/bin:/bin"})
    return root


def _npz(path: Path, n: int = 30, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.integers(0, 255, (n, 8, 8), dtype=np.uint8), y=np.arange(n) % 3,
             classes=np.array(["a", "b", "c"]))
    return path


def _imagefolder(path: Path) -> Path:
    from PIL import Image

    for c in ("cat", "dog"):
        (path / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((6, 5), 40 * i, dtype=np.uint8)).save(path / c / f"{i}.png")
    return path


def test_the_layout_of_a_path_names_its_reader(tmp_path):
    assert datasets.infer_kind(_npz(tmp_path / "d.npz")) == "npz"
    assert datasets.infer_kind(_imagefolder(tmp_path / "tree")) == "imagefolder"
    usps = tmp_path / "usps"
    usps.mkdir()
    for part in ("train", "test"):
        _npz(usps / f"{part}.npz")
    assert datasets.infer_kind(usps) == "usps"
    mnist = tmp_path / "mnist" / "raw"
    mnist.mkdir(parents=True)
    (mnist / "train-images-idx3-ubyte.gz").write_bytes(b"")
    assert datasets.infer_kind(tmp_path / "mnist") == "mnist"
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="must be an .npz"):
        datasets.infer_kind(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="--kind"):
        datasets.infer_kind(tmp_path / "empty")


def test_add_copies_tracks_and_makes_the_name_loadable(tmp_path):
    root = _project(tmp_path)
    src = _npz(tmp_path / "scans.npz")
    t = datasets.add(root, "scans", src, description="my scans")
    assert (root / "data/raw/scans/scans.npz").read_bytes() == src.read_bytes()
    dvc_file = yaml.safe_load((root / "data/raw/scans.dvc").read_text())
    assert dvc_file["meta"]["transferlab"] == {"kind": "npz", "file": "scans.npz", "description": "my scans"}
    assert t.md5 == dvc_file["outs"][0]["md5"] and t.md5.endswith(".dir") and t.nfiles == 1
    assert "/scans" in (root / "data/raw/.gitignore").read_text()  # the data itself stays out of git
    staged = subprocess.run(["git", "diff", "--cached", "--name-only"], cwd=root, capture_output=True,
                            text=True).stdout.split()
    assert "data/raw/scans.dvc" in staged and "data/raw/scans/scans.npz" not in staged
    assert [d.name for d in datasets.register_tracked(root)] == ["scans"]
    domain = load_domain(DomainSpec(name="scans", max_samples=9), seed=0)
    assert domain.name == "scans" and len(domain) == 9 and domain.classes == ("a", "b", "c")


def test_an_imagefolder_tree_is_tracked_as_a_folder(tmp_path):
    root = _project(tmp_path)
    t = datasets.add(root, "pets", _imagefolder(tmp_path / "tree"))
    assert t.kind == "imagefolder" and t.nfiles == 6 and t.path == Path("data/raw/pets")
    datasets.register_tracked(root)
    assert load_domain(DomainSpec(name="pets")).classes == ("cat", "dog")


@pytest.mark.parametrize("name, match", [("Bad Name", "lower-case"), ("uci-digits", "built-in"),
                                         ("scans", "already exists")])
def test_bad_names_are_refused_before_anything_is_written(tmp_path, name, match):
    root = _project(tmp_path)
    datasets.add(root, "scans", _npz(tmp_path / "a.npz"))
    before = sorted(p.name for p in (root / "data/raw").iterdir())
    with pytest.raises(DataError, match=match):
        datasets.add(root, name, _npz(tmp_path / "b.npz", seed=1))
    assert sorted(p.name for p in (root / "data/raw").iterdir()) == before


def test_unreadable_data_or_no_dvc_project_leaves_nothing(tmp_path):
    root = _project(tmp_path)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        datasets.add(root, "bad", corrupt)
    tree = _imagefolder(tmp_path / "tree")
    (tree / "cat" / "broken.png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(DataError, match=r"broken\.png is not a readable image"):
        datasets.add(root, "pets", tree)
    with pytest.raises(DataError, match="does not exist"):
        datasets.add(root, "gone", tmp_path / "missing.npz")
    assert not (root / "data/raw").exists() or not any((root / "data/raw").iterdir())
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(DataError, match="not a DVC project"):
        datasets.add(plain, "scans", _npz(tmp_path / "c.npz"))
    assert not (plain / "data").exists()


def test_a_tracked_dataset_not_pulled_says_how_to_get_it(tmp_path):
    root = _project(tmp_path)
    datasets.add(root, "scans", _npz(tmp_path / "a.npz"))
    import shutil

    shutil.rmtree(root / "data/raw/scans")
    datasets.register_tracked(root)
    with pytest.raises(DataError, match=r"dvc pull data/raw/scans\.dvc"):
        load_domain(DomainSpec(name="scans"))
    with pytest.raises(DataError, match="remove 'path'"):
        load_domain(DomainSpec(name="scans", path="elsewhere.npz"))


def test_inputs_name_the_version_that_was_read(tmp_path):
    root = _project(tmp_path)
    t = datasets.add(root, "scans", _npz(tmp_path / "a.npz"))
    tracked = datasets.domain_input(root, DomainSpec(name="scans"))
    assert (tracked.source, tracked.digest, tracked.tags["dvc.md5"]) == ("data/raw/scans", t.md5, t.md5)
    from importlib.metadata import version

    builtin = datasets.domain_input(root, DomainSpec(name="uci-digits"))
    assert builtin.tags == {"package": f"scikit-learn=={version('scikit-learn')}"} and len(builtin.digest) == 32
    external = datasets.domain_input(root, DomainSpec(name="npz", path=str(tmp_path / "a.npz")))
    assert external.tags["dvc.tracked"] == "false" and external.digest == external.tags["sha256"][:32]
    warning = datasets.untracked_path_warning(root, "data.target", DomainSpec(name="npz", path=str(tmp_path / "a.npz")))
    assert warning.startswith("warning: data.target.path") and "transferlab datasets add" in warning
    assert datasets.untracked_path_warning(root, "data.target", DomainSpec(name="scans")) is None
    inside = DomainSpec(name="npz", path="data/raw/scans/a.npz")
    assert datasets.untracked_path_warning(root, "data.target", inside) is None


def test_the_cli_adds_and_lists(tmp_path, capsys):
    from flows.cli import main

    root = _project(tmp_path)
    assert main(["datasets", "add", "scans", str(_npz(tmp_path / "a.npz")), "--project", str(root)]) == 0
    assert "tracked scans (npz" in capsys.readouterr().out
    assert main(["datasets", "--project", str(root)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("scans "))
    assert "npz" in row and ".dir" in row and "yes" in row
    assert main(["datasets", "add", "scans", str(tmp_path / "a.npz"), "--project", str(root)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_the_flow_records_an_edited_dataset_as_dvc_repro_does(tmp_path):
    from flows.pipeline import commit_data_sources

    root = _project(tmp_path)
    before = datasets.add(root, "scans", _npz(tmp_path / "a.npz")).md5
    assert commit_data_sources(str(root)) == []
    _npz(root / "data/raw/scans/a.npz", seed=5)
    assert commit_data_sources(str(root)) == ["data/raw/scans.dvc"]
    after = datasets.tracked(root)[0]
    assert after.md5 != before and after.kind == "npz"  # the meta survives the re-hash
    status = subprocess.run([DVC, "status"], cwd=root, capture_output=True, text=True).stdout
    assert "changed" not in status
