"""The ``transferlab`` command."""

from __future__ import annotations

import time

_STARTED = time.time()

import argparse  # noqa: E402
import contextlib
import json
import os
import sys
import threading
from pathlib import Path
from typing import Iterator

import yaml

from flows import interrupts
from transferlab.errors import TransferlabError

DEFAULT_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "DVC_NO_ANALYTICS": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def _parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise TransferlabError(f"--set expects KEY=VALUE, got '{item}'")
        key, value = item.split("=", 1)
        out[key] = yaml.safe_load(value)
    return out


def _notes(notes: list[str]) -> None:
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


def cmd_stage(args) -> int:
    from tasks.project_lock import hold
    from tasks import recovery
    from flows.dask_runner import run_stage  # tasks.stages.run_stage, or the stage's jobs on Dask
    from tasks.stages import stage_module
    from transferlab.config import load_params

    stage_module(args.name)  # an unknown stage is refused before anything is read or repaired
    from flows.run_logs import to_stderr

    to_stderr()  # progress lines for `dvc repro` in a pipe or a CI log
    root = Path(".")
    with hold(root):
        _notes(recovery.recover(root, load_params(args.params).mlflow.experiment))
        recovery.save_good_lock(root)  # dvc repro wrote it whole before starting this stage
        summary = run_stage(args.name, args.params, started=_STARTED)
    print(json.dumps({"stage": args.name, **summary}, default=str))
    return 0


def cmd_repair(args) -> int:
    """What the start of every run does, on its own: after a killed `dvc repro`, before the next."""
    from tasks.project_lock import hold
    from tasks import recovery
    from tasks.paths import PARAMS
    from transferlab.config import load_params

    root = Path(args.project)
    with hold(root):
        notes = recovery.recover(root, load_params(root / PARAMS).mlflow.experiment)
    _notes(notes)
    print(f"{len(notes)} thing(s) put right" if notes else "nothing to repair")
    return 0


_SERVER: list = []  # the LocalServer this command started, if any


def _stop_temporary_server(grace_s: float = 1.0) -> bool:
    """Deliver Prefect's queued logs and events, as its own exit hooks would, then stop the server
    this command started. False when that server had died: nothing can be delivered, and Prefect's
    services would retry against it (5 s here, once 80 s under load)."""
    if not _SERVER:
        return True
    server = _SERVER.pop()
    alive = server.exit_code() is None
    if alive:
        # A private API: if it moves, a lost last log line must not fail the run.
        with contextlib.suppress(Exception):
            from prefect._internal.concurrency.services import QueueService

            QueueService.drain_all(timeout=5.0)
    server.stop(grace_s)
    return alive


@contextlib.contextmanager
def _prefect_api(server) -> Iterator[None]:
    """Point Prefect at ``server``, unless Prefect's settings (a profile, prefect.toml, .env)
    already name an API: that is only known once Prefect is imported, after the server started."""
    import prefect.context
    from prefect.settings import (PREFECT_FLOWS_HEARTBEAT_FREQUENCY, PREFECT_UI_URL, get_current_settings,
                                  temporary_settings)

    if server is None or get_current_settings().api.url:
        if server is not None:
            _SERVER.remove(server)
            server.stop()
        yield
        return
    # The process-wide settings, not only this context's: Prefect's own threads (events, logs)
    # start from them, and with no API URL there they would start a second temporary server.
    os.environ["PREFECT_API_URL"] = server.url
    prefect.context.refresh_global_settings_context()
    try:
        server.wait_ready()
        # Heartbeats let a long-lived server mark a silently dead flow run as crashed; this server
        # dies with the process, and stopping their thread costs up to a second at the flow's end.
        # No UI URL: Prefect would derive one from the API URL and print "View at .../runs/flow-run/..",
        # a 404 (this server serves no UI) that dies with the run anyway. A server the user started
        # (PREFECT_API_URL set) keeps its link: its UI works.
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None, PREFECT_UI_URL: ""}):
            yield
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        prefect.context.refresh_global_settings_context()


def cmd_run(args) -> int:
    from tasks.project_lock import hold

    project = Path(args.project).resolve()
    with hold(project, wait=args.wait):  # refused at once, before a server starts, if a run holds it
        return _run(args, project)


