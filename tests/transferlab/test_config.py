from pathlib import Path

import pytest

from transferlab.config import PipelineParams, load_params, parse_params
from transferlab.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_params_parse_and_match_defaults_for_the_default_pair():
    params = load_params(ROOT / "params.yaml")
    assert params.data.source.name == "mnist5k"
    assert params.data.target.name == "uci-digits"
    assert params.data.target_labels_per_class == 0
    assert isinstance(params, PipelineParams)


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"unknown key 'data.taget'"):
        parse_params({"data": {"taget": {"name": "usps"}}})


def test_bad_value_is_named():
    with pytest.raises(ConfigError, match=r"data.target_labels_per_class"):
        parse_params({"data": {"target_labels_per_class": -1}})


def test_unknown_method_is_refused():
    with pytest.raises(ConfigError, match="nope"):
        parse_params({"select": {"force_method": "nope"}})


@pytest.mark.parametrize("select, message", [
    ({"candidates": ["dann", "ensemble"]}, "select.candidates: 'ensemble' is not a candidate of its own"),
    ({"unsupervised_method": "ensemble"}, "select.unsupervised_method: 'ensemble'"),
    ({"force_method": "ensemble"}, r"adapt\.methods\.ensemble\.members: Field required"),
    ({"ensemble": "sometimes"}, "select.ensemble"),
])
def test_the_ensemble_is_built_from_finalists_or_from_its_members_never_from_nothing(select, message):
    with pytest.raises(ConfigError, match=message):
        parse_params({"select": select})
    members = [{"method": "dann"}, {"method": "mcc"}]
    forced = parse_params({"select": {"force_method": "ensemble"}, "adapt": {"methods": {"ensemble": {"members": members}}}})
    assert forced.select.force_method == "ensemble"


@pytest.mark.parametrize("config, key", [({"bnm": -1}, "adapt.methods.cdan.bnm"),
                                         ({"foo": 1}, "adapt.methods.cdan.foo")])
def test_a_method_hyperparameter_is_checked_with_the_params_even_if_the_method_never_runs(config, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_params({"adapt": {"methods": {"cdan": config}}})


def test_overrides_use_dotted_keys(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    params = load_params(path, {"data.target_labels_per_class": 5, "seed": 3})
    assert params.data.target_labels_per_class == 5 and params.seed == 3


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_params(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)


@pytest.mark.parametrize("raw, message", [
    ({"seed": 2**70}, "seed: Input should be less than or equal to 2147483647"),
    ({"adapt": {"seeds": [0, 2**40]}}, "adapt.seeds.1: Input should be less than or equal to 2147483647"),
    ({"data": {"target": {"name": "uci-digits", "shifts": [{"name": "rotate", "seed": -1}]}}},
     "data.target.shifts.0.seed: Input should be greater than or equal to 0"),
    ({"mlflow": {"experiment": ""}}, "mlflow.experiment: String should have at least 1 character"),
    ([1, 2], "params.yaml must be a mapping of sections"),
])
def test_values_that_used_to_fail_late_are_refused_by_key(raw, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_params(raw, "params.yaml")


TWO_SOURCES = [{"name": "mnist5k"}, {"name": "mnist5k", "shifts": [{"name": "invert", "severity": 1.0}]}]


def test_a_candidate_source_may_be_a_model_without_data():
    from transferlab.config import SourceModelCandidate

    params = parse_params({"data": {"sources": [TWO_SOURCES[0], {"model": {"kind": "folder", "path": "m"},
                                                                  "name": "given"}]}})
    given = params.data.sources[1]
    assert isinstance(given, SourceModelCandidate) and given.name == "given" and given.model.path == "m"
    assert [s.name for s in params.data.candidate_sources()] == ["mnist5k"]  # the datasets only
    again = parse_params(params.model_dump(mode="json"))  # what params.yaml round-trips to
    assert again.data.sources == params.data.sources


def test_several_sources_replace_the_single_source_and_the_default_stays_single():
    params = parse_params({"data": {"sources": TWO_SOURCES}})
    assert params.data.source is None
    assert [len(s.shifts) for s in params.data.candidate_sources()] == [0, 1]
    assert parse_params({"data": {"source": None, "sources": TWO_SOURCES}}).data.sources == params.data.sources
    default = parse_params({})
    assert default.data.sources is None and [s.name for s in default.data.candidate_sources()] == ["mnist5k"]


@pytest.mark.parametrize("raw, message", [
    ({"data": {"source": {"name": "usps"}, "sources": TWO_SOURCES}},
     r"^params: data: data.source and data.sources are both set: keep one"),
    ({"data": {"sources": TWO_SOURCES[:1]}}, r"^params: data.sources: List should have at least 2 items"),
    ({"data": {"sources": [TWO_SOURCES[0], TWO_SOURCES[0]]}}, r"data.sources\[1\] repeats data.sources\[0\]"),
    ({"data": {"sources": [TWO_SOURCES[0], {"name": "usps", "colour": 1}]}}, r"unknown key 'data.sources.1.colour'"),
    ({"data": {"sources": TWO_SOURCES}, "model": {"pretrained": {"kind": "folder", "path": "m"}}},
     r"data.sources and model.pretrained are both set: list the given model among the candidates"),
    ({"data": {"sources": [TWO_SOURCES[0], {"model": {"kind": "folder"}}]}},
     r"^params: data.sources.1.model: kind 'folder' needs 'path'$"),
    ({"data": {"sources": [TWO_SOURCES[0], {"model": {"kind": "folder", "path": "m"}, "nam": "x"}]}},
     r"^params: unknown key 'data.sources.1.nam'$"),
    ({"data": {"sources": [TWO_SOURCES[0], {"nme": "usps"}]}}, r"^params: data.sources.1.name: Field required$"),
])
def test_several_sources_errors_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_params(raw)
