"""Transitive transfer through the stages: prepare writes an unlabelled intermediate pool, similarity
measures the chain, select chooses it and says why, adapt runs the hops (a nested MLflow run and a
registered version each, the chain in the versions' lineage tags); the pool's labels are never read."""

import hashlib
import json

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tasks import adapt, prepare, pretrain, select, similarity, validate
from tasks.intermediate import read_pools
from tasks.paths import ADAPTED_MODEL, PREPARED_INTERMEDIATE, SELECTION, SIMILARITY
from transferlab.config import parse_params
from transferlab.data import DomainSpec, ShiftSpec, apply_shift, load_domain


def _params(pool: str, **transitive):
    return parse_params({
        "data": {"source": {"name": "mnist5k", "max_samples": 300},
                 "target": {"name": "mnist5k", "max_samples": 300,
                            "shifts": [{"name": "rotate", "severity": 0.8, "seed": 1}]},
                 "intermediate": [{"name": "npz", "path": pool}],
                 "image_size": 16},
        "model": {"hidden": 32},
        "pretrain": {"epochs": 1, "max_steps_per_epoch": 5},
        "similarity": {"permutations": 20, "max_samples": 100, "plots": False},
        "select": {"transitive": {"hop_method": "self-training", "force": True, **transitive}},
        "adapt": {"train": {"epochs": 1, "max_steps_per_epoch": 3}},
    })


def _write_pool(path, labels_seed: int | None = None) -> None:
    """200 MNIST digits rotated by up to ±36°, with their labels or (labels_seed) with garbage."""
    domain = apply_shift(load_domain(DomainSpec(name="mnist5k", max_samples=200), seed=3),
                         ShiftSpec(name="rotate", severity=0.4, seed=2))
    y = domain.y if labels_seed is None else np.random.default_rng(labels_seed).integers(0, 10, len(domain))
    np.savez(path, x=np.asarray(domain.x), y=y)


@pytest.fixture(scope="module")
def chain_project(tmp_path_factory):
    root = tmp_path_factory.mktemp("transitive")
    pool = root / "pool.npz"
    _write_pool(pool)
    params = _params(str(pool))
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        for stage in (prepare, validate, pretrain, similarity, select, adapt):
            stage.run(params, root)
    return root, params, pool


def test_prepare_keeps_no_label_of_the_pool_and_the_pool_reads_back_unlabelled(chain_project):
    root, _, _ = chain_project
    files = sorted(p.name for p in (root / PREPARED_INTERMEDIATE).iterdir())
    assert files == ["00.npz", "manifest.json"]
    with np.load(root / PREPARED_INTERMEDIATE / "00.npz") as stored:
        assert sorted(stored.files) == ["index", "row_hash"]
    pools = read_pools(root)
    (name,) = pools
    assert name.startswith("npz") and len(pools[name]) == 200 and (pools[name].y == -1).all()


def test_similarity_measures_the_chain_and_select_explains_its_choice(chain_project):
    root, _, _ = chain_project
    chain = json.loads((root / SIMILARITY).read_text())["transitive"]
    (name,) = chain["intermediates"]
    assert name.startswith("npz") and set(chain["mmd"]) == {"source", name, "target"}
    assert chain["mmd"]["source"]["target"] > 0
    choice = json.loads((root / SELECTION).read_text())["transitive"]
    assert choice["use"] and choice["chain"] == [name] and choice["hop_method"] == "self-training"
    assert "force" in choice["reason"] and choice["hop_params"] == {"drop_fraction": 0.1, "min_confidence": 0.0}


def test_each_hop_registers_a_version_and_the_chain_is_in_the_lineage(chain_project):
    root, _, _ = chain_project
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}", f"sqlite:///{root / 'mlflow.db'}")
    (hop,) = client.search_model_versions("name = 'transferlab-hop'")
    (adapted,) = client.search_model_versions("name = 'transferlab-adapted'")
    (source,) = client.search_model_versions("name = 'transferlab-source'")
    assert hop.tags["transferlab.chain.parent"] == f"transferlab-source/{source.version}"
    assert hop.tags["transferlab.chain.hop"] == "1/2" and hop.tags["transferlab.chain.domain"].startswith("npz")
    assert adapted.tags["transferlab.chain.parent"] == f"transferlab-hop/{hop.version}"
    assert adapted.tags["transferlab.chain"] == (f"transferlab-source/{source.version} > transferlab-hop/{hop.version}"
                                                 " > adapted (target)")
    # Both hops are nested runs of adapt's stage run; the first one's is where its version came from.
    stage = client.get_run(adapted.run_id)
    hops = client.search_runs([stage.info.experiment_id],
                              filter_string=f"tags.`mlflow.parentRunId` = '{stage.info.run_id}'")
    assert sorted(r.data.tags["transferlab.chain.hop"] for r in hops) == ["1/2", "2/2"]
    assert hop.run_id in {r.info.run_id for r in hops}
    manifest = json.loads((root / ADAPTED_MODEL / "manifest.json").read_text())
    assert manifest["transitive"]["chain"] == [hop.tags["transferlab.chain.domain"]]


def test_garbage_labels_in_the_intermediate_data_change_nothing(chain_project, monkeypatch):
    root, params, pool = chain_project
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = hashlib.sha256((root / ADAPTED_MODEL / "model.safetensors").read_bytes()).hexdigest()
    _write_pool(pool, labels_seed=7)  # same images, labels replaced by noise
    adapt.run(params, root)
    after = hashlib.sha256((root / ADAPTED_MODEL / "model.safetensors").read_bytes()).hexdigest()
    assert after == before


def test_a_failed_adapt_abandons_the_hop_versions_it_registered(chain_project, monkeypatch):
    root, params, _ = chain_project
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}", f"sqlite:///{root / 'mlflow.db'}")

    def fail(*args, **kwargs):
        raise RuntimeError("adapted model could not be saved")

    monkeypatch.setattr(adapt, "_save_seeds", fail)  # after every hop ran and registered
    with pytest.raises(RuntimeError, match="could not be saved"):
        adapt.run(params, root)
    newest = max(client.search_model_versions("name = 'transferlab-hop'"), key=lambda v: int(v.version))
    assert newest.tags.get("transferlab.abandoned") == "true"
    older = [v for v in client.search_model_versions("name = 'transferlab-hop'") if v.version != newest.version]
    assert all("transferlab.abandoned" not in v.tags for v in older)
