import numpy as np
import pytest
import torch

from transferlab.ensemble import (
    EnsembleClassifier,
    committee_choice,
    committee_top_picks,
)
from transferlab.errors import ConfigError
from transferlab.models import ModelSpec, build_model


def _np_softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_ensemble_predictions_are_the_mean_of_its_members():
    torch.manual_seed(0)
    spec = ModelSpec(arch="mlp", input_dim=5, num_classes=3, hidden=8)
    members = [build_model(spec, seed=s).eval() for s in range(3)]
    x = torch.randn(7, 5)
    ens = EnsembleClassifier(members).eval()
    with torch.no_grad():
        mean = np.mean([_np_softmax(m(x).double().numpy()) for m in members], axis=0)
        got = torch.softmax(ens(x).double(), 1).numpy()
        feats = ens.features(x).numpy()
        second = _np_softmax(members[1](x).double().numpy())
    np.testing.assert_allclose(got, mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(got.argmax(1), mean.argmax(1))
    np.testing.assert_allclose(feats[:, 3:6], second, rtol=1e-5, atol=1e-7)
    assert feats.shape == (7, 3 * 3)
    with pytest.raises(ConfigError):
        EnsembleClassifier([])


def test_committee_choice_ensembles_only_when_the_validators_disagree():
    agree = committee_choice({"dev": "dann", "im": "dann"})
    assert not agree.ensemble and agree.finalists == ("dann",) and "agree" in agree.reason
    split = committee_choice({"dev": "dann", "im": "cdan", "entropy": "dann"})
    assert split.ensemble and split.finalists == ("dann", "cdan")
    assert "disagree" in split.reason and "DEV → dann" in split.reason


def test_committee_top_picks_take_each_validators_best_candidate_first_on_ties():
    scores = {"dann": {"dev": -1.0, "im": 0.5, "entropy": -0.2},
              "cdan": {"dev": -0.5, "im": 0.5, "entropy": -0.3},
              "shot": {"dev": -2.0, "im": 0.1}}
    assert committee_top_picks(scores) == {"dev": "cdan", "im": "dann"}  # entropy: not every candidate has it


# The ensemble as a method the pipeline trains and saves.

from synthetic_domains import blob_data, blob_test, mlp  # noqa: E402

from transferlab.errors import DataError  # noqa: E402
from transferlab.methods import applicable_methods, get_method  # noqa: E402
from transferlab.models import import_folder, load_model, save_model  # noqa: E402
from transferlab.training import TrainSettings  # noqa: E402

ENS_SETTINGS = TrainSettings(epochs=2, batch_size=32, lr=1e-2, seed=3)
MEMBERS = [{"method": "dann", "settings": {"trade_off": 0.3}}, {"method": "source-only"}]


def test_the_ensemble_method_trains_each_member_as_its_own_method_would_and_averages_them():
    source, data, x = mlp(), blob_data(labels_per_class=0), torch.from_numpy(blob_test().x)
    logged = []
    res = get_method("ensemble")().fit(source, data, {"members": MEMBERS}, ENS_SETTINGS,
                                       log=lambda e, m: logged.append(m))
    alone = [get_method(m["method"])().fit(source, data, m.get("settings"), ENS_SETTINGS).model for m in MEMBERS]
    with torch.no_grad():
        mean = torch.stack([torch.softmax(m(x), 1) for m in alone]).mean(0)
        torch.testing.assert_close(torch.softmax(res.model(x), 1), mean)
    assert "dann" in res.checkpoint_criterion and "source-only" in res.checkpoint_criterion
    assert any(k.startswith("1.dann.") for m in logged for k in m)  # each member's metrics, under its prefix
    assert res.history and all("epoch" in h for h in res.history)


def test_an_ensemble_saves_and_loads_as_one_model_folder_and_is_refused_as_a_source(tmp_path):
    ens = EnsembleClassifier([mlp(seed=0), mlp(seed=1)]).eval()
    save_model(ens, tmp_path / "m", extra={"method": "ensemble"})
    back = load_model(tmp_path / "m")
    x = torch.from_numpy(blob_test().x)
    assert isinstance(back, EnsembleClassifier) and len(back.members) == 2
    with torch.no_grad():
        torch.testing.assert_close(back(x), ens(x), rtol=0, atol=0)
    assert back.classes == ens.classes == ("0", "1", "2")
    with pytest.raises(DataError, match="ensemble of 2 networks"):
        import_folder(tmp_path / "m")
    meta = tmp_path / "m" / "model.json"
    meta.write_text(meta.read_text().replace('"members": [', '"members": [{"arch": "mlp"}, '))
    with pytest.raises(DataError, match="unreadable or corrupt"):
        load_model(tmp_path / "m")


@pytest.mark.parametrize("members, message", [
    ([{"method": "dann"}], "at least 2"),
    ([{"method": "dann"}, {"method": "nope"}], "unknown method 'nope'"),
    ([{"method": "dann", "settings": {"trade_off": -1}}, {"method": "mcc"}], "member 1 \\(dann\\)"),
    ([{"method": "dann"}, {"method": "ensemble", "settings": {"members": MEMBERS}}], "itself an ensemble"),
])
def test_an_ensemble_config_names_what_is_wrong_with_its_members(members, message):
    with pytest.raises(ConfigError, match=message):
        get_method("ensemble").make_config({"members": members}, where="adapt.methods.ensemble")


def test_the_ensemble_is_never_a_candidate_of_its_own():
    assert "ensemble" not in applicable_methods(blob_data(labels_per_class=5))
    members = [EnsembleClassifier([mlp()])]
    with pytest.raises(ConfigError, match="same classes"):
        EnsembleClassifier([*members, build_model(ModelSpec(arch="mlp", input_dim=6, hidden=8, num_classes=4))])


def test_an_ensemble_trains_across_processes_only_if_every_member_does():
    ens = get_method("ensemble")
    able = [m.name for m in (get_method(n) for n in ("dann", "finetune", "mcc", "adamatch")) if m.supports_distributed]
    unable = [n for n in ("dann", "finetune", "mcc", "adamatch", "shot") if not get_method(n).supports_distributed]
    assert able and unable
    assert ens.distributed_problem({"members": [{"method": able[0]}, {"method": "source-only"}]}) is None
    problem = ens.distributed_problem({"members": [{"method": able[0]}, {"method": unable[0]}]})
    assert problem.startswith(f"ensemble member '{unable[0]}': method '{unable[0]}' does not train across processes")
