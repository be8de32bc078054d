"""The one training loop every method and baseline runs through.

A method supplies *what* to optimise: the parameter groups (with learning-rate multipliers),
a ``step`` function that turns the step's mini-batches into a loss, and a :class:`Scorer`
that judges a checkpoint. The loop owns the rest: seeding, the optimiser (Adam with decoupled
learning rates per group), device placement, epochs, early stopping with ``patience``, keeping
the best checkpoint's weights, progress (a bar on a terminal; lines through the
``transferlab.progress`` logger, see :mod:`transferlab.progress`, for logs and the Prefect UI) and the
``log(step, metrics)`` callback (called once per epoch with the epoch as step). Inside a
:func:`~transferlab.training.continuation.continuing` block a run starts from, and saves into,
a continuation, so a trial can be trained further later.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from transferlab.progress import Progress, on_terminal
from transferlab.training import distributed
from transferlab.training.batches import BatchStream
from transferlab.training.continuation import RunState, current_continuation
from transferlab.training.device import resolve_device
from transferlab.training.evaluation import Scorer
from transferlab.training.freezing import train_mode
from transferlab.training.result import AdaptResult
from transferlab.training.settings import TrainSettings

LogFn = Callable[[int, dict[str, float]], None]


@dataclass
class TrainingStep:
    """What a method's step function gets: where training is, and one batch per stream."""

    step: int  # 0-based global optimiser step
    epoch: int  # 1-based
    progress: float  # step / total planned steps, in [0, 1): drives warm-up schedules
    batches: dict[str, tuple[torch.Tensor, ...]] = field(default_factory=dict)
    device: torch.device = torch.device("cpu")


StepFn = Callable[[TrainingStep], dict[str, torch.Tensor]]


def param_group(params, lr_mult: float = 1.0, weight_decay: float | None = None) -> dict:
    """One optimiser group: ``lr = settings.lr * lr_mult``; ``weight_decay`` None -> settings'."""
    return {"params": [p for p in params if p.requires_grad], "lr_mult": lr_mult, "weight_decay": weight_decay}


def annealed_lr_factor(progress: float, alpha: float = 10.0, beta: float = 0.75) -> float:
    """(1 + α p)^-β: 1 at the start, 11^-0.75 ≈ 0.17 at the end (Ganin et al. 2016)."""
    return (1.0 + alpha * progress) ** -beta


def seed_everything(seed: int) -> None:
    """Seed torch's global generators (weights of new layers, dropout)."""
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def run_training(
    model: nn.Module,
    groups: list[dict],
    step_fn: StepFn,
    streams: dict[str, BatchStream],
    scorer: Scorer,
    settings: TrainSettings,
    steps_per_epoch: int,
    log: LogFn | None = None,
    aux_modules: list[nn.Module] | None = None,
    description: str = "train",
    after_step: Callable[[], None] | None = None,
) -> AdaptResult:
    """Train ``model`` (in place) and return it at the checkpoint ``scorer`` prefers.

    ``step_fn`` must return a dict with a scalar tensor ``"loss"`` (what is minimised) and
    optionally other scalar tensors, which are averaged per epoch into the history.
    ``aux_modules`` (e.g. a domain discriminator) are moved to the device and put in train
    mode with the model, but are not part of the returned network. ``after_step`` runs after each
    optimiser update (e.g. a mean teacher's moving average of the weights).

    Inside a process group (:mod:`transferlab.training.distributed`) each rank trains on its shard
    of every batch through DDP; rank 0 scores, reports progress and calls ``log``.
    """
    device = resolve_device(settings.device)
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    aux_modules = aux_modules or []
    model.to(device)
    for m in aux_modules:
        m.to(device)
    optimiser = _adam(groups, settings)
    base_lrs = [group["lr"] for group in optimiser.param_groups]  # before a saved run's decayed ones load
    step_fn, log = _across_ranks(model, aux_modules, step_fn, streams, settings.seed, device, log)
    stop, horizon = _step_window(settings, steps_per_epoch)
    continuation = current_continuation()
    run = continuation.state if continuation is not None else None
    if run is not None:
        _resume(run, model, aux_modules, optimiser, streams, steps_per_epoch, horizon)
    at = _Checkpoints.of(run)
    loop = _Epochs(model, aux_modules, optimiser, base_lrs, step_fn, streams, settings, steps_per_epoch, stop,
                   horizon, device, after_step)
    main = distributed.is_main()
    bar = tqdm(total=stop, initial=at.step, desc=description, disable=not (main and on_terminal()), leave=False)
    # Always reported, rate-limited: the bar is for the terminal only, the lines for the logs.
    lines = Progress(description, stop, initial=at.step) if main else _Silent()
    try:
        # One record per epoch; a run limited to a fraction of an epoch, or continued from one,
        # records the part of the epoch it trained (``epoch_fraction``).
        while at.step < stop and not at.stopped:
            started = time.perf_counter()
            epoch, sums, chunk = loop.train_epoch(at.step, bar)
            at.step += chunk
            score = distributed.from_main(float(scorer.score(model, device)) if main else 0.0)
            sums = distributed.mean_over_ranks(sums)
            record = {"epoch": epoch, **{k: float(v) / chunk for k, v in sums.items()},
                      "checkpoint_score": score, "epoch_seconds": time.perf_counter() - started,
                      "lr": optimiser.param_groups[0]["lr"], "epoch_fraction": chunk / steps_per_epoch}
            at.history.append(record)
            bar.set_postfix(loss=f"{record['loss']:.3f}", score=f"{score:.3f}")
            _report_epoch(lines, record, at.step, stop, steps_per_epoch, scorer.name)
            if log is not None:
                log(epoch, {k: float(v) for k, v in record.items() if k != "epoch"})
            at.judge(model, epoch, score, scorer.keep == "last", settings.patience, lines)
    finally:
        bar.close()
    if continuation is not None:
        continuation.state = at.saved(model, aux_modules, optimiser, streams, steps_per_epoch, horizon)
    model.load_state_dict(at.best_state)
    model.to("cpu").eval()
    for m in aux_modules:
        m.to("cpu")
    return AdaptResult(model=model, history=at.history, checkpoint_criterion=scorer.name,
                       best_epoch=at.best_epoch, best_score=at.best_score)


