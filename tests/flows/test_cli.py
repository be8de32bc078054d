import pytest

from flows.cli import main


def test_help_explains_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "serve", "stage", "datasets", "methods", "similarity"):
        assert command in out


def test_datasets_lists_the_registry(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "mnist5k" in out and "5000" in out and "uci-digits" in out and "1797" in out


def test_methods_lists_every_method_with_its_needs(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in ("linear-probe", "finetune", "layer-transfer", "l2-sp", "distill", "progressive", "multitask",
                 "mixed", "dann", "dan", "deep-coral", "cdan", "instance-weighting", "source-only", "target-only"):
        assert f"\n{name} " in out
    assert "target labels" in out


def test_similarity_without_the_pipeline(capsys):
    assert main(["similarity", "--source", "mnist5k", "--target", "uci-digits", "--max-samples", "120",
                 "--permutations", "20", "--image-size", "16"]) == 0
    out = capsys.readouterr().out
    assert "MMD²" in out and "p-value" in out and "proxy A-distance" in out and "CI of MMD²" in out


def test_user_errors_are_one_line_and_non_zero(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["stage", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown stage 'nope'")
    assert main(["similarity", "--source", "nope", "--target", "uci-digits"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err