def _run(args, project: Path) -> int:
    from flows.tracking_store import TrackingStoreSetup
    from tasks import recovery

    _notes(recovery.recover(project))  # files only: MLflow's store may still be coming up

    # Both come up in child processes while this one imports torch, sklearn, Prefect and MLflow.
    server = None
    if not os.environ.get("PREFECT_API_URL"):
        import atexit

        from flows.local_server import LocalServer

        server = LocalServer()
        _SERVER.append(server)
        atexit.register(_stop_temporary_server)
    store = TrackingStoreSetup(project)
    try:
        from flows.pipeline import console_without_tracebacks
        from flows.summary import print_summary
        from tasks import preflight, tracking
        from tasks.paths import PARAMS
        from transferlab.config import load_params

        overrides = _parse_set(args.set)
        # A bad param, missing data or a machine that cannot run them ends here, before any stage runs.
        preflight.check(load_params(project / PARAMS, overrides), project)
        tracking.wait_before_first_use(store.wait)
        console_without_tracebacks()
        with _prefect_api(server):
            result = _pipeline_watched(server, project, overrides)
    except BaseException:
        store.discard_if_unused()
        raise
    print_summary(Path(args.project), result["stages"])
    return 0


def _pipeline_watched(server, project: Path, overrides: dict) -> dict:
    """The flow, with a watch on the temporary server; an interrupt marks the flow run Cancelled."""
    from flows import prefect_runs
    from flows.local_server import ServerWatch
    from flows.pipeline import transfer_pipeline

    watch = ServerWatch(server) if server is not None else contextlib.nullcontext()
    try:
        with watch:
            return transfer_pipeline(project_dir=str(project), overrides=overrides)
    except KeyboardInterrupt:
        interrupts.caught()
        if getattr(watch, "exit_code", None) is not None:
            raise TransferlabError(watch.message()) from None
        prefect_runs.mark_interrupted()
        raise


def cmd_serve(args) -> int:
    from flows.deployment import pipeline_deployment

    if not os.environ.get("PREFECT_API_URL"):
        print("note: PREFECT_API_URL is not set, so the deployment is served against a temporary server "
              "that no UI sees. Start `prefect server start` (http://127.0.0.1:4200) and "
              "`export PREFECT_API_URL=http://127.0.0.1:4200/api` first.", file=sys.stderr)
    from prefect import serve

    serve(pipeline_deployment(Path(args.project), args.name))
    return 0


def cmd_datasets(args) -> int:
    from tasks import datasets
    from transferlab.data import list_datasets

    root = Path(args.project)
    if args.action == "add":
        t = datasets.add(root, args.name, Path(args.path), kind=args.kind, description=args.description)
        print(f"tracked {args.name} ({t.kind}, {_size(t.size)}, {t.nfiles or 1} file(s)) at {t.folder}, "
              f"DVC md5 {t.md5}")
        print(f"next: git commit -m 'data: {args.name}' {t.dvc_file} {t.folder.parent / '.gitignore'}; "
              f"dvc push (with a remote); in params.yaml: data.target: {{name: {args.name}}}")
        return 0
    tracked = datasets.register_tracked(root)
    names = {t.name for t in tracked}
    rows = [(d.name, "yes" if d.needs_path else "no", "-" if d.n_samples is None else str(d.n_samples),
             "-" if d.classes is None else str(len(d.classes)), "-" if d.shape is None else "x".join(map(str, d.shape)),
             d.description) for d in list_datasets() if d.name not in names]
    _table(["name", "needs path", "samples", "classes", "shape", "description"], rows)
    if tracked:
        print(f"\ntracked by DVC under {datasets.RAW_DATA} (params name them by NAME):")
        _table(["name", "kind", "DVC md5", "size", "files", "here", "description"],
               [(t.name, t.kind, t.md5, _size(t.size), t.nfiles or 1,
                 "yes" if (root / t.path).exists() else "no: dvc pull", t.description) for t in tracked])
    return 0


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def cmd_methods(args) -> int:
    from transferlab.methods import list_methods

    rows = []
    for m in list_methods():
        needs = [n for n, flag in (("target labels", m.needs_target_labels),
                                   ("unlabelled target", m.needs_unlabelled_target),
                                   ("source data", m.uses_source)) if flag]
        optional = "unlabelled target" if m.uses_unlabelled_target and not m.needs_unlabelled_target else ""
        road = "same classes" if m.shared_label_space else "new classes" if m.new_task_only else "either"
        rows.append((m.name, ", ".join(needs) or "-", optional or "-", road, m.description))
    _table(["method", "needs", "also uses", "road", "description"], rows)
    return 0


def cmd_similarity(args) -> int:
    from tasks.standalone import similarity_table

    _table(["measure", "value"], similarity_table(args.source, args.target, source_path=args.source_path,
                                                  target_path=args.target_path, image_size=args.image_size,
                                                  permutations=args.permutations, max_samples=args.max_samples,
                                                  seed=args.seed))
    return 0


