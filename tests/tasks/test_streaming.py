"""Prepared splits are ids, and a domain read row by row from disk (memory-mapped) trains and scores
exactly as the same data held in memory: the default pair through every stage, both ways."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from tasks import adapt, evaluate, prepare, pretrain, select, similarity, validate
from tasks.data_files import adaptation_data, target_test
from tasks.paths import EVALUATION, PREPARED_SOURCE, PREPARED_TARGET, PREPARED_TEST
from tests.e2e.project import TINY
from transferlab.config import parse_params
from transferlab.data import DomainSpec, load_domain
from transferlab.errors import DataError

STAGES = (prepare, validate, pretrain, similarity, select, adapt, evaluate)


def _run(root: Path, params: dict) -> dict:
    p = parse_params(params)
    for stage in STAGES:
        stage.run(p, root)
    return json.loads((root / EVALUATION).read_text())


def _exported(tmp_path: Path, name: str) -> str:
    """The built-in dataset as an uncompressed .npz of its float32 images (read memory-mapped)."""
    domain = load_domain(DomainSpec(name=name))
    path = tmp_path / f"{name}.npz"
    np.savez(path, x=domain.x, y=domain.y)
    return str(path)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    base = tmp_path_factory.mktemp("streaming")
    params = copy.deepcopy(TINY)
    memory = _run(base / "memory", params)
    for role, name in (("source", "mnist5k"), ("target", "uci-digits")):
        params["data"][role] = {**params["data"][role], "name": "npz", "path": _exported(base, name)}
    streamed = _run(base / "streamed", params)
    return base, memory, streamed


def test_the_streamed_run_prepares_the_same_ids_and_gives_the_same_metrics(both):
    base, memory, streamed = both
    for folder in (PREPARED_SOURCE, PREPARED_TARGET, PREPARED_TEST):
        for split in (base / "memory" / folder).glob("*.npz"):
            a, b = np.load(split), np.load(base / "streamed" / folder / split.name)
            assert set(a.files) == {"index", "y", "row_hash"}  # ids, labels, hashes: no pixels
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key])
    for key in ("adapted_accuracy", "source_only_accuracy", "transfer_gain", "transfer_gain_ci", "method", "verdict"):
        assert memory[key] == streamed[key], key
    data = adaptation_data(base / "streamed")
    assert data.source_train.is_lazy and data.target_unlabelled.is_lazy and target_test(base / "streamed").is_lazy


def test_a_prepared_split_is_small_and_data_changed_behind_it_is_refused(both):
    base, _, _ = both
    root = base / "streamed"
    size = sum(f.stat().st_size for f in (root / PREPARED_TARGET).iterdir())
    assert size < 20_000  # ids, labels and hashes of a few hundred samples, not their pixels
    path = Path(json.loads((root / PREPARED_TARGET / "manifest.json").read_text())["recipe"]["spec"]["path"])
    with np.load(path) as stored:
        x, y = stored["x"].copy(), stored["y"]
    x[::7] = 1 - x[::7]  # the dataset edited in place after prepare ran
    np.savez(path, x=x, y=y)
    from tasks import data_files

    data_files._built.cache_clear()
    with pytest.raises(DataError, match="changed since prepare wrote the '.*' split: run prepare again"):
        adaptation_data(root)
