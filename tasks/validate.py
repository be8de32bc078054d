"""validate: Great Expectations over per-sample metadata of every prepared split.

Each sample becomes one row (domain, split, label, shape, value range, non-finite count, content
hash). Critical expectations stop the pipeline with a message naming the expectation and the
domain; warnings are reported only. The target test split is read for integrity checks alone:
nothing but the pass/fail verdict leaves this stage.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.config import PipelineParams
from transferlab.data import DOMAIN_ADAPTATION, Domain
from transferlab.data.lazy import chunks
from transferlab.errors import DataError
from tasks import timing, tracking
from tasks.data_files import source_splits, target_splits, target_test
from tasks.io import read_json, write_json
from tasks.paths import CANDIDATES, MANIFEST, PREPARED_SOURCE, PREPARED_TARGET, PREPARED_TEST, VALIDATION

NAME = "validate"
DEPS = [PREPARED_SOURCE, PREPARED_TARGET, PREPARED_TEST]


def sample_metadata(domain: Domain, role: str, split: str) -> pd.DataFrame:
    """One row per sample, computed a chunk of rows at a time (a lazy domain is read once, never whole)."""
    n = len(domain)
    vmin, vmax, nonfinite = np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.int64)
    hashes: list[str] = []
    for start, rows in chunks(domain.x):
        flat = np.asarray(rows).reshape(len(rows), -1)
        finite = np.isfinite(flat)
        safe = np.where(finite, flat, 0.0)
        if flat.size:
            vmin[start:start + len(rows)], vmax[start:start + len(rows)] = safe.min(axis=1), safe.max(axis=1)
        nonfinite[start:start + len(rows)] = (~finite).sum(axis=1)
        hashes += [hashlib.blake2b(row.tobytes(), digest_size=12).hexdigest() for row in flat]
    return pd.DataFrame({
        "domain": role,
        "split": split,
        "label": domain.y,
        "shape": ["x".join(map(str, domain.x.shape[1:]))] * n,
        "vmin": vmin,
        "vmax": vmax,
        "n_nonfinite": nonfinite,
        "hash": hashes,
    })


def _expectations(gx, frame: pd.DataFrame, classes: list[str], shape: str, is_image: bool) -> list:
    E = gx.expectations
    labels = list(range(len(classes)))
    exps = [
        E.ExpectColumnValuesToBeInSet(column="label", value_set=labels, severity="critical",
                                      meta={"what": "labels lie in the declared class set"}),
        E.ExpectColumnValuesToBeInSet(column="shape", value_set=[shape], severity="critical",
                                      meta={"what": "every sample has the common shape"}),
        E.ExpectColumnValuesToBeBetween(column="n_nonfinite", min_value=0, max_value=0, severity="critical",
                                        meta={"what": "no NaN or infinite values"}),
        E.ExpectColumnValuesToNotBeNull(column="label", severity="critical", meta={"what": "every sample has a label"}),
        E.ExpectColumnValuesToBeUnique(column="cross_split_hash", severity="critical",
                                       meta={"what": "no sample appears in two splits that must be disjoint"}),
        E.ExpectTableRowCountToBeBetween(min_value=1, severity="critical", meta={"what": "the domain is not empty"}),
    ]
    if is_image:
        exps += [
            E.ExpectColumnValuesToBeBetween(column="vmin", min_value=0.0, max_value=1.0, severity="critical",
                                            meta={"what": "pixel values lie in [0, 1]"}),
            E.ExpectColumnValuesToBeBetween(column="vmax", min_value=0.0, max_value=1.0, severity="critical",
                                            meta={"what": "pixel values lie in [0, 1]"}),
        ]
    exps.append(E.ExpectColumnDistinctValuesToContainSet(
        column="label", value_set=labels, severity="warning",
        meta={"what": "every class is present in the domain"}))
    return exps


def _guarded_hashes(frame: pd.DataFrame, disjoint_from: dict[str, set[str]]) -> pd.Series:
    """A column that repeats exactly when a sample of a guarded split also occurs in a split it must be
    disjoint from (duplicates inside one split, or between the labelled and unlabelled pools, are fine)."""
    out = frame["split"] + ":" + frame.index.astype(str)
    for split, others in disjoint_from.items():
        mine = frame["split"] == split
        other_hashes = set(frame.loc[frame["split"].isin(others), "hash"])
        clash = mine & frame["hash"].isin(other_hashes)
        out[clash] = "dup:" + frame.loc[clash, "hash"]
        rivals = frame["split"].isin(others) & frame["hash"].isin(set(frame.loc[clash, "hash"]))
        out[rivals] = "dup:" + frame.loc[rivals, "hash"]
    return out


def run(params: PipelineParams, root: Path = Path(".")) -> dict:
    with timing.work():
        report, n_rows = _validate(root)
    report_path = root / VALIDATION
    write_json(report_path, report)
    report_path.with_name("validation.failed.json").unlink(missing_ok=True)
    with tracking.stage_run(root, params, NAME, DEPS) as run_:
        run_.log_metrics({"validation_warnings": sum(d["warnings"] for d in report["domains"].values()),
                          "validation_rows": n_rows})
        run_.log_artifact(report_path)
    return {"success": True, "warnings": sum(d["warnings"] for d in report["domains"].values())}


def check_label_sets(manifests: dict, labelled: Domain | None) -> str:
    """The road's label-set rules (returns the road): one label space for domain adaptation; for a
    new task, different classes and labelled samples of every target class, or (zero-shot: no label,
    a class–attribute table) an attribute row for every class. The test split always has the
    target's classes."""
    source = manifests[PREPARED_SOURCE]["classes"]
    target = manifests[PREPARED_TARGET]["classes"]
    road = manifests[PREPARED_TARGET].get("road", DOMAIN_ADAPTATION)
    if manifests[PREPARED_TEST]["classes"] != target:
        raise DataError("the target test split declares other classes than the target's labelled and unlabelled "
                        "splits; re-run prepare")
    if road == DOMAIN_ADAPTATION and source != target:
        raise DataError("the manifests say domain adaptation but source and target declare different label sets; "
                        "re-run prepare")
    if road != DOMAIN_ADAPTATION:
        if set(source) == set(target):
            raise DataError("the manifests say task transfer but source and target have the same classes; re-run prepare")
        attributes = manifests[PREPARED_TARGET].get("attributes")
        if labelled is None and attributes is not None:  # zero-shot: the table names the classes, not labels
            missing = [c for c in (*source, *target) if c not in attributes.get("rows", {})]
            if missing:
                raise DataError(f"zero-shot transfer needs an attribute row for every class, but class "
                                f"'{missing[0]}' has none in the target manifest; re-run prepare")
            return road
        counts = labelled.class_counts() if labelled is not None else [0] * len(target)
        missing = [c for c, n in zip(target, counts) if n == 0]
        if missing:
            raise DataError(f"a new task needs labelled samples of every target class, but class "
                            f"'{missing[0]}' has none in data/prepared/target/labelled.npz")
    return road


