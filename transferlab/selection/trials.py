"""Trial mode: short runs of candidate methods, pruned by successive halving, ranked without test labels.

Successive halving (Jamieson & Talwalkar 2016; Li et al. 2018) over n arms (a method and one
setting of its searched hyperparameter, so hyperparameters compete inside the same budget),
with reduction factor η and a budget of B epochs: R = ⌈log_η n⌉ rounds; round r trains each
surviving arm to a cumulative fidelity of c_r epochs, scores it
(:mod:`transferlab.selection.scoring`) and keeps the best ⌈|S_r| / η⌉. Survivors are
*continued* from where their previous round stopped (:mod:`transferlab.training.continuation`),
so a finalist has trained for the sum of its rounds; c_r grows by η per round and is planned so
that the whole selection spends at most B (:mod:`transferlab.selection.halving`). Every trial's
lr and warm-up schedules run over the final round's planned fidelity, so a pruned trial is the
first stretch of the run a finalist completes.

c_r may be a fraction of an epoch (``TrainSettings.epoch_limit``; at least one optimiser step).
``source-only`` trains nothing, so it takes no share. Under K-fold cross-validation the pruning
rounds train and score one fold; the final round continues that fold and trains the other K − 1
from the start. The reported cost counts the epochs actually trained, partial epochs as their
fraction. The last round's best arm is the selection. Arms that refuse their data (a
``MethodRequirementError``) or fail are ranked last with the reason recorded.

B is ``budget_epochs``, or ``budget_fraction`` of a brute-force sweep: every method that can run
on this data (or every one of ``candidates`` when they are given) trained once in full, the
sweep whose best method the regret of a selection is measured against.

Trials are plain jobs (:class:`TrialJob`) run by the top-level function :func:`run_trial`
through a caller-supplied ``map_fn(fn, jobs) -> results in order`` (the pipeline maps them over
a Prefect task runner; the default is a plain loop). A round hands them over longest first, so
that no long trial starts last on a pool of workers (:mod:`transferlab.selection.trial_order`);
its results are read back in the arms' order. Each finished trial is reported to
``on_trial(result_dict)`` (the pipeline logs it as an MLflow run).
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from transferlab.data.types import Domain
from transferlab import progress
from transferlab.ensemble import COMMITTEE, CommitteeChoice, committee_choice, committee_top_picks
from transferlab.errors import ConfigError, MethodRequirementError
from transferlab.methods import AdaptationData, applicable_methods, get_method
from transferlab.methods.ensemble import Ensemble
from transferlab.selection.config import SelectionConfig
from transferlab.selection.halving import halving_rounds, round_fidelity
from transferlab.selection.trial_order import longest_first, map_in_order, measured_cost, prior_cost
from transferlab.selection.result import Selection, method_label
from transferlab.data.labels import DOMAIN_ADAPTATION, TASK_TRANSFER
from transferlab.selection.candidates import UNSUPERVISED, ineligibility
from transferlab.selection.rules import LAYER_TRANSFER_K, select_by_rules
from transferlab.selection.scoring import ScoringPlan, mean_rank_scores, plan_scoring
from transferlab.training import TrainSettings, predict_logits
from transferlab.training.continuation import Continuation, RunState, continuing
from transferlab.validators import NEEDS_SOURCE, VALIDATORS, label_free_scores

MapFn = Callable[[Callable[[Any], Any], list[Any]], Iterable[Any]]


@dataclass(frozen=True)
class Arm:
    method: str
    settings: dict[str, Any]

    @property
    def label(self) -> str:
        return method_label(self.method, self.settings)


@dataclass
class TrialJob:
    """Everything one trial needs; picklable so a process- or thread-based runner can take it."""

    trial_id: str
    arm: Arm
    round: int
    epochs: float  # cumulative: train until this many epochs since the arm's trial began
    source_model: torch.nn.Module
    data: AdaptationData
    settings: TrainSettings
    plan: ScoringPlan
    config: SelectionConfig
    schedule_epochs: float | None = None  # the length the lr and warm-up schedules are laid out over
    resume: dict[int, RunState] = field(default_factory=dict)  # per fold, where its last round stopped
    position: str = ""  # "3/8": its place among the round's trials, for the progress lines


@dataclass
class TrialResult:
    trial_id: str
    method: str
    settings: dict[str, Any]
    round: int
    epochs: float
    fits: int
    status: str  # "ok" | "refused" | "failed"
    scores: dict[str, float] = field(default_factory=dict)
    score: float | None = None  # the number that ranked it (higher is better), set after the round
    error: str | None = None
    runtime_s: float = 0.0
    epochs_trained: float = 0.0  # in this round, summed over fits, from each run's per-epoch history
    states: dict[int, RunState] = field(default_factory=dict, repr=False)  # per fold, to continue from

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id, "method": self.method, "settings": dict(self.settings),
            "round": self.round, "epochs": self.epochs, "fits": self.fits, "status": self.status,
            "epochs_trained": round(self.epochs_trained, 4),
            "scores": dict(self.scores), "score": self.score, "error": self.error,
            "runtime_s": round(self.runtime_s, 3),
        }


def _device_of(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _log_proba(model: torch.nn.Module, x: np.ndarray, batch_size: int) -> np.ndarray:
    logits = predict_logits(model, x, _device_of(model), batch_size)
    return torch.log_softmax(torch.from_numpy(logits), 1).numpy()


def _fit(job: TrialJob, data: AdaptationData, res: TrialResult, fold: int = 0) -> torch.nn.Module:
    """Train (or continue) the arm's run for ``fold`` up to ``job.epochs``; count only the new part."""
    method = get_method(job.arm.method)()
    settings = job.settings.model_copy(update={"epoch_limit": job.epochs, "schedule_epochs": job.schedule_epochs})
    continuation = Continuation(job.resume.get(fold))
    before = len(continuation.state.history) if continuation.state is not None else 0
    with continuing(continuation):
        # Each trial starts from its own copy, so no trial can disturb another through the model.
        result = method.fit(copy.deepcopy(job.source_model), data, dict(job.arm.settings), settings)
    if continuation.state is not None:
        res.states[fold] = continuation.state
    res.fits += 1
    res.epochs_trained += sum(h.get("epoch_fraction", 1.0) for h in result.history[before:])
    return result.model


