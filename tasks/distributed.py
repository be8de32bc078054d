"""A stage's training across processes: the stage starts ``torchrun`` itself, rank 0 writes.

With ``distributed.processes`` N > 1 the pretrain and adapt stages call :func:`launch` instead of
training: it starts ``python -m torch.distributed.run`` with N workers on this machine (a c10d
rendezvous on 127.0.0.1, port chosen by the OS), each running this module's :func:`main`, which
joins the process group and runs the same stage's ``run``. Inside the group the stage trains
through DDP (:mod:`transferlab.training.distributed`); rank 0 alone opens the MLflow run, logs,
registers and writes the outputs (atomically, as always), and hands its summary back through a
file; the other ranks train and write nothing. So ``dvc repro``, ``transferlab stage`` and the
Prefect flow start a distributed stage the same way they start any stage.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import torch

from transferlab.config import PipelineParams, parse_params
from transferlab.errors import ConfigError, TransferlabError
from transferlab.training import distributed
from transferlab.training.device import resolve_device
from tasks import lineage
from tasks.io import write_json


STAGES = {"pretrain": "tasks.pretrain", "adapt": "tasks.adapt"}  # the stages that train across processes


def wanted(params: PipelineParams) -> bool:
    """True in the stage's own process when the run is to be spread over processes (not in a worker)."""
    return params.distributed.processes > 1 and not distributed.active()


def worker_rank() -> int:
    """This process's rank in a stage's process group (0 outside one): rank 0 is the one that writes."""
    return distributed.rank()


def command(stage: str, n: int, params_file: Path, root: Path, result: Path) -> list[str]:
    """torchrun on one machine: N local workers, a rendezvous on the loopback interface, no restarts
    (a failed worker fails the stage; DVC or Prefect decide about retrying the whole stage)."""
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc-per-node={n}",
            "--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:0", f"--rdzv-id={uuid.uuid4().hex}",
            "--max-restarts=0", "-m", "tasks.distributed", stage, "--params", str(params_file),
            "--root", str(root), "--result", str(result)]


def launch(stage: str, params: PipelineParams, root: Path) -> dict:
    """Run ``stage`` in ``distributed.processes`` workers; return rank 0's summary."""
    n = params.distributed.processes
    if resolve_device(params.device).type == "cuda" and torch.cuda.device_count() < n:
        raise ConfigError(f"distributed.processes {n} needs {n} GPUs with device '{params.device}' "
                          f"(one per process), but {torch.cuda.device_count()} are visible")
    code_root = Path(__file__).resolve().parents[1]  # the workers run the code this process runs
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code_root), env.get("PYTHONPATH")]))
    # Ties the workers' MLflow run to this pipeline run's parent, as this process's own run would be.
    if (key := lineage.pipeline_key()) is not None:
        env[lineage.PIPELINE_KEY_ENV] = key
    # gloo binds to the interface its host name resolves to; the workers of one machine need loopback.
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    env.setdefault("OMP_NUM_THREADS", str(max(1, torch.get_num_threads() // n)))
    # DDP looks for unused parameters every step (a method's frozen parts must not hang the reduction)
    # and warns each rank, once, when there are none: a warning about a choice, not a problem.
    env.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    with tempfile.TemporaryDirectory(prefix="transferlab-ddp-") as tmp:
        params_file, result = Path(tmp) / "params.json", Path(tmp) / "result.json"
        params_file.write_text(json.dumps(params.model_dump(mode="json")))
        proc = subprocess.run(command(stage, n, params_file, Path(root).resolve(), result), check=False, cwd=root,
                              env=env)
        outcome = json.loads(result.read_text()) if result.exists() else {}
    if "error" in outcome:
        raise TransferlabError(outcome["error"])
    if proc.returncode != 0 or "summary" not in outcome:
        raise TransferlabError(f"the {stage} stage's {n} training processes failed (torchrun exit "
                               f"{proc.returncode}); their messages are above")
    return outcome["summary"]


def _progress_to_stderr() -> None:
    """Rank 0's progress lines on stderr, which torchrun passes through to the stage's."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("transferlab")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    """One worker: join the group torchrun set up (RANK, WORLD_SIZE, MASTER_ADDR in the environment),
    run the stage, and on rank 0 write ``{"summary": ...}`` or ``{"error": ...}`` to ``--result``."""
    parser = argparse.ArgumentParser(prog="python -m tasks.distributed")
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--params", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)
    from transferlab import progress

    params = parse_params(json.loads(Path(args.params).read_text()), args.params)
    device = resolve_device(params.device)
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group(distributed.resolve_backend(params.distributed.backend, device))
    outcome, code = {}, 0
    try:
        if distributed.is_main():
            _progress_to_stderr()
        with progress.labelled(args.stage):
            outcome = {"summary": importlib.import_module(STAGES[args.stage]).run(params, Path(args.root))}
    except TransferlabError as exc:
        outcome, code = {"error": str(exc)}, 1
    finally:
        rank = distributed.rank()
        torch.distributed.destroy_process_group()
    if rank == 0:
        write_json(Path(args.result), outcome)
    return code


if __name__ == "__main__":
    sys.exit(main())