def _source_frames(root: Path, manifest: dict) -> list[tuple[str, pd.DataFrame, dict]]:
    """(role, sample metadata, manifest) per source domain: 'source', or with several candidate
    sources 'source NAME' for each (validated alike); empty without source data."""
    names = manifest.get("candidates")
    entries = [("source", None, manifest)] if names is None else [
        (f"source {name}", i, read_json(root / PREPARED_SOURCE / CANDIDATES / str(i) / MANIFEST,
                                        f"manifest of candidate source {name}")) for i, name in enumerate(names)]
    frames = []
    for role, candidate, meta in entries:
        source = source_splits(root, candidate)
        if source is None:
            continue
        frame = pd.concat([sample_metadata(source[0], "source", "train"), sample_metadata(source[1], "source", "val")],
                          ignore_index=True)
        frame["cross_split_hash"] = _guarded_hashes(frame, {"val": {"train"}})
        frames.append((role, frame, meta))
    return frames


def _frames(root: Path) -> tuple[list, pd.DataFrame, dict, str, bool]:
    labelled, unlabelled = target_splits(root)
    test = target_test(root)
    manifests = {p: read_json(root / p / MANIFEST, f"manifest of {p}") for p in DEPS}
    road = check_label_sets(manifests, labelled)
    frame = _source_frames(root, manifests[PREPARED_SOURCE])
    target_parts = [sample_metadata(test, "target", "test")]
    target_parts += [sample_metadata(d, "target", s) for d, s in ((labelled, "labelled"), (unlabelled, "unlabelled"))
                     if d is not None]
    target = pd.concat(target_parts, ignore_index=True)
    target["cross_split_hash"] = _guarded_hashes(target, {"test": {"labelled", "unlabelled"}})
    return frame, target, manifests, road, test.is_image


def _validate(root: Path) -> tuple[dict, int]:
    source, target, manifests, road, is_image = _frames(root)
    shape = target["shape"].iloc[0]
    import great_expectations as gx  # slow import (~4 s): only this stage pays for it

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    batch = context.data_sources.add_pandas("samples").add_dataframe_asset("metadata") \
        .add_batch_definition_whole_dataframe("all")
    report: dict = {"success": True, "road": road, "domains": {}}
    failures: list[str] = []
    roles = [*source, ("target", target, manifests[PREPARED_TARGET])]
    for role, frame, manifest in roles:
        domain_name, classes = manifest["domain"], manifest["classes"]
        suite = context.suites.add(gx.ExpectationSuite(name=f"{role}-samples"))
        for exp in _expectations(gx, frame, classes, shape, is_image):
            suite.add_expectation(exp)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(data=batch, suite=suite, name=f"{role}-validation"))
        result = definition.run(batch_parameters={"dataframe": frame})
        rows = []
        for item in result.results:
            cfg = item.expectation_config
            severity = str(getattr(cfg, "severity", "critical")).split(".")[-1].lower()
            rows.append({"expectation": cfg.type, "column": cfg.kwargs.get("column"), "what": cfg.meta.get("what"),
                         "severity": severity, "success": bool(item.success),
                         "unexpected_count": item.result.get("unexpected_count"),
                         "examples": [str(v) for v in (item.result.get("partial_unexpected_list") or [])[:5]]})
            if not item.success and severity == "critical":
                failures.append(f"{cfg.type} failed on the {role} domain '{domain_name}' ({cfg.meta.get('what')}; "
                                f"{item.result.get('unexpected_count', 'some')} unexpected)")
        report["domains"][role] = {"name": domain_name, "rows": len(frame), "expectations": rows,
                                   "critical_failures": sum(1 for r in rows if r["severity"] == "critical" and not r["success"]),
                                   "warnings": sum(1 for r in rows if r["severity"] != "critical" and not r["success"])}
    if not source:
        report["domains"]["source"] = {"name": None, "rows": 0, "expectations": [], "critical_failures": 0,
                                       "warnings": 0, "note": "no source data: only a source model"}
    report["success"] = not failures
    report["failures"] = failures
    report_path = root / VALIDATION
    if failures:
        # The full result stays beside the verdict for inspection, under a name DVC does not track.
        write_json(report_path.with_name("validation.failed.json"), report)
        raise DataError(failures[0] + f"; full report in {report_path.with_name('validation.failed.json')}")
    return report, sum(len(frame) for _, frame, _ in source) + len(target)