def run_trial(job: TrialJob) -> TrialResult:
    """Train one arm for ``job.epochs`` epochs and score it by ``job.plan`` (never the test split)."""
    # Labelled inside the trial: under a thread pool it runs in a thread of its own.
    with progress.labelled(f"trial {job.position or job.trial_id}"):
        res = _run_trial(job)
        progress.note("%s (round %d, %.3g epochs): %s in %s", job.arm.label, job.round, job.epochs,
                      _measured_text(res) if res.status == "ok" else f"{res.status}: {res.error}",
                      progress.clock_text(res.runtime_s))
    return res


def _run_trial(job: TrialJob) -> TrialResult:
    start = time.perf_counter()
    res = TrialResult(job.trial_id, job.arm.method, dict(job.arm.settings), job.round, job.epochs, 0, "ok")
    data = job.data
    try:
        cls = get_method(job.arm.method)
        if job.plan.uses_labels:
            labelled = data.target_labelled
            if cls.needs_target_labels:
                log_p = np.zeros((len(labelled), labelled.num_classes), dtype=np.float32)
                scored = np.zeros(len(labelled), dtype=bool)
                for fold, (train_idx, held_idx) in enumerate(job.plan.folds):
                    fold_data = replace(data, target_labelled=labelled.subset(train_idx))
                    model = _fit(job, fold_data, res, fold)
                    log_p[held_idx] = _log_proba(model, labelled.x[held_idx], job.settings.batch_size)
                    scored[held_idx] = True
            else:
                # No labels needed: train once without any labelled target, score where the
                # label-using arms are scored (all held-out samples).
                model = _fit(job, replace(data, target_labelled=None), res)
                scored = np.zeros(len(labelled), dtype=bool)
                for _, held_idx in job.plan.folds:
                    scored[held_idx] = True
                log_p = _log_proba(model, labelled.x, job.settings.batch_size)
            y = labelled.y[scored]
            res.scores = {"accuracy": float((log_p[scored].argmax(1) == y).mean()),
                          "nll": float(-log_p[scored][np.arange(len(y)), y].mean()),
                          "n_scored": float(scored.sum())}
        else:
            model = _fit(job, data, res)
            target = _unlabelled_target_x(data)
            source = data.has_source_data
            res.scores = label_free_scores(
                model.cpu() if _device_of(model).type != "cpu" else model,
                data.source_train.x if source else None, data.source_val.x if source else None,
                data.source_val.y if source else None, target,
                seed=job.config.seed, max_samples=job.config.validator_max_samples,
                batch_size=job.settings.batch_size, validators=trial_validators(job.config),
            )
    except MethodRequirementError as exc:
        res.status, res.error = "refused", str(exc)
    except (RuntimeError, ValueError, ArithmeticError) as exc:
        # A diverging or crashing trial must not stop the others; it is ranked last and reported.
        res.status, res.error = "failed", f"{type(exc).__name__}: {exc}"
    res.runtime_s = time.perf_counter() - start
    return res


def _unlabelled_target_x(data: AdaptationData) -> np.ndarray:
    """Target inputs without labels: the unlabelled pool plus the labelled inputs (labels dropped)."""
    parts = [d.x for d in (data.target_unlabelled, data.target_labelled) if d is not None and len(d)]
    if not parts:
        raise MethodRequirementError("label-free validation needs target samples, but the target has none")
    return np.concatenate(parts)


