"""``tent``: fully test-time adaptation by entropy minimisation (Wang et al. 2021). Source-free:
it needs the source model and unlabelled target data, never source data.

On each unlabelled target batch of N samples it minimises the mean prediction entropy

    L = −(1/N) Σᵢ Σ_c p̂ᵢ_c log p̂ᵢ_c,        p̂ᵢ = softmax(f(xᵢ))   (natural logarithm)

updating only the affine parameters (γ, β) of the normalisation layers (BatchNorm, GroupNorm,
LayerNorm); every other parameter stays frozen, bit-identical. While adapting, batch-norm layers
normalise with the target batch's own statistics (μ_B, σ²_B), as the paper prescribes; every other
module (dropout included) runs in eval mode, so only the normalisation layers see the target batch.

The pipeline evaluates the returned network in eval mode, where batch norm uses its running
statistics, which still describe the *source*. So before each checkpoint is scored (and kept),
every batch-norm layer's running statistics are reset and re-estimated on the unlabelled target
pool without gradients, as the cumulative average over batches of ``settings.batch_size``: the
returned network then normalises as it did while adapting. Training itself never reads the
running statistics, so this pass does not change the trajectory of the adapted parameters.

Defaults follow the reference code (DequanWang/tent, ``cfgs/tent.yaml``): Adam (the shared
loop's optimiser; the reference's lr is 1e-3, ``settings.lr``'s default) and no weight decay.
The paper adapts online, one step per target batch in a single pass: ``settings.epochs=1`` with
``checkpoint='last-epoch'``. The default checkpoint is label-free (``'auto'``: accuracy on the
labelled target samples when there are some, never trained on, else information maximisation on
the unlabelled pool; :mod:`transferlab.methods.checkpointing`).
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from transferlab.errors import MethodRequirementError
from transferlab.methods.base import AdaptationData, Method
from transferlab.methods.registry import register
from transferlab.methods.shot import SourceFreeConfig, entropy_loss, evaluating, source_free_checkpoint
from transferlab.training import (
    AdaptResult,
    BatchStream,
    Scorer,
    TrainingStep,
    copy_model,
    freeze,
    param_group,
    run_training,
    seed_everything,
    steps_per_epoch,
)

NORM_LAYERS = (_BatchNorm, nn.GroupNorm, nn.LayerNorm)


def norm_affine_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) of every affine weight and bias of the normalisation layers in ``model``."""
    found = []
    for name, module in model.named_modules():
        if isinstance(module, NORM_LAYERS):
            for pname in ("weight", "bias"):
                p = getattr(module, pname, None)
                if isinstance(p, nn.Parameter):
                    found.append((f"{name}.{pname}" if name else pname, p))
    return found


def configure_for_tent(model: nn.Module) -> list[nn.Parameter]:
    """Freeze everything but the normalisation layers' affine parameters; return those.

    Every leaf module that is not a normalisation layer is frozen (:func:`freeze`): eval mode
    whenever the loop trains, so dropout is off and only batch norm sees the target batch.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    for module in model.modules():
        if not isinstance(module, NORM_LAYERS) and next(module.children(), None) is None:
            freeze(module)
    params = [p for _, p in norm_affine_parameters(model)]
    for p in params:
        p.requires_grad_(True)
    return params


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, x: np.ndarray, device: torch.device, batch_size: int) -> None:
    """Reset every batch-norm layer's running statistics and re-estimate them on ``x``.

    A cumulative average (momentum None) over the full batches of ``x`` in its stored order,
    each normalised by its own statistics as in training; the rest of the network in eval mode.
    The incomplete last batch is left out (an equal weight for fewer samples would bias the mean).
    """
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not layers:
        return
    momenta = [m.momentum for m in layers]
    size = min(batch_size, len(x))
    with evaluating(model):
        for m in layers:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        for start in range(0, len(x) - size + 1, size):
            model(torch.from_numpy(np.ascontiguousarray(x[start:start + size])).to(device))
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum


def recalibrating(scorer: Scorer, x: np.ndarray, batch_size: int) -> Scorer:
    """``scorer`` preceded by :func:`recalibrate_batch_norm` on ``x``: the checkpoint it scores,
    and the loop keeps, is the network as it will be evaluated."""
    def score(model: nn.Module, device: torch.device) -> float:
        recalibrate_batch_norm(model, x, device, batch_size)
        return scorer.score(model, device)

    return Scorer(scorer.name, score, scorer.keep)


class TentConfig(SourceFreeConfig):
    weight_decay: float = Field(0.0, ge=0, description="weight decay of the adapted affine parameters "
                                                       "(the reference's 0)")


@register
class Tent(Method):
    name = "tent"
    relative_step_cost = 0.14
    description = ("source-free test-time adaptation: minimises the target prediction entropy by updating only "
                   "the normalisation layers' affine parameters, with target batch statistics")
    uses_unlabelled_target = True
    needs_unlabelled_target = True
    uses_source = False
    shared_label_space = True
    Config = TentConfig

    @classmethod
    def check_model(cls, model: nn.Module) -> None:
        if not norm_affine_parameters(model):
            spec = getattr(model, "spec", None)
            arch = getattr(spec, "arch", None) or type(model).__name__
            raise MethodRequirementError(
                f"method 'tent' adapts the affine parameters of normalisation layers, but the source network "
                f"('{arch}') has none (no BatchNorm, GroupNorm or LayerNorm with affine weights)")

    def train(self, source_model, data: AdaptationData, config: TentConfig, settings, log) -> AdaptResult:
        seed_everything(settings.seed)
        model = copy_model(source_model)
        params = configure_for_tent(model)
        pool = data.target_unlabelled
        stream = BatchStream(pool, settings.batch_size, settings.seed, "target-unlabelled")
        scorer = recalibrating(source_free_checkpoint(data, config.checkpoint), pool.x, settings.batch_size)

        def step(s: TrainingStep) -> dict[str, torch.Tensor]:
            h = entropy_loss(model(s.batches["target"][0]))
            return {"loss": h, "entropy": h}

        n = steps_per_epoch([len(pool)], settings.batch_size, settings.min_steps_per_epoch,
                            settings.max_steps_per_epoch)
        return run_training(model, [param_group(params, weight_decay=config.weight_decay)], step,
                            {"target": stream}, scorer, settings, n, log, description=self.name)
