"""The selection benchmark's oracle cache: a stored full run comes back exactly, keyed by everything that shapes it."""

import numpy as np

from benchmarks import oracle_cache
from benchmarks.oracle_cache import OracleCache


def _fit(calls, probs, scores=None):
    def fit():
        calls.append(1)
        return probs, 2.5, scores
    return fit


def test_a_stored_run_comes_back_without_fitting_again(tmp_path):
    calls, probs = [], np.random.default_rng(0).random((5, 3)).astype(np.float32)
    key = {"pair": "a→b", "labels": 0, "seed": 1}
    first = OracleCache(tmp_path, key).get("dann", None, 1, _fit(calls, probs, {"im": 0.25}))
    again = OracleCache(tmp_path, key)
    p, seconds, scores = again.get("dann", None, 1, _fit(calls, probs * 0))
    assert len(calls) == 1 and again.hits == 1
    assert np.array_equal(p, first[0]) and seconds == 2.5 and scores == {"im": 0.25}
    assert not list(tmp_path.glob("*.tmp*"))  # written whole, then renamed


def test_another_method_seed_config_or_scenario_fits_again(tmp_path):
    calls, probs = [], np.ones((2, 2))
    cache = OracleCache(tmp_path, {"pair": "a→b", "seed": 1})
    cache.get("dann", None, 1, _fit(calls, probs))
    cache.get("dann", None, 1001, _fit(calls, probs))
    cache.get("cdan", None, 1, _fit(calls, probs))
    cache.get("dann", {"trade_off": 0.3}, 1, _fit(calls, probs))
    OracleCache(tmp_path, {"pair": "a→c", "seed": 1}).get("dann", None, 1, _fit(calls, probs))
    assert len(calls) == 5 and cache.hits == 0


def test_changed_training_code_misses_and_changed_validator_code_drops_only_the_scores(tmp_path, monkeypatch):
    calls, probs = [], np.ones((2, 2))
    OracleCache(tmp_path, {"seed": 1}).get("dann", None, 1, _fit(calls, probs, {"im": 1.0}))
    monkeypatch.setattr(oracle_cache, "validators_code_hash", lambda: "other")
    _, _, scores = OracleCache(tmp_path, {"seed": 1}).get("dann", None, 1, _fit(calls, probs))
    assert len(calls) == 1 and scores is None
    monkeypatch.setattr(oracle_cache, "training_code_hash", lambda: "changed")
    OracleCache(tmp_path, {"seed": 1}).get("dann", None, 1, _fit(calls, probs))
    assert len(calls) == 2


def test_without_a_folder_every_call_fits(tmp_path):
    calls = []
    cache = OracleCache(None, {"seed": 1})
    cache.get("dann", None, 1, _fit(calls, np.ones(1)))
    cache.get("dann", None, 1, _fit(calls, np.ones(1)))
    assert len(calls) == 2


def test_the_training_hash_leaves_out_the_ranking_code_only():
    files = {p.relative_to(oracle_cache.ROOT).as_posix() for p in (oracle_cache.ROOT / "transferlab").rglob("*.py")}
    assert "transferlab/selection/trials.py" in files and "transferlab/methods/dann.py" in files
    assert all(f.startswith(oracle_cache._RANKING) for f in ["transferlab/selection/trials.py",
                                                              "transferlab/validators.py"])
    assert not "transferlab/methods/dann.py".startswith(oracle_cache._RANKING)