def _labels_per_class(domain: Domain | None) -> int:
    if domain is None or len(domain) == 0:
        return 0
    return int(domain.class_counts().min())


def build_arms(
    methods: list[str], config: SelectionConfig, base_settings: dict[str, dict[str, Any]] | None = None
) -> list[Arm]:
    """One arm per method and per combination of its searched hyperparameter values."""
    arms: list[Arm] = []
    for name in methods:
        base = dict((base_settings or {}).get(name, {}))
        grid = config.search.get(name, {})
        if not grid:
            arms.append(Arm(name, base))
            continue
        keys = sorted(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            arms.append(Arm(name, {**base, **dict(zip(keys, values))}))
    return arms


def default_candidates(
    report: dict | None, labels_per_class: int, n_classes: int, config: SelectionConfig, has_unlabelled: bool,
    sources: int = 1,
) -> tuple[list[str], dict[str, dict[str, Any]], dict[str, dict[str, list]], list[str]]:
    """(methods, rule settings per method, searched settings per method, reasons): the rule
    shortlist widened by the methods trials can check cheaply, or the default set; only methods
    that can run on this road with this data."""
    if config.candidates is not None:
        return list(dict.fromkeys(config.candidates)), {}, {}, ["Candidates come from config.candidates."]
    road = (report or {}).get("road", DOMAIN_ADAPTATION)
    source_data = (report or {}).get("source_data", True)
    depth, shifted = None, False
    if report is not None:
        rules = select_by_rules(report, labels_per_class, n_classes, config.model_copy(update={"force_method": None}))
        shortlist = [c["method"] for c in rules.candidates if c["eligible"] and c["score"] >= 0.5]
        methods = [rules.method, *shortlist]
        settings = {rules.method: rules.settings}
        depth = rules.evidence.get("freeze_depth") or rules.evidence.get("depth")
        shifted = bool(rules.evidence.get("significant"))
        reasons = [f"Rule mode's shortlist is {', '.join(dict.fromkeys(methods))}; rule mode alone would pick "
                   f"'{rules.method}'."]
    elif labels_per_class == 0:
        methods, settings, reasons = list(UNSUPERVISED), {}, ["Candidates are the default set for this label budget."]
    else:
        methods, settings = ["target-only", "linear-probe", "l2-sp", "finetune"], {}
        reasons = ["Candidates are the default set for this label budget."]
    added = _added_candidates(road, source_data, labels_per_class, has_unlabelled, config)
    if sources > 1 and source_data and has_unlabelled and road == DOMAIN_ADAPTATION:
        added.append("multi-source")  # whether a mixture beats the ranking's first source, only a trial can say
    new = [m for m in dict.fromkeys(added) if m not in methods]
    methods = list(dict.fromkeys([*methods, *added, "source-only"]))
    if (shifted or not source_data) and labels_per_class < 2:
        # A label-free validator compares the untouched source model, as trained as it will ever
        # be, with short trials that are not yet: DEV, the importance-weighted source loss, then
        # favours the model fitted to the source (on usps→mnist it chose source-only, 50.5 % on
        # test, over dann, 76.7 %). Whether adapting is needed at all is the MMD test's question
        # (and without source data, which no test can answer, the default is to adapt).
        methods.remove("source-only")
        reasons.append("source-only is not tried: " + ("the MMD test finds a significant shift" if shifted else
                       "without source data no test can say the target has not shifted")
                       + ", and without target labels no validator can fairly weigh the finished source model "
                       "against short trials; it remains the baseline the evaluation compares with.")
    dropped = [m for m in methods if ineligibility(m, road, labels_per_class, source_data, sources)]
    if dropped:
        methods = [m for m in methods if m not in dropped]
        reasons.append(f"Not tried, since they cannot run here: {', '.join(dropped)}.")
    search: dict[str, dict[str, list]] = {}
    if "layer-transfer" in methods and labels_per_class > 0:
        # The rule's depth, but never every block (that is linear-probe), and also k = 1.
        ks = sorted({1, max(1, min(depth["k"], depth["n_blocks"] - 1))} if depth else {1})
        settings.pop("layer-transfer", None)
        search["layer-transfer"] = {LAYER_TRANSFER_K: ks}
    new = [m for m in new if m in methods]
    if new:
        reasons.append(f"Trial mode also tries {', '.join(new)}"
                       + (", and source-only as the baseline." if "source-only" in methods else "."))
    if "layer-transfer" in search:
        reasons.append(f"Layer transfer is tried with k in {search['layer-transfer'][LAYER_TRANSFER_K]} frozen blocks.")
    return methods, settings, search, reasons


def _added_candidates(road: str, source_data: bool, labels_per_class: int, has_unlabelled: bool,
                      config: SelectionConfig) -> list[str]:
    """The methods trials add to the rule's shortlist: its evidence is too coarse to rule them out,
    and trials score them on the same data."""
    if road == TASK_TRANSFER:
        # Every way of putting a new head on transferred layers, and the network without them.
        return ["layer-transfer", "linear-probe", "l2-sp", "multitask", "target-only", "protonet"]
    if labels_per_class == 0:
        return [] if source_data else ["shot", "tent"]
    # Layer transfer at more than one depth, and the adversarial unlabelled-target methods,
    # measured best on several labelled benchmark pairs. cdan as well as dann: on the selection
    # benchmark it fixed the pick that lost to source-only (rotate 0.3, seed 1: regret 6.6 ->
    # 0.7-1.1 at 1 and 2 torch threads). Summed regret moved 29.1 -> 21.0 over 20 labelled
    # scenarios at 2 threads but 17.7 -> 27.1 over 16 at 1 thread, where the extra arm thinned
    # the first round and invert+noise (seed 0) chose finetune, 16.3 points below layer-transfer.
    return ["layer-transfer"] + ([config.unsupervised_method, "cdan"] if has_unlabelled else [])


def _serial_map(fn: Callable[[Any], Any], jobs: list[Any]) -> list[Any]:
    return [fn(job) for job in jobs]


def select_by_trials(
    source_model: torch.nn.Module,
    data: AdaptationData,
    settings: TrainSettings,
    config: SelectionConfig,
    *,
    report: dict | None = None,
    map_fn: MapFn | None = None,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> Selection:
    """Pick a method (and its searched hyperparameter) by budgeted trials; see the module doc.

    ``settings`` are the full adaptation settings (``settings.epochs`` = a full run, used for the
    cost comparison with a brute-force sweep). ``report`` (the similarity report), when given,
    makes the rule shortlist the candidates. ``data.target_labelled`` is the only labelled target
    data any trial sees; the target test split is not an argument and cannot be reached.
    """
    labels_per_class = _labels_per_class(data.target_labelled)
    if data.road == TASK_TRANSFER and labels_per_class < 2 and report is not None:
        return _rules_instead(report, labels_per_class, data.n_target_classes, config)
    registered, arms, reasons = _candidate_arms(report, labels_per_class, data, config)
    # The brute-force sweep trains every method that can run here once, in full (source-only
    # trains nothing, so it costs nothing there): the alternative to selecting, whose best
    # method a selection's regret is measured against.
    swept = registered if config.candidates is not None else applicable_methods(data, source_model)
    n_trained = sum(get_method(m).trains for m in swept)
    full_sweep_epochs = n_trained * settings.epochs
    budget = config.budget_epochs
    if config.budget_fraction is not None:
        budget = config.budget_fraction * full_sweep_epochs
    plan = plan_scoring(data.target_labelled, config)
    reasons.append(f"Trials are ranked by {plan.description}; no trial sees the target test split.")
    halving = _SuccessiveHalving(arms, plan, budget, source_model, data, settings, config)
    reasons += halving.run(map_fn or _serial_map, on_trial)
    reasons.append(
        f"Successive halving over {len(arms)} trials (eta = {config.eta}, budget {budget:.3g} epochs"
        + (f", {config.budget_fraction:.0%} of a full sweep" if config.budget_fraction is not None else "")
        + f" ({full_sweep_epochs} epochs: "
        + ("the candidates" if config.candidates is not None
           else f"the {n_trained} training methods that can run here")
        + " trained in full)): "
        + "; ".join(f"round {r + 1}: {n} trials {'to' if r == 0 else 'continued to'} {e:.3g} epochs"
                    for r, (n, e) in enumerate(halving.schedule))
        + "."
    )
    return _selection(halving, full_sweep_epochs, labels_per_class, reasons, data.has_source_data)


def _rules_instead(report: dict, labels_per_class: int, n_classes: int, config: SelectionConfig) -> Selection:
    # One label per new class leaves nothing to hold out, and no label-free validator knows
    # what a new head's classes mean: the rules decide.
    selection = select_by_rules(report, labels_per_class, n_classes, config)
    selection.mode, selection.decided_by = "trial", "rules (one label per new class is too few to score trials)"
    selection.reasons.append("Trial mode fell back to the rules: with one label per class of a new task no "
                             "trial can be scored on held-out labels.")
    return selection


def _candidate_arms(report: dict | None, labels_per_class: int, data: AdaptationData,
                    config: SelectionConfig) -> tuple[list[str], list[Arm], list[str]]:
    """(the registered candidate methods, their arms, the reasons so far)."""
    has_unlabelled = data.target_unlabelled is not None and len(data.target_unlabelled) > 0
    methods, rule_settings, derived_search, reasons = default_candidates(
        report, labels_per_class, data.n_target_classes, config, has_unlabelled, 1 + len(data.other_sources))
    registered = []
    for name in methods:
        try:
            get_method(name)
            registered.append(name)
        except ConfigError:
            if config.candidates is not None:
                raise
            reasons.append(f"'{name}' is not a registered method and was left out.")
    if not registered:
        raise ConfigError("trial-mode selection has no registered candidate method to try")
    # A grid given in config.search wins over one derived from the rule's evidence.
    arms = build_arms(registered, config.model_copy(update={"search": {**derived_search, **config.search}}),
                      rule_settings)
    return registered, arms, reasons


class _SuccessiveHalving:
    """The rounds of trial mode (module doc): who is trained to which fidelity, what each arm's latest
    trial scored, where the others were eliminated, and the last survivor."""

    def __init__(self, arms: list[Arm], plan: ScoringPlan, budget: float, source_model: torch.nn.Module,
                 data: AdaptationData, settings: TrainSettings, config: SelectionConfig) -> None:
        self.arms, self.plan, self.budget = arms, plan, budget
        self.source_model, self.data, self.settings, self.config = source_model, data, settings, config
        self.rounds = halving_rounds(len(arms), config.eta)
        self.schedule: list[tuple[int, float]] = []
        self.committee: CommitteeChoice | None = None
        self.survivors = list(range(len(arms)))
        self.results: list[TrialResult] = []
        self.latest: dict[int, TrialResult] = {}
        self.eliminated_in: dict[int, int] = {}
        self.states: dict[int, dict[int, RunState]] = {}  # per surviving arm and fold, the run to continue
        self.horizon: float | None = None

    @property
    def winner(self) -> int:
        return self.survivors[0]

    def run(self, map_fn: MapFn, on_trial: Callable[[dict[str, Any]], None] | None) -> list[str]:
        """Every round; returns the reasons it has to give."""
        notes = []
        if self.plan.kind == "cv" and self.rounds > 1:
            notes.append("Pruning rounds score on the first fold only; the final round cross-validates on all "
                         f"{len(self.plan.folds)} folds, so K-fold cost is paid only by the finalists.")
        for r in range(self.rounds):
            results = self._train_round(r, map_fn, on_trial)
            notes += self._prune(r, results)
        self.states.clear()
        return notes

    def _round_plan(self, r: int) -> ScoringPlan:
        plan = self.plan
        return plan if plan.kind != "cv" or r == self.rounds - 1 else replace(plan, folds=plan.folds[:1])

    def _folds_of(self, arm: Arm, r: int) -> int:
        cls = get_method(arm.method)
        if not cls.trains:
            return 0  # the source model as it is: scored, never trained, so it takes no share of the budget
        return len(self._round_plan(r).folds) if self.plan.kind == "cv" and cls.needs_target_labels else 1

    def _trained(self, i: int, fold: int) -> float:
        """Epochs the arm's run for ``fold`` has trained (whole steps; an early-stopped one is done)."""
        state = self.states.get(i, {}).get(fold)
        if state is None:
            return 0.0
        return float(self.settings.epochs) if state.stopped_early else state.step / state.steps_per_epoch

    def _train_round(self, r: int, map_fn: MapFn, on_trial) -> list[TrialResult]:
        arms, settings, config, survivors = self.arms, self.settings, self.config, self.survivors
        final_folds = len(self.plan.folds) if self.plan.kind == "cv" else 1
        spent = sum(t.epochs_trained for t in self.results)
        done = [[self._trained(i, f) for f in range(self._folds_of(arms[i], r))] for i in survivors]
        fidelity = round_fidelity(self.budget - spent, done, self.rounds - r, config.eta, final_folds, settings.epochs)
        if self.horizon is None:  # every trial's schedules run over the final round's planned fidelity
            self.horizon = min(float(settings.epochs), fidelity * config.eta ** (self.rounds - 1))
        self.schedule.append((len(survivors), fidelity))
        to_train = [sum(max(0.0, fidelity - t) for t in folds) for folds in done]
        order = longest_first([
            prior_cost(arms[i].method, self.data, settings, e) if r == 0
            else measured_cost(self.latest[i].runtime_s, self.latest[i].epochs_trained, e)
            for i, e in zip(survivors, to_train)])
        submitted_as = {k: n for n, k in enumerate(order, start=1)}
        jobs = [
            TrialJob(f"r{r + 1}-{i:02d}-{arms[i].label}", arms[i], r + 1, fidelity, self.source_model, self.data,
                     settings, self._round_plan(r), config, schedule_epochs=self.horizon,
                     resume=self.states.get(i, {}), position=f"{submitted_as[k]}/{len(survivors)}")
            for k, i in enumerate(survivors)
        ]
        progress.note("round %d of %d: %d trials to %.3g epochs each", r + 1, self.rounds, len(jobs), fidelity)
        results = map_in_order(map_fn, run_trial, jobs, order)
        if len(results) != len(jobs):
            raise ConfigError(f"map_fn returned {len(results)} results for {len(jobs)} trials")
        _rank_round(results, self.plan, config)
        for i, res in zip(survivors, results):
            self.results.append(res)
            self.latest[i] = res
            self.states[i] = {**self.states.get(i, {}), **res.states}
            res.states = {}  # held once, in ``states``, and only while the arm survives
            if on_trial is not None:
                on_trial(res.to_dict())
        return results

    def _prune(self, r: int, results: list[TrialResult]) -> list[str]:
        """Keep the round's best ⌈|S| / η⌉ (the last round: one); returns the reasons it gives."""
        notes, last, survivors = [], r == self.rounds - 1, self.survivors
        # Best first; equal scores go to the other labelled number (see _tie_break), then, sorted()
        # being stable, to the candidates' order of preference.
        order = sorted(range(len(survivors)),
                       key=lambda j: (-_sortable(results[j].score), _tie_break(results[j], self.config)))
        finalists = [self.arms[i] for i in survivors]
        if last and not self.plan.uses_labels:
            self.committee = _committee_note(results, finalists)
        if last and self.plan.uses_labels and self.config.labelled_score == "nll":
            order, why = _untrained_by_accuracy(order, results, finalists)
            notes += [why] if why else []
        keep = 1 if last else max(1, math.ceil(len(survivors) / self.config.eta))
        for j in order[keep:]:
            self.eliminated_in[survivors[j]] = r + 1
            self.states.pop(survivors[j], None)  # a pruned trial is never continued: free its saved run
        self.survivors = [survivors[j] for j in order[:keep]]
        return notes


def _selection(halving: _SuccessiveHalving, full_sweep_epochs: int, labels_per_class: int,
               reasons: list[str], source_data: bool) -> Selection:
    arms, winner, plan, config = halving.arms, halving.winner, halving.plan, halving.config
    win_res = halving.latest[winner]
    if win_res.status != "ok":
        raise ConfigError("every trial in trial-mode selection failed or refused its data; see the trial errors")
    decided_by = plan.description
    if plan.kind == "validators":
        decided_by += " (winner's " + ", ".join(f"{k.upper()} {win_res.scores[k]:.3f}"
                                                 for k in ("im", "snd", "dev") if k in win_res.scores) + ")"
    reasons.append(f"'{arms[winner].label}' scored best in the final round ({_score_text(win_res)}).")
    candidates = _candidate_rows(halving)
    cost = _cost(halving.results, full_sweep_epochs)
    reasons.append(
        f"Selection cost {cost['cost_epochs']:.3g} training epochs, {100 * cost['fraction_of_full_sweep']:.0f}% of "
        f"the full sweep ({cost['full_sweep_epochs']} epochs)."
    )
    method, chosen_settings, warnings, ensemble_by = _choice(halving, cost, candidates, reasons)
    committee = halving.committee
    return Selection(
        method=method,
        warnings=warnings,
        settings=chosen_settings,
        candidates=candidates,
        reasons=reasons,
        mode="trial",
        decided_by=ensemble_by or decided_by,
        evidence={"scoring": plan.kind, "validator": config.validator if plan.kind == "validators" else None,
                  "labels_per_class": labels_per_class, "schedule": halving.schedule,
                  **({"committee": {"ensemble": committee.ensemble, "finalists": list(committee.finalists),
                                    "reason": committee.reason,
                                    "ranker_pick": {"method": arms[winner].method,
                                                    "settings": dict(arms[winner].settings)}}}
                     if committee is not None else {})},
        trials=[t.to_dict() for t in halving.results],
        cost=cost,
        score_meaning=trial_score_meaning(plan, config, source_data),
    )


def _candidate_rows(halving: _SuccessiveHalving) -> list[dict[str, Any]]:
    rows = []
    for i, arm in enumerate(halving.arms):
        res = halving.latest[i]
        if i == halving.winner:
            why = f"winner after round {res.round}"
        elif res.status != "ok":
            why = f"{res.status}: {res.error}"
        else:
            why = f"eliminated in round {halving.eliminated_in.get(i, res.round)} ({_score_text(res)})"
        rows.append({"method": arm.method, "settings": dict(arm.settings), "score": res.score,
                     "eligible": res.status == "ok", "why": why})
    return rows


def _choice(halving: _SuccessiveHalving, cost: dict, candidates: list[dict],
            reasons: list[str]) -> tuple[str, dict, list[str], str | None]:
    """(method, settings, warnings, what decided when not the ranker): the ranker's pick, or the
    finalists' ensemble when the committee disagreed and ``select.ensemble`` allows it. Counts the
    final training into ``cost`` and says the choice in ``reasons``."""
    committee, arms, winner = halving.committee, halving.arms, halving.winner
    ensemble = committee is not None and committee.ensemble and halving.config.ensemble == "on-disagreement"
    method, chosen_settings = ((Ensemble.name, {"members": _members(committee, arms)}) if ensemble
                               else (arms[winner].method, dict(arms[winner].settings)))
    _count_final_training(cost, method, chosen_settings, halving.settings.epochs)
    if ensemble:
        reasons.append("Weak evidence: " + committee.reason + f", rather than '{arms[winner].label}' alone "
                       "(select.ensemble: on-disagreement). Each member is trained in full: with their trainings "
                       f"({cost['final_training_epochs']:.3g} epochs) the choice costs "
                       f"{100 * cost['fraction_with_final_training']:.0f}% of the full sweep.")
        _mark_members(candidates, committee, arms)
        candidates.append({"method": Ensemble.name, "settings": chosen_settings, "score": None, "eligible": True,
                           "why": "chosen: the mean of the finalists' predicted probabilities"})
        return method, chosen_settings, [], (f"the validator committee ({', '.join(v.upper() for v in COMMITTEE)}),"
                                             " which disagreed")
    if committee is not None and committee.ensemble:
        return method, chosen_settings, ["Weak evidence: " + committee.reason + f"; select.ensemble is 'never', so "
                                         f"'{arms[winner].label}' is kept."], None
    if committee is not None:
        reasons.append("In the final round " + committee.reason + ".")
    return method, chosen_settings, [], None


# The validators every label-free trial reports (:func:`_measured_text`); mean-rank ranks by them.
_MEASURED = ("im", "snd", "dev")


def trial_validators(config: SelectionConfig) -> tuple[str, ...]:
    """What a label-free trial computes: what it reports (IM, SND, DEV), what the committee reads
    (:data:`COMMITTEE`) and ``config.validator``; the costlier others (MixVal, reverse) only when
    they rank."""
    ranker = [config.validator] if config.validator in VALIDATORS else []  # mean-rank ranks by _MEASURED
    return tuple(dict.fromkeys((*_MEASURED, *COMMITTEE, *ranker)))


def _committee_note(results: list[TrialResult], arms: list[Arm]) -> CommitteeChoice | None:
    """The EnsV disagreement rule (:func:`transferlab.ensemble.committee_choice`) over the final round's
    trials, with the validators of :data:`COMMITTEE` that every trial has; None with fewer than two
    scored trials (nothing to disagree about)."""
    ok = {arm.label: res.scores for res, arm in zip(results, arms) if res.status == "ok"}
    picks = committee_top_picks(ok)
    return committee_choice(picks) if len(ok) >= 2 and picks else None


def _members(committee: CommitteeChoice, arms: list[Arm]) -> list[dict[str, Any]]:
    """The ensemble's members, the committee's finalists in its order, as the ensemble method's config takes them."""
    by_label = {arm.label: arm for arm in arms}
    return [{"method": by_label[f].method, "settings": dict(by_label[f].settings)} for f in committee.finalists]


def _mark_members(candidates: list[dict], committee: CommitteeChoice, arms: list[Arm]) -> None:
    for arm, row in zip(arms, candidates):
        if arm.label in committee.finalists:
            row["why"] += "; a member of the chosen ensemble"


def _untrained_by_accuracy(order: list[int], results: list[TrialResult], arms: list[Arm]) -> tuple[list[int], str]:
    """(the final order, a reason or ""): an untrained arm (source-only) goes first only if it beats
    the best trained arm on held-out accuracy.

    Held-out NLL compares trials at the same fidelity. The untrained source model is as confident
    as it will ever be, while a short trial is less confident than the finished run it previews,
    so NLL alone would favour the source model for its maturity rather than its predictions (on a
    30-label synthetic pair it chose source-only, 68 % on test, over finetune, 96 %).
    """
    ok = [j for j in order if results[j].status == "ok"]
    trained = [j for j in ok if get_method(arms[j].method).trains]
    untrained = [j for j in ok if not get_method(arms[j].method).trains]
    if not trained or not untrained:
        return order, ""
    best = trained[0]
    rival = max(untrained, key=lambda j: results[j].scores["accuracy"])  # max() keeps the first of equals
    winner = rival if results[rival].scores["accuracy"] > results[best].scores["accuracy"] else best
    if order[0] != rival and winner != rival:
        return order, ""  # the source model won on neither number: nothing to explain
    why = (f"'{arms[rival].label}' trains nothing, so it is compared with the best trained trial, "
           f"'{arms[best].label}', on held-out accuracy rather than NLL (a short trial is less confident than "
           f"its finished run): {100 * results[rival].scores['accuracy']:.1f}% against "
           f"{100 * results[best].scores['accuracy']:.1f}%.")
    return [winner, *[j for j in order if j != winner]], why


_VALIDATOR_SCORES = {
    "im": "IM (information maximisation: confident and diverse target predictions)",
    "snd": "SND (soft neighbourhood density of the target predictions)",
    "dev": "minus the DEV risk (importance-weighted source validation loss)",
    "entropy": "minus the mean entropy of the target predictions",
    "mixval": "MixVal (accuracy on mixed target samples w.r.t. their mixed pseudo-labels)",
    "reverse": "reverse validation (source accuracy of a classifier fitted to the target pseudo-labels)",
    "srcacc_im": "SRC+IM (half source-validation accuracy plus half IM / log C)",
}


def trial_score_meaning(plan: ScoringPlan, config: SelectionConfig, source_data: bool) -> str:
    """What a trial-mode candidate's ``score`` is, for the report: the number :func:`_rank_round` set."""
    if plan.uses_labels:
        number = ("minus the mean negative log-likelihood" if config.labelled_score == "nll"
                  else "the accuracy")
        what = f"{number} of the target-labelled samples held out from its training ({plan.description})"
    else:
        validator = ranking_validator(config, source_data)
        what = ("the mean rank of IM, SND and DEV among the round's trials, 0 = worst to 1 = best"
                if validator == "mean-rank" else f"the label-free validator {_VALIDATOR_SCORES[validator]}")
    return f"trial score: {what}, in the last round the candidate reached; higher is better"


def _sortable(score: float | None) -> float:
    return -math.inf if score is None or not math.isfinite(score) else score


def _labelled_numbers(scores: dict[str, float], config: SelectionConfig) -> tuple[float, float]:
    """(the number that ranks, the one that breaks its ties), both higher-is-better."""
    accuracy, nll = scores.get("accuracy", math.nan), -scores.get("nll", math.nan)
    return (nll, accuracy) if config.labelled_score == "nll" else (accuracy, nll)


def _tie_break(res: TrialResult, config: SelectionConfig) -> float:
    """Lower sorts first: minus the labelled number that did not rank (or +inf without one)."""
    return -_sortable(_labelled_numbers(res.scores, config)[1])


def _measured_text(res: TrialResult) -> str:
    """What the trial measured; its ranking ``score`` comes later, from the whole round."""
    if "accuracy" in res.scores:
        return f"accuracy {100 * res.scores['accuracy']:.1f}%, NLL {res.scores['nll']:.3f}"
    return ", ".join(f"{k.upper()} {res.scores[k]:.3f}" for k in _MEASURED if k in res.scores)


def _score_text(res: TrialResult) -> str:
    if res.status != "ok":
        return res.status
    if "accuracy" in res.scores:
        return _measured_text(res)
    return f"score {res.score:.3f}; {_measured_text(res)}"


def _rank_round(results: list[TrialResult], plan: ScoringPlan, config: SelectionConfig) -> None:
    """Set each result's ``score`` (higher is better; failed trials get None)."""
    ok = [r for r in results if r.status == "ok"]
    if plan.uses_labels:
        for r in ok:
            r.score = _labelled_numbers(r.scores, config)[0]
        return
    validator = ranking_validator(config, all("dev" in r.scores for r in ok))
    if validator == "mean-rank":
        keys = _MEASURED if all("dev" in r.scores for r in ok) else ("im", "snd")
        for r, s in zip(ok, mean_rank_scores([r.scores for r in ok], keys)):
            r.score = float(s)
    else:
        for r in ok:
            r.score = r.scores[validator]


def ranking_validator(config: SelectionConfig, source_data: bool) -> str:
    """The label-free validator that ranks: ``config.validator``, except that without source data the
    ones that weigh labelled source data (DEV, reverse validation, SRC+IM) cannot be computed and IM
    ranks instead, the better of IM and SND in the selection benchmark's first validator study."""
    return config.validator if source_data or config.validator not in NEEDS_SOURCE else "im"


def _count_final_training(cost: dict, method: str, settings: dict, epochs: int) -> None:
    """Add what adapt then trains in full for the chosen method (an ensemble: each member) to ``cost``:
    selecting and then training the choice, against the sweep that trains every method once."""
    members = settings["members"] if get_method(method).composite else [{"method": method}]
    final = sum(get_method(m["method"]).trains for m in members) * epochs
    full = cost["full_sweep_epochs"]
    cost["final_training_epochs"] = float(final)
    cost["fraction_with_final_training"] = float((cost["cost_epochs"] + final) / full) if full else 0.0


def _cost(results: list[TrialResult], full: int) -> dict:
    """Epochs the trials trained against the brute-force sweep (every swept method trained once in full)."""
    spent = sum(r.epochs_trained for r in results)
    return {
        "cost_epochs": round(float(spent), 3),
        "full_sweep_epochs": int(full),
        "fraction_of_full_sweep": float(spent / full) if full else 0.0,
        "trials": len(results),
        "runtime_s": round(sum(r.runtime_s for r in results), 3),
    }