def _table(header: list[str], rows: list[tuple]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format(*header))
    print(fmt.format(*("-" * w for w in widths)))
    for row in rows:
        print(fmt.format(*map(str, row)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transferlab",
        description="Transfer learning with evidence: pretrain on a labelled source domain, measure how far the "
                    "target domain is (MMD with a permutation test), select a transfer method, adapt, and prove "
                    "on held-out target data whether transfer helped. Parameters live in params.yaml; the stage "
                    "DAG in dvc.yaml; runs and model versions in MLflow (sqlite:///mlflow.db).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the whole pipeline as the Prefect flow 'transfer-pipeline'",
                       description="Run every dvc.yaml stage in order as a Prefect flow (temporary Prefect server "
                                   "unless PREFECT_API_URL is set). Up-to-date stages are skipped, exactly as "
                                   "`dvc repro` would; afterwards `dvc status` is clean.")
    p.add_argument("--project", default=".", help="project folder holding dvc.yaml and params.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a parameter (dotted key, YAML value) and write it into params.yaml; repeatable")
    p.add_argument("--wait", action="store_true", help="if another run holds the project, wait for it instead "
                                                       "of refusing")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("repair", help="put right what a killed run left (damaged dvc.lock, temporary folders, "
                                      "MLflow runs left RUNNING); every run does this when it starts")
    p.add_argument("--project", default=".")
    p.set_defaults(func=cmd_repair)

    p = sub.add_parser("serve", help="serve the flow as a deployment, triggerable with parameters from the Prefect UI")
    p.add_argument("--project", default=".")
    p.add_argument("--name", default="transfer-pipeline", help="deployment name")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("stage", help="run one stage (what dvc.yaml calls)")
    p.add_argument("name", help="prepare | validate | pretrain | similarity | select | adapt | evaluate")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=cmd_stage)

    p = sub.add_parser("datasets", help="list the datasets (built in and tracked by DVC); `datasets add` tracks yours",
                       description="Without arguments: list the registry and the project's DVC-tracked datasets. "
                                   "`datasets add NAME PATH`: copy PATH (an .npz, an ImageFolder tree, MNIST IDX or "
                                   "USPS files) into data/raw/NAME, track it with `dvc add`, and let params name it.")
    p.add_argument("action", nargs="?", choices=["list", "add"], default="list")
    p.add_argument("name", nargs="?", help="add: the dataset's name in params (lower case, digits, . _ -)")
    p.add_argument("path", nargs="?", help="add: the file or folder to bring in")
    p.add_argument("--kind", choices=["npz", "imagefolder", "mnist", "usps"], help="add: the format (default: inferred)")
    p.add_argument("--description", help="add: shown by `transferlab datasets`")
    p.add_argument("--project", default=".", help="project folder (holding .dvc and data/raw)")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("methods", help="list every registered transfer method and the data it needs")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("similarity", help="measure the distance between two datasets without the pipeline")
    p.add_argument("--source", required=True, help="dataset name (see `transferlab datasets`)")
    p.add_argument("--target", required=True)
    p.add_argument("--source-path", default=None)
    p.add_argument("--target-path", default=None)
    p.add_argument("--image-size", type=int, default=28)
    p.add_argument("--permutations", type=int, default=200)
    p.add_argument("--max-samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_similarity)
    return parser


def main(argv: list[str] | None = None) -> int:
    for key, value in DEFAULT_ENV.items():
        os.environ.setdefault(key, value)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "datasets" and args.action == "add" and not (args.name and args.path):
        parser.error("datasets add needs NAME and PATH")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        interrupts.caught()
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure ends in one line; a bug's traceback goes to a file
        from flows.failure import describe

        line, code = describe(exc, Path(getattr(args, "project", ".")))
        print(line, file=sys.stderr)
        return code


def entry() -> None:
    """The console script. After the command, run the exit handlers (Prefect stops its temporary
    server, MLflow and logging flush) and leave without tearing the interpreter down: with torch,
    MLflow and Prefect loaded that teardown frees nothing anyone needs and takes seconds (measured
    1 s for torch alone, 5 s after a pipeline run on 2 cores)."""
    import atexit

    interrupts.install()
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    server_alive = _stop_temporary_server()
    # What the interpreter does at exit before tearing down, in its order: thread-exit hooks
    # (Prefect drains its log and event queues there, pointless once its server died) and joining
    # threads, then atexit hooks.
    if server_alive:
        threading._shutdown()
        atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