def _adam(groups: list[dict], settings: TrainSettings) -> torch.optim.Adam:
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("run_training was given no trainable parameters")
    return torch.optim.Adam([
        {"params": g["params"], "lr": settings.lr * g.get("lr_mult", 1.0),
         "weight_decay": settings.weight_decay if g.get("weight_decay") is None else g["weight_decay"]}
        for g in groups
    ])


def _step_window(settings: TrainSettings, steps_per_epoch: int) -> tuple[int, int]:
    """(the step the run stops at, the steps its lr and warm-up schedules run over)."""
    planned = settings.epochs * steps_per_epoch
    stop = planned
    if settings.epoch_limit is not None:
        # Rounded down, so that a budget split into fractional epochs is never overspent.
        stop = max(1, min(planned, math.floor(settings.epoch_limit * steps_per_epoch + 1e-9)))
    # The schedules run over the whole (possibly limited) run, or over ``schedule_epochs`` when a
    # trial is a stretch of a longer run it may later continue.
    horizon = stop
    if settings.schedule_epochs is not None:
        horizon = max(1, min(planned, math.floor(settings.schedule_epochs * steps_per_epoch + 1e-9)))
    return stop, horizon


def _resume(run: RunState, model: nn.Module, aux_modules: list[nn.Module], optimiser: torch.optim.Optimizer,
            streams: dict[str, BatchStream], steps_per_epoch: int, horizon: int) -> None:
    """Put the model, its helpers, the optimiser, the streams and torch's generator where ``run`` left them."""
    if (run.steps_per_epoch, run.horizon) != (steps_per_epoch, horizon):
        raise ValueError(f"cannot continue a run of {run.steps_per_epoch} steps per epoch over a "
                         f"{run.horizon}-step schedule as one of {steps_per_epoch} over {horizon}")
    model.load_state_dict(run.model)
    for m, saved in zip(aux_modules, run.aux):
        m.load_state_dict(saved)
    optimiser.load_state_dict(run.optimiser)
    for name, stream in streams.items():
        stream.restore(run.streams[name])
    torch.set_rng_state(run.torch_rng)


