"""One training run across 2 gloo processes (DDP) equals one process with the same global batch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from transferlab.data.types import Domain
from transferlab.training import BatchStream, TrainSettings, accuracy_scorer, distributed, param_group, run_training
from transferlab.training.loop import TrainingStep

BATCH = 8  # global: 4 per rank with 2 processes


def _domain() -> Domain:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 6)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    return Domain("toy", x, y, ("a", "b"))


def _train(record_log: list | None = None):
    """A linear classifier (no dropout, no batch-norm: nothing that differs per rank by design)."""
    torch.manual_seed(0)
    model = nn.Linear(6, 2)
    data = _domain()
    settings = TrainSettings(epochs=3, batch_size=BATCH, lr=0.05, weight_decay=0.0, patience=5,
                             min_steps_per_epoch=4, seed=3)

    def step(s: TrainingStep):
        x, y = s.batches["train"]
        return {"loss": nn.functional.cross_entropy(model(x), y)}

    log = (lambda epoch, metrics: record_log.append(epoch)) if record_log is not None else None
    return run_training(model, [param_group(model.parameters())], step,
                        {"train": BatchStream(data, BATCH, settings.seed, "train")},
                        accuracy_scorer(data, "toy accuracy"), settings, 6, log=log)


def _worker(rank: int, world: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        logged: list = []
        result = _train(logged)
        with open(f"{out}.{rank}", "w") as handle:
            json.dump({"losses": [h["loss"] for h in result.history], "logged": logged,
                       "weight": result.model.weight.detach().tolist(), "score": result.best_score}, handle)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    # spawn, not fork: in the whole suite earlier tests leave threads running (Prefect, MLflow, Dask),
    # and a child forked from a threaded parent died at its first step in the fresh-clone CI run
    mp.start_processes(_worker, args=(2, str(tmp / "init"), str(tmp / "out")), nprocs=2, join=True,
                       start_method="spawn")
    return [json.loads((tmp / f"out.{r}").read_text()) for r in range(2)]


def test_two_processes_match_one_process_with_the_same_global_batch(two_ranks):
    single = _train()
    rank0 = two_ranks[0]
    # Same samples per step, gradients averaged by DDP: equal up to the order of float additions.
    assert rank0["losses"] == pytest.approx([h["loss"] for h in single.history], rel=1e-5, abs=1e-6)
    assert np.allclose(rank0["weight"], single.model.weight.detach().numpy(), atol=1e-5)
    assert rank0["score"] == pytest.approx(single.best_score)
    # Both ranks end with the same weights and the same (averaged) loss record.
    assert np.allclose(two_ranks[1]["weight"], rank0["weight"], atol=1e-7)
    assert two_ranks[1]["losses"] == pytest.approx(rank0["losses"], abs=1e-9)


def test_only_rank_zero_calls_the_log(two_ranks):
    assert two_ranks[0]["logged"] == [1, 2, 3]
    assert two_ranks[1]["logged"] == []


def test_shards_are_disjoint_and_cover_the_global_batch():
    data = _domain()
    whole = BatchStream(data, BATCH, 1, "s", with_index=True)
    parts = [BatchStream(data, BATCH, 1, "s", with_index=True) for _ in range(2)]
    for r, p in enumerate(parts):
        p.shard(r, 2)
    for _ in range(8):  # past one pass: the re-shuffle is the same on every rank
        full = whole.next(torch.device("cpu"))[-1].tolist()
        got = [p.next(torch.device("cpu"))[-1].tolist() for p in parts]
        assert got == [full[0::2], full[1::2]]


def test_a_batch_that_does_not_split_evenly_is_refused():
    stream = BatchStream(_domain(), 6, 0, "s")
    with pytest.raises(ValueError, match="multiple of the process count"):
        stream.shard(0, 4)


def test_rank_seeds_differ_per_rank_and_are_fixed_by_the_seed():
    assert distributed.rank_seed(0, 0) != distributed.rank_seed(0, 1)
    assert distributed.rank_seed(5, 1) == distributed.rank_seed(5, 1)
    assert distributed.resolve_backend("auto", torch.device("cpu")) == "gloo"
    assert distributed.resolve_backend("auto", torch.device("cuda")) == "nccl"
