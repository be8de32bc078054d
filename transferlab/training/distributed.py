"""One training run across processes: torch DistributedDataParallel with a shard of every batch per rank.

The launcher (``torchrun``) starts N processes and :func:`init` joins them into a process group;
:func:`~transferlab.training.loop.run_training` then notices the group and

- gives every rank the same seeded global batch of B samples and keeps the rank's shard of it,
  ``idx[r::N]`` (the interleaving of ``DistributedSampler``, applied to each batch of the stream);
- wraps the step in ``DistributedDataParallel``, which averages the gradients over the ranks;
- scores checkpoints on rank 0 only and sends the score to all, so that early stopping agrees;
- averages the epoch's loss records over the ranks; progress and the ``log`` callback run on rank 0.

Why this equals one process with batch B: with ℓ_i the loss of sample i and S_r the shard of rank r
(|S_r| = B/N), each rank minimises the mean over its shard and DDP averages the gradients, so

    (1/N) Σ_r ∇ (N/B) Σ_{i∈S_r} ℓ_i  =  ∇ (1/B) Σ_{i∈batch} ℓ_i,

the single process's gradient on the same batch, up to the order of float additions. That holds
for every loss that is a mean of per-sample terms (cross-entropy, DANN's domain loss). It does not
hold, and N processes differ from one, for: batch-norm statistics (each rank normalises by its
B/N samples; ``SyncBatchNorm`` needs a GPU and is not used), dropout and augmentation draws (each
rank has its own generator, seeded from ``(seed, rank)``), and losses of whole-batch statistics
(MMD, CORAL, nuclear norms, class confusion): the methods with those refuse to run distributed.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


def active() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0, or no process group: the process that logs, checkpoints and writes."""
    return rank() == 0


def resolve_backend(backend: str, device: torch.device) -> str:
    """'auto': NCCL for CUDA tensors, gloo for CPU ones (NCCL has no CPU path)."""
    if backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    return backend


def rank_seed(seed: int, rank_: int) -> int:
    """The seed of rank ``rank_``'s own draws (dropout, augmentation): distinct per rank, fixed by ``seed``."""
    return int(np.random.SeedSequence([seed, rank_]).generate_state(1)[0])


def shard(indices, rank_: int, world: int):
    """Rank ``rank_``'s part of a global batch: every ``world``-th sample from ``rank_`` on."""
    return indices[rank_::world]


class _Step(nn.Module):
    """The networks a step trains, as one module whose forward is the step, for DDP to wrap: DDP
    only reduces the gradients of a backward that follows a forward through its wrapper, and the
    methods call their networks' parts (features, head, discriminator) directly."""

    def __init__(self, model: nn.Module, aux_modules: list[nn.Module], step_fn):
        super().__init__()
        self.model = model
        self.aux = nn.ModuleList(aux_modules)
        self.step_fn = step_fn

    def forward(self, step):
        return self.step_fn(step)


def data_parallel_step(model: nn.Module, aux_modules: list[nn.Module], step_fn, device: torch.device):
    """``step_fn`` itself outside a process group; inside one, the same step through DDP.
    Unused parameters are looked for each step: a method's frozen or unused parts must not hang the
    gradient reduction."""
    if not active():
        return step_fn
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return DistributedDataParallel(_Step(model, aux_modules, step_fn), device_ids=ids,
                                   find_unused_parameters=True)


def mean_over_ranks(sums: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each entry averaged over the ranks (one all-reduce); keys in a fixed order on every rank."""
    if not active() or not sums:
        return sums
    keys = sorted(sums)
    packed = torch.stack([torch.as_tensor(sums[k]).detach().double().reshape(()).cpu() for k in keys])
    if dist.get_backend() == "nccl":
        packed = packed.cuda()
    dist.all_reduce(packed)
    packed = packed.cpu() / world_size()
    return {k: packed[i] for i, k in enumerate(keys)}


def from_main(value: float) -> float:
    """Rank 0's ``value`` on every rank."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