@dataclass
class _Checkpoints:
    """Where the run is (its step and history) and the checkpoint it keeps, with early stopping."""

    step: int = 0
    history: list[dict] = field(default_factory=list)
    best_score: float = float("-inf")
    best_epoch: int = 0
    best_state: dict | None = None
    since_best: int = 0
    stopped: bool = False

    @classmethod
    def of(cls, run: RunState | None) -> "_Checkpoints":
        if run is None:
            return cls()
        return cls(run.step, list(run.history), run.best_score, run.best_epoch, run.best_state, run.since_best,
                   run.stopped_early)

    def judge(self, model: nn.Module, epoch: int, score: float, keep_last: bool, patience: int, lines) -> None:
        if keep_last or score > self.best_score:
            self.best_score, self.best_epoch, self.since_best = score, epoch, 0
            self.best_state = _on_cpu(model.state_dict())
            return
        self.since_best += 1
        self.stopped = self.since_best >= patience
        if self.stopped:
            lines.update(self.step, f"stopped early after epoch {epoch}",
                         f"no better checkpoint score for {self.since_best} epochs (best at epoch {self.best_epoch})",
                         force=True)

    def saved(self, model, aux_modules, optimiser, streams, steps_per_epoch: int, horizon: int) -> RunState:
        return RunState(
            steps_per_epoch=steps_per_epoch, horizon=horizon, step=self.step,
            model=_on_cpu(model.state_dict()), aux=[_on_cpu(m.state_dict()) for m in aux_modules],
            optimiser=_on_cpu(optimiser.state_dict()),
            streams={name: s.state() for name, s in streams.items()}, torch_rng=torch.get_rng_state(),
            history=list(self.history), best_score=self.best_score, best_epoch=self.best_epoch,
            best_state=self.best_state, since_best=self.since_best, stopped_early=self.stopped)


@dataclass
class _Epochs:
    """Trains one epoch (or the part of it up to the stop) at a time."""

    model: nn.Module
    aux_modules: list[nn.Module]
    optimiser: torch.optim.Optimizer
    base_lrs: list[float]
    step_fn: StepFn
    streams: dict[str, BatchStream]
    settings: TrainSettings
    steps_per_epoch: int
    stop: int
    horizon: int
    device: torch.device
    after_step: Callable[[], None] | None

    def train_epoch(self, step: int, bar) -> tuple[int, dict[str, torch.Tensor], int]:
        """(the epoch, its losses summed over its steps, how many steps it trained)."""
        epoch = step // self.steps_per_epoch + 1
        chunk = min(epoch * self.steps_per_epoch, self.stop) - step
        train_mode(self.model)
        for m in self.aux_modules:
            train_mode(m)
        sums: dict[str, float] = {}
        for _ in range(chunk):
            losses = self._step(step, epoch)
            for k, v in losses.items():
                # Summed on the device: a float() per step would wait for the GPU every step.
                sums[k] = sums.get(k, 0.0) + v.detach().double()
            step += 1
            bar.update(1)
        return epoch, sums, chunk

    def _step(self, step: int, epoch: int) -> dict[str, torch.Tensor]:
        batches = {name: s.next(self.device) for name, s in self.streams.items()}
        progress = min(step / self.horizon, 1.0)
        if self.settings.lr_schedule == "annealed":
            decay = annealed_lr_factor(progress)
            for group, base in zip(self.optimiser.param_groups, self.base_lrs):
                group["lr"] = base * decay
        losses = self.step_fn(TrainingStep(step, epoch, progress, batches, self.device))
        self.optimiser.zero_grad(set_to_none=True)
        losses["loss"].backward()
        self.optimiser.step()
        if self.after_step is not None:
            self.after_step()
        return losses


def _across_ranks(model, aux_modules, step_fn, streams, seed, device, log):
    """Inside a process group: each stream yields this rank's shard, the step runs through DDP, each
    rank draws dropout and augmentation from its own seed, and only rank 0 logs. Else all as given."""
    if not distributed.active():
        return step_fn, log
    for stream in streams.values():
        stream.shard(distributed.rank(), distributed.world_size())
    seed_everything(distributed.rank_seed(seed, distributed.rank()))
    return (distributed.data_parallel_step(model, aux_modules, step_fn, device),
            log if distributed.is_main() else None)


class _Silent:
    """The progress lines of a rank other than 0: nothing."""

    def update(self, *args, **kwargs) -> bool:
        return False


def _report_epoch(lines: Progress, record: dict, step: int, stop: int, steps_per_epoch: int,
                  criterion: str) -> None:
    epochs = stop / steps_per_epoch
    # A run limited to a fraction of an epoch (a selection trial) ends inside its last epoch.
    total = f"{epochs:g}" if epochs == int(epochs) else f"{math.ceil(epochs)} (stops at {epochs:.3g} epochs)"
    lines.update(step, f"epoch {record['epoch']}/{total}",
                 f"loss {record['loss']:.4f}, checkpoint score {record['checkpoint_score']:.4f} ({criterion})")


def _on_cpu(obj):
    """A deep copy with every tensor on the CPU (a saved run must not hold device memory)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _on_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_on_cpu(v) for v in obj]
    return copy.deepcopy(obj)


def copy_model(model: nn.Module) -> nn.Module:
    """An independent copy on the CPU (methods never modify the source model they are given)."""
    return copy.deepcopy(model).to("cpu")
