import logging
import json

import numpy as np
import pytest
import torch

from transferlab.data.types import Domain
from transferlab.errors import ConfigError
from transferlab.methods import AdaptationData, get_method
from transferlab.models import ModelSpec, build_model
from transferlab.selection import (
    TrialResult,
    SelectionConfig,
    build_arms,
    mean_rank_scores,
    plan_scoring,
    round_fidelity,
    select_by_trials,
    successive_halving_schedule,
)
from transferlab.selection.trials import trial_validators
from transferlab.training import TrainSettings, train_classifier

C, D = 3, 8
CLASSES = ("a", "b", "c")
MEANS = np.random.default_rng(0).normal(0, 3, (C, D))
SETTINGS = TrainSettings(epochs=4, batch_size=32, lr=1e-2, max_steps_per_epoch=8, min_steps_per_epoch=4, seed=0)


def blobs(name, n, seed, shift=0.0, relabel=None):
    r = np.random.default_rng(seed)
    y = np.repeat(np.arange(C), n // C)
    x = (MEANS[y] + r.normal(0, 1, (len(y), D)) + shift).astype(np.float32)
    if relabel is not None:
        y = np.asarray(relabel)[y]
    return Domain(name, x, y, CLASSES)


@pytest.fixture(scope="module")
def source():
    torch.set_num_threads(1)
    train, val = blobs("src-train", 300, 1), blobs("src-val", 90, 2)
    model = build_model(ModelSpec(arch="mlp", input_dim=D, num_classes=C, hidden=16), seed=0)
    trained = train_classifier(model, train, val, SETTINGS.model_copy(update={"epochs": 3})).model
    return trained, train, val


def test_schedule_halves_arms_and_continues_survivors_to_growing_fidelity():
    # Survivors are continued: 8 x 1.5 + 4 x (3 - 1.5) + 2 x (6 - 3) = 24 epochs.
    assert successive_halving_schedule(8, 24, 2, 10) == [(8, 1.5), (4, 3), (2, 6)]
    assert successive_halving_schedule(1, 24, 2, 10) == [(1, 10)]
    # A cross-validated final round trains two more folds per finalist from the start:
    # 7c + 4c + 2 x (2c + 2 x 4c) = 31c.
    cv = successive_halving_schedule(7, 31, 2, 10, final_folds=3)
    assert [n for n, _ in cv] == [7, 4, 2] and [c for _, c in cv] == pytest.approx([1, 2, 4])
    # A full run caps the fidelity; the budget is then not all spent.
    assert successive_halving_schedule(5, 12, 2, 3)[-1] == (2, 3)
    for arms in range(1, 20):
        for folds in (1, 3):
            schedule = successive_halving_schedule(arms, 6, 2, 10, final_folds=folds)
            spent, before = 0.0, 0.0
            for r, (n, c) in enumerate(schedule):
                spent += n * (c - before) + (folds - 1) * n * c * (r == len(schedule) - 1)
                before = c
            assert spent <= 6 + 1e-9
            assert all(b[1] >= a[1] for a, b in zip(schedule, schedule[1:]))


def test_round_fidelity_leaves_an_untrained_arms_share_to_the_others():
    # Three arms, one of which (source-only) trains nothing, in a last round: 2c = 3.
    assert round_fidelity(3, [[0.0], [0.0], []], 1, 2, 1, 10) == pytest.approx(1.5)
    # An arm that has trained 1 epoch already pays only for the rest.
    assert round_fidelity(3, [[1.0], [1.0]], 1, 2, 1, 10) == pytest.approx(2.5)


def test_a_budget_smaller_than_one_epoch_per_trial_is_kept(source):
    model, train, val = source
    data = AdaptationData(train, val, None, blobs("t-unl", 90, 4, 1.0))
    cfg = SelectionConfig(mode="trial", candidates=["source-only", "dann", "deep-coral", "dan"], budget_epochs=2,
                          search={"dann": {"trade_off": [0.3, 1.0]}})
    sel = select_by_trials(model, data, SETTINGS, cfg)
    spent = [t["epochs_trained"] for t in sel.trials if t["method"] != "source-only"]
    assert all(0 < e < 1 for e in spent)  # every training trial ran a fraction of an epoch
    # source-only trains nothing, so the sweep is 3 trained methods x 4 epochs and it takes no share.
    assert sel.cost["full_sweep_epochs"] == 12
    assert sel.cost["cost_epochs"] > 1
    assert sel.cost["cost_epochs"] <= 2.000001
    assert sel.cost["fraction_of_full_sweep"] <= 2.000001 / 12
    share = select_by_trials(model, data, SETTINGS, cfg.model_copy(update={"budget_fraction": 0.1}))
    assert 0 < share.cost["fraction_of_full_sweep"] <= 0.1 + 1e-9  # 10 % of 3 methods x 4 epochs = 1.2 epochs
    assert any("10% of a full sweep" in r for r in share.reasons)


def test_arms_search_a_hyperparameter_inside_the_same_list():
    arms = build_arms(["source-only", "dann"], SelectionConfig(search={"dann": {"trade_off": [0.1, 1.0]}}))
    assert [a.label for a in arms] == ["source-only", "dann(trade_off=0.1)", "dann(trade_off=1.0)"]


def test_mean_rank_is_order_free_and_shares_ties():
    rows = [{"im": 1, "snd": 1, "dev": 3}, {"im": 2, "snd": 2, "dev": 1}, {"im": 2, "snd": 0, "dev": 2}]
    assert mean_rank_scores(rows) == pytest.approx([(0 + 1 + 2) / 6, (1.5 + 2 + 0) / 6, (1.5 + 0 + 1) / 6])
    assert mean_rank_scores(rows[::-1]) == pytest.approx(mean_rank_scores(rows)[::-1])


def test_scoring_plan_follows_the_label_budget():
    cfg = SelectionConfig(cv_folds=3, holdout_min_per_class=20)
    assert plan_scoring(None, cfg).kind == "validators"
    assert plan_scoring(blobs("t", 3, 0), cfg).kind == "validators"  # one label per class
    cv = plan_scoring(blobs("t", 15, 0), cfg)
    assert cv.kind == "cv" and len(cv.folds) == 3
    held = np.concatenate([te for _, te in cv.folds])
    assert sorted(held.tolist()) == list(range(15))  # every labelled sample is held out exactly once
    assert plan_scoring(blobs("t", 2 * C, 0), cfg).folds[0][1].size == 2 * C // 2  # K shrinks to 2
    hold = plan_scoring(blobs("t", 60, 0), cfg)
    assert hold.kind == "holdout" and len(hold.folds) == 1 and hold.folds[0][1].size == 20


def test_trials_pick_the_clearly_best_method_with_few_target_labels(source):
    # The target renames the classes: the source model is wrong on it, only a method that uses
    # target labels can fix that. finetune must win, scored on held-out labelled target only.
    model, train, val = source
    perm = [1, 2, 0]
    data = AdaptationData(train, val, blobs("t-lab", 30, 3, 0.3, perm), blobs("t-unl", 90, 4, 0.3, perm))
    calls, seen, final = [], [], []

    def map_fn(fn, jobs):
        calls.append(len(jobs))
        final[:] = jobs
        return [fn(j) for j in jobs]

    cfg = SelectionConfig(mode="trial", candidates=["source-only", "dann", "finetune"], budget_epochs=12,
                          search={"dann": {"trade_off": [1.0]}})
    sel = select_by_trials(model, data, SETTINGS, cfg, map_fn=map_fn, on_trial=seen.append)
    assert sel.method == "finetune" and sel.mode == "trial"
    assert "cross-validated" in sel.decided_by
    assert calls == [3, 2] and len(seen) == 5 == len(sel.trials)
    acc = {t["method"]: t["scores"]["accuracy"] for t in sel.trials if t["round"] == 1}
    assert acc["finetune"] > acc["source-only"] + 0.5
    # Pruning rounds score on one fold; only the final round pays for all three.
    assert {t["round"]: t["fits"] for t in sel.trials if t["method"] == "finetune"} == {1: 1, 2: 3}
    assert any("final round cross-validates" in r for r in sel.reasons)
    # The final round continues fold 1's run and trains folds 2 and 3 from the start.
    assert {j.arm.method: set(j.resume) for j in final}["finetune"] == {0}
    assert 0 < sel.cost["cost_epochs"] <= 12 and sel.cost["full_sweep_epochs"] == 8  # source-only: no epochs
    again = select_by_trials(model, data, SETTINGS, cfg)
    assert [t["scores"] for t in again.trials] == [t["scores"] for t in sel.trials]  # deterministic


def test_label_free_trials_report_the_validator_and_skip_refusing_methods(source, caplog):
    caplog.set_level(logging.INFO, logger="transferlab")
    model, train, val = source
    data = AdaptationData(train, val, None, blobs("t-unl", 90, 4, 1.0))
    cfg = SelectionConfig(mode="trial", candidates=["target-only", "source-only", "dann"], budget_epochs=6,
                          validator="im", search={})
    sel = select_by_trials(model, data, SETTINGS, cfg)
    assert "label-free validator IM" in sel.decided_by
    by = {c["method"]: c for c in sel.candidates}
    assert by["target-only"]["eligible"] is False and "refused" in by["target-only"]["why"]
    assert sel.method in {"source-only", "dann"}
    winner = next(t for t in sel.trials if t["method"] == sel.method and t["round"] == max(x["round"] for x in sel.trials))
    # What the trials report (IM, SND, DEV), the committee's entropy and the ranker (IM); not the costlier rest.
    assert {"im", "snd", "dev", "entropy"} <= set(winner["scores"]) and not {"mixval", "reverse"} & set(winner["scores"])
    assert winner["score"] == winner["scores"]["im"]
    # The EnsV committee looked at the final round: agreement is a reason, disagreement a warning.
    final = [t for t in sel.trials if t["round"] == winner["round"] and t["status"] == "ok"]
    committee = sel.evidence["committee"]
    picks = {max(final, key=lambda t: t["scores"][v])["method"] for v in ("dev", "im", "entropy")}
    assert committee["ensemble"] == (len(picks) > 1) and set(committee["finalists"]) == picks
    # Disagreement is a warning (weak evidence), agreement a reason.
    assert any(committee["reason"] in text for text in (sel.warnings if committee["ensemble"] else sel.reasons))
    assert sel.score_meaning.startswith("trial score: the label-free validator IM (information maximisation")
    # Each trial says how it did as it ends, each round as it starts (the trials ran minutes in silence).
    lines = [r.getMessage() for r in caplog.records if r.name == "transferlab.progress"]
    assert lines[0] == f"round 1 of {max(t['round'] for t in sel.trials)}: 3 trials to " \
                       f"{sel.trials[0]['epochs']:.3g} epochs each"
    # Numbered in the order they were handed over: dann first, the refusing and the untrained ones after it.
    assert any(line.startswith("[trial 2/3] target-only (round 1, ") and "refused" in line for line in lines)
    assert any(line.startswith("[trial 1/3] dann (round 1, ") and ": IM " in line for line in lines)
    assert "[trial 1/3] dann: epoch 2/2 (stops at 1.5 epochs), loss " in "\n".join(lines)
    assert json.loads(json.dumps(sel.to_dict()))["method"] == sel.method


def test_rule_shortlist_and_unknown_candidates(source):
    model, train, val = source
    data = AdaptationData(train, val, None, blobs("t-unl", 60, 4, 1.0))
    report = {"mmd": {"p_value": 0.001, "normalised": 0.3}, "a_distance": 1.0}
    sel = select_by_trials(model, data, SETTINGS, SelectionConfig(budget_epochs=4, search={}), report=report)
    assert any("rule mode alone would pick 'dann'" in r for r in sel.reasons)
    assert "label-free validator DEV" in sel.decided_by  # the default validator
    assert 0 < sel.cost["cost_epochs"] <= 4
    assert {c["method"] for c in sel.candidates} <= {"dann", "cdan", "dan", "deep-coral"}
    # A significant shift and no labels: the finished source model is not weighed against short trials.
    assert any("source-only is not tried" in r for r in sel.reasons)
    no_shift = {"mmd": {"p_value": 0.5, "normalised": 0.01}, "a_distance": 0.1}
    kept = select_by_trials(model, data, SETTINGS, SelectionConfig(budget_epochs=4, search={}), report=no_shift)
    assert "source-only" in {c["method"] for c in kept.candidates}
    assert not any("source-only is not tried" in r for r in kept.reasons)
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        select_by_trials(model, data, SETTINGS, SelectionConfig(candidates=["nope"]))


def test_labelled_trials_also_try_layer_transfer_and_unsupervised_adaptation(source):
    model, train, val = source
    labelled, pool = blobs("t-lab", 30, 3, 0.3), blobs("t-unl", 90, 4, 0.3)
    # Plenty of labels (10 per class counts as plenty here) and a moderate shift: the rule
    # shortlists l2-sp, finetune and layer-transfer; trials add dann and cdan and search layer-transfer's k.
    report = {"mmd": {"p_value": 0.001, "normalised": 0.3}, "a_distance": 1.0}
    cfg = SelectionConfig(budget_fraction=0.4, search={}, plenty_labels_per_class=5)
    sel = select_by_trials(model, AdaptationData(train, val, labelled, pool), SETTINGS, cfg, report=report)
    tried = {(c["method"], tuple(sorted(c["settings"].items()))) for c in sel.candidates}
    assert {("layer-transfer", (("k", 1),)), ("dann", ()), ("cdan", ()), ("source-only", ())} <= tried
    assert "Trial mode also tries dann, cdan, and source-only as the baseline." in sel.reasons
    assert "Layer transfer is tried with k in [1] frozen blocks." in sel.reasons
    assert sel.cost["fraction_of_full_sweep"] <= 0.4 + 1e-9
    # The budget is a share of the brute-force sweep: every method that can run here (all 18 that
    # train, with labels and an unlabelled pool; tent not: the mlp has no batch norm), not only the trial candidates.
    assert sel.cost["full_sweep_epochs"] == 18 * SETTINGS.epochs
    # Without an unlabelled target pool there is nothing for unsupervised adaptation to use.
    no_pool = select_by_trials(model, AdaptationData(train, val, labelled, None), SETTINGS, cfg, report=report)
    assert {"dann", "cdan"}.isdisjoint(c["method"] for c in no_pool.candidates)
    assert "layer-transfer" in {c["method"] for c in no_pool.candidates}
    assert no_pool.cost["full_sweep_epochs"] == 9 * SETTINGS.epochs  # the seven that need a pool cannot run


def test_survivors_are_continued_not_restarted(source):
    model, train, val = source
    data = AdaptationData(train, val, None, blobs("t-unl", 90, 4, 1.0))
    jobs_seen = []

    def map_fn(fn, jobs):
        jobs_seen.append(jobs)
        return [fn(j) for j in jobs]

    cfg = SelectionConfig(mode="trial", candidates=["dann", "deep-coral", "dan"], budget_epochs=6, search={})
    sel = select_by_trials(model, data, SETTINGS, cfg, map_fn=map_fn)
    first, final = jobs_seen[0], jobs_seen[-1]
    assert all(not j.resume for j in first)
    assert len(final) == 2 and all(set(j.resume) == {0} for j in final)  # fold 0's saved run
    assert final[0].epochs > first[0].epochs
    # The winner trained each round only the increment, and reached the final fidelity in total.
    winner = [t for t in sel.trials if t["method"] == sel.method]
    assert sum(t["epochs_trained"] for t in winner) == pytest.approx(winner[-1]["epochs"], abs=1 / 8)
    assert winner[-1]["epochs_trained"] < winner[-1]["epochs"]
    assert sel.cost["cost_epochs"] <= 6 + 1e-9
    assert all(j.schedule_epochs == first[0].schedule_epochs for jobs in jobs_seen for j in jobs)
    # Each candidate says where it fell: one arm of three in the first round, one in the final.
    whys = sorted(c["why"].split(" (")[0] for c in sel.candidates)
    assert whys == ["eliminated in round 1", "eliminated in round 2", "winner after round 2"]


def _crafted_map(crafted):
    """A map function that scores each trial with crafted (accuracy, NLL), so only ranking is tested."""
    def map_fn(fn, jobs):
        return [TrialResult(j.trial_id, j.arm.method, {}, j.round, j.epochs, 0, "ok",
                            scores={"accuracy": crafted[j.arm.method][0], "nll": crafted[j.arm.method][1]})
                for j in jobs]
    return map_fn


def _select_crafted(source, crafted, **config):
    """Trial selection among source-only, finetune and dann with crafted (accuracy, NLL) scores."""
    model, train, val = source
    data = AdaptationData(train, val, blobs("t-lab", 30, 3, 0.3), blobs("t-unl", 90, 4, 0.3))
    cfg = SelectionConfig(mode="trial", candidates=["source-only", "finetune", "dann"], budget_epochs=4, search={},
                          **config)
    return select_by_trials(model, data, SETTINGS, cfg, map_fn=_crafted_map(crafted))


def test_labelled_trials_rank_by_held_out_nll_and_break_ties_by_accuracy(source):
    crafted = {"source-only": (0.9, 0.9), "finetune": (0.8, 0.4), "dann": (0.7, 0.6)}
    sel = _select_crafted(source, crafted)
    assert sel.method == "finetune"  # the lowest NLL, though not the best accuracy
    assert "negative log-likelihood, 3-fold cross-validated" in sel.decided_by
    assert {c["method"]: c["score"] for c in sel.candidates}["dann"] == pytest.approx(-0.6)
    # The report names that number under the candidates' score column.
    assert sel.score_meaning.startswith("trial score: minus the mean negative log-likelihood of the "
                                        "target-labelled samples held out")
    crafted["dann"] = (0.85, 0.4)  # equal NLL: the higher accuracy wins
    assert _select_crafted(source, crafted).method == "dann"


def test_ranking_by_accuracy_sends_equal_accuracies_to_the_lower_nll(source):
    crafted = {"source-only": (0.8, 0.9), "finetune": (0.8, 0.7), "dann": (0.8, 0.5)}
    sel = _select_crafted(source, crafted, labelled_score="accuracy")
    assert sel.method == "dann" and "target-labelled accuracy" in sel.decided_by
    assert "NLL 0.500" in sel.reasons[-2]
    crafted["dann"] = (0.7, 0.1)  # accuracy still decides first
    assert _select_crafted(source, crafted, labelled_score="accuracy").method == "finetune"


def test_the_untrained_source_model_must_beat_the_best_trained_trial_on_accuracy(source):
    # source-only is as confident as it will ever be; a short trial is not yet. Its lower NLL alone
    # must not win the final round: there it needs the higher held-out accuracy.
    crafted = {"source-only": (0.70, 0.58), "finetune": (0.77, 0.82), "dann": (0.60, 0.90)}
    sel = _select_crafted(source, crafted)
    assert sel.method == "finetune"
    assert any("on held-out accuracy rather than NLL" in r and "70.0% against 77.0%" in r for r in sel.reasons)
    crafted["finetune"] = (0.65, 0.82)  # now the source model is also the more accurate
    assert _select_crafted(source, crafted).method == "source-only"
    # Ranked by accuracy there is nothing to correct.
    acc = _select_crafted(source, crafted, labelled_score="accuracy")
    assert acc.method == "source-only" and not any("rather than NLL" in r for r in acc.reasons)


def test_label_free_trials_compute_the_reported_the_committee_and_the_ranking_validators_only():
    assert trial_validators(SelectionConfig()) == ("im", "snd", "dev", "entropy")
    assert trial_validators(SelectionConfig(validator="mixval")) == ("im", "snd", "dev", "entropy", "mixval")
    assert trial_validators(SelectionConfig(validator="mean-rank")) == ("im", "snd", "dev", "entropy")


def test_the_first_round_estimate_follows_the_steps_and_the_measured_step_cost(source):
    from transferlab.selection.trial_order import prior_cost

    model, train, val = source
    data = AdaptationData(train, val, blobs("t-lab", 30, 3), blobs("t-unl", 90, 4))
    wide = SETTINGS.model_copy(update={"min_steps_per_epoch": 1, "max_steps_per_epoch": None})
    # dann takes one pass over the 300 source samples (10 steps of 32) per epoch, finetune over 30 labels (1 step).
    assert prior_cost("dann", data, wide, 2.0) == pytest.approx(10 * 1.0 * 2)
    assert prior_cost("finetune", data, wide, 2.0) == pytest.approx(1 * get_method("finetune").relative_step_cost * 2)
    assert prior_cost("cdan", data, wide, 2.0) == pytest.approx(10 * get_method("cdan").relative_step_cost * 2)
    assert prior_cost("source-only", data, wide, 2.0) == 0.0


def test_a_continued_trial_is_estimated_from_its_own_seconds_per_epoch():
    from transferlab.selection.trial_order import measured_cost

    assert measured_cost(6.0, 2.0, 3.0) == pytest.approx(9.0)
    assert measured_cost(0.4, 0.0, 3.0) == pytest.approx(0.4)  # trained nothing: its scoring time


def test_longest_first_keeps_ties_in_order_and_results_come_back_in_the_jobs_order():
    from transferlab.selection.trial_order import longest_first, map_in_order

    order = longest_first([1.0, 5.0, 1.0, 3.0])
    assert order == [1, 3, 0, 2]
    handed = []

    def map_fn(fn, jobs):
        handed.extend(jobs)
        return [fn(j) for j in jobs]

    assert map_in_order(map_fn, lambda j: j * 10, ["a", "b", "c", "d"], order) == ["a" * 10, "b" * 10, "c" * 10,
                                                                                    "d" * 10]
    assert handed == ["b", "d", "a", "c"]


def test_rounds_hand_over_the_longest_trial_first_and_the_order_changes_no_result(source):
    model, train, val = source
    data = AdaptationData(train, val, None, blobs("t-unl", 300, 4, 1.0))
    handed = []

    def recording(fn, jobs):
        handed.append([(j.arm.method, j.position) for j in jobs])
        return [fn(j) for j in jobs]

    def reversed_map(fn, jobs):  # another runner's order: the results must not change
        return [fn(j) for j in jobs[::-1]][::-1]

    wide = SETTINGS.model_copy(update={"max_steps_per_epoch": None})
    cfg = SelectionConfig(mode="trial", candidates=["source-only", "dann", "cdan", "deep-coral"], budget_epochs=6,
                          search={})
    sel = select_by_trials(model, data, wide, cfg, map_fn=recording)
    # Round 1 has only the prior: cdan's step costs most, source-only trains nothing.
    assert [m for m, _ in handed[0]] == ["cdan", "dann", "deep-coral", "source-only"]
    assert [p for _, p in handed[0]] == ["1/4", "2/4", "3/4", "4/4"]
    # Round 2 orders the survivors by what their own first trial took per epoch.
    first = {t["method"]: t for t in sel.trials if t["round"] == 1}
    survivors = [m for m, _ in handed[1]]
    rate = {m: first[m]["runtime_s"] / max(first[m]["epochs_trained"], 1e-9) if first[m]["epochs_trained"] > 0
            else -1.0 for m in survivors}
    assert survivors == sorted(survivors, key=lambda m: -rate[m])
    again = select_by_trials(model, data, wide, cfg, map_fn=reversed_map)
    assert [(t["trial_id"], t["scores"]) for t in again.trials] == [(t["trial_id"], t["scores"]) for t in sel.trials]
    assert again.method == sel.method


def _scored(crafted: dict[str, dict[str, float]]):
    """A map_fn that runs the trials, then gives each the label-free scores ``crafted`` names for its method."""
    def map_fn(fn, jobs):
        results = [fn(j) for j in jobs]
        for res in results:
            res.scores = {**res.scores, **crafted[res.method]}
        return results
    return map_fn


# DEV names dann, IM and entropy name source-only: the committee disagrees.
SPLIT = {"dann": {"dev": 0.0, "im": 0.1, "entropy": -1.0}, "source-only": {"dev": -1.0, "im": 0.5, "entropy": -0.5}}


@pytest.mark.parametrize("ensemble", ["on-disagreement", "never"])
def test_disagreeing_validators_choose_the_ensemble_of_the_finalists_unless_told_never(source, ensemble):
    model, train, val = source
    data = AdaptationData(train, val, None, blobs("t-unl", 90, 4, 1.0))
    cfg = SelectionConfig(mode="trial", candidates=["source-only", "dann"], budget_epochs=4,
                          search={"dann": {"trade_off": [0.3]}}, ensemble=ensemble)
    sel = select_by_trials(model, data, SETTINGS, cfg, map_fn=_scored(SPLIT))
    committee = sel.evidence["committee"]
    assert committee["ensemble"] and committee["finalists"] == ["dann(trade_off=0.3)", "source-only"]
    assert committee["ranker_pick"] == {"method": "dann", "settings": {"trade_off": 0.3}}  # DEV ranks by default
    if ensemble == "never":
        assert (sel.method, sel.settings) == ("dann", {"trade_off": 0.3})
        assert any("select.ensemble is 'never'" in w for w in sel.warnings)
        return
    assert sel.method == "ensemble" and not sel.warnings
    # The members in the committee's order, each with the settings its trial ran with.
    assert sel.settings == {"members": [{"method": "dann", "settings": {"trade_off": 0.3}},
                                        {"method": "source-only", "settings": {}}]}
    assert "committee" in sel.decided_by and any(committee["reason"] in r for r in sel.reasons)
    rows = {c["method"]: c for c in sel.candidates}
    assert rows["ensemble"]["eligible"] and "chosen" in rows["ensemble"]["why"]
    assert all("member of the chosen ensemble" in rows[m]["why"] for m in ("dann", "source-only"))
    get_method("ensemble").make_config(sel.settings)  # what adapt will train is a valid ensemble
    # adapt then trains dann in full; the source-only member trains nothing.
    cost = sel.cost
    assert cost["final_training_epochs"] == SETTINGS.epochs
    assert cost["fraction_with_final_training"] == pytest.approx(
        (cost["cost_epochs"] + SETTINGS.epochs) / cost["full_sweep_epochs"])
    assert any(f"{100 * cost['fraction_with_final_training']:.0f}% of the full sweep" in r for r in sel.reasons)


def test_the_cost_with_final_training_counts_every_trained_member():
    from transferlab.selection.trials import _count_final_training

    cost = {"cost_epochs": 2.0, "full_sweep_epochs": 40}
    members = [{"method": "dann", "settings": {}}, {"method": "mcc", "settings": {}},
               {"method": "source-only", "settings": {}}]
    _count_final_training(cost, "ensemble", {"members": members}, 4)
    assert cost["final_training_epochs"] == 8 and cost["fraction_with_final_training"] == pytest.approx(10 / 40)
    _count_final_training(cost, "dann", {"trade_off": 0.3}, 4)
    assert cost["final_training_epochs"] == 4 and cost["fraction_with_final_training"] == pytest.approx(6 / 40)


def test_agreeing_validators_keep_the_single_winner(source):
    model, train, val = source
    data = AdaptationData(train, val, None, blobs("t-unl", 90, 4, 1.0))
    agree = {"dann": {"dev": 0.0, "im": 0.6, "entropy": -0.1}, "source-only": {"dev": -1.0, "im": 0.5, "entropy": -0.5}}
    cfg = SelectionConfig(mode="trial", candidates=["source-only", "dann"], budget_epochs=4, search={})
    sel = select_by_trials(model, data, SETTINGS, cfg, map_fn=_scored(agree))
    assert sel.method == "dann" and not sel.evidence["committee"]["ensemble"]
    assert all(c["method"] != "ensemble" for c in sel.candidates)
