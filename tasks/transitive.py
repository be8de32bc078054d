"""adapt's road through intermediate domains: run the hops select chose, record each one.

Every hop is a nested MLflow run under adapt's stage run (its training curve, the domain it adapted
to). Each hop into an intermediate pool registers its model as a new version of
``{mlflow.model_prefix}-hop``; the last hop, into the target, is the adapted model, registered by
adapt as usual. Lineage tags link the versions: ``transferlab.chain.parent`` names the version a
hop started from (the source model's for the first), ``transferlab.chain.hop`` is "i/n", and the
adapted version carries the whole chain in ``transferlab.chain``.
"""

from __future__ import annotations

from pathlib import Path

import mlflow

from tasks import tracking
from tasks.common import epoch_logger, input_example
from tasks.io import read_json
from tasks.paths import MANIFEST, SOURCE_MODEL
from transferlab.config import PipelineParams
from transferlab.data.adaptation import AdaptationData
from transferlab.transitive import (
    HopResult,
    SelfTrainingConfig,
    adapt_in_hops,
    self_train,
)

HOP_ROLE = "hop"


def source_version(params: PipelineParams, root: Path) -> str:
    """The registered source model the chain starts from, as NAME/VERSION (or the folder when unregistered)."""
    version = read_json(Path(root) / SOURCE_MODEL / MANIFEST, "the source model's manifest").get("mlflow_version")
    name = tracking.model_name(params.mlflow.model_prefix, "source")
    return f"{name}/{version}" if version is not None else str(SOURCE_MODEL)


def _hop_data(data: AdaptationData, pool) -> AdaptationData:
    """What a hop into an intermediate pool trains on: the labelled source (for methods that use it)
    and the pool as the unlabelled target; no target sample of any split."""
    return AdaptationData(source_train=data.source_train, source_val=data.source_val, target_unlabelled=pool,
                          source_classes=data.source_classes)


def run_chain(params: PipelineParams, root: Path, choice: dict, source_model, data: AdaptationData, settings,
              fit_method, pools: dict, run_=None) -> tuple[list[HopResult], dict]:
    """The hops of ``choice`` (selection.json's ``transitive``) from ``source_model`` through ``pools``
    (:func:`tasks.intermediate.read_pools`, read once for every seed); with ``run_`` (adapt's stage run,
    first seed) each is recorded as a nested run, intermediate hops registered.
    Returns the hops and the lineage tags for the adapted model's version."""
    chain, method = list(choice["chain"]), choice["hop_method"]
    domains = [*chain, "target"]
    raw = choice.get("hop_params") or {}

    def hop(model, index: int, name: str):
        last = index == len(domains) - 1
        log = epoch_logger(run_, f"hop{index + 1}.") if run_ is not None else None
        if method == "self-training":
            pool = data.target_unlabelled if last else pools[name]
            return self_train(model, pool, SelfTrainingConfig(**raw), settings, log=log)
        return fit_method(method, raw, model, data if last else _hop_data(data, pools[name]), settings, log=log)

    recorder = _Recorder(params, root, run_, len(domains), method, data) if run_ is not None else None
    hops = adapt_in_hops(source_model, domains, hop, on_hop=recorder)
    return hops, (recorder.adapted_tags() if recorder else {})


class _Recorder:
    """Records each hop as a nested run; registers the intermediate hops' models."""

    def __init__(self, params: PipelineParams, root: Path, run_, n_hops: int, method: str, data):
        self.params, self.run_, self.n_hops, self.method, self.data = params, run_, n_hops, method, data
        self.parent = source_version(params, root)
        self.versions = [self.parent]

    def __call__(self, hop: HopResult) -> None:
        last = hop.index == self.n_hops - 1
        tags = {"transferlab.role": HOP_ROLE, "transferlab.chain.hop": f"{hop.index + 1}/{self.n_hops}",
                "transferlab.chain.domain": hop.domain, "transferlab.chain.parent": self.parent,
                "method": self.method, "checkpoint_criterion": hop.result.checkpoint_criterion}
        with mlflow.start_run(run_name=f"hop {hop.index + 1}/{self.n_hops} → {hop.domain}", nested=True,
                              tags={**self.run_.lineage, **tags}) as child:
            mlflow.log_metrics({"best_epoch": hop.result.best_epoch, "epochs_run": len(hop.result.history)})
            for step, epoch in enumerate(hop.result.history, start=1):
                mlflow.log_metrics({k: float(v) for k, v in epoch.items() if isinstance(v, (int, float))}, step=step)
            if last:
                mlflow.set_tag("transferlab.chain.registered_as", "the adapted model (adapt's stage run)")
                return
            if not self.params.mlflow.register_models:
                return
            name = tracking.model_name(self.params.mlflow.model_prefix, HOP_ROLE)
            example = input_example(self.data.source_train, self.data.target_unlabelled, self.data.target_labelled)
            version = self.run_.register_model(hop.result.model, name, example,
                                               {**tags, "role": HOP_ROLE, "run_id": child.info.run_id,
                                                tracking.STAGE_RUN_TAG: self.run_.run_id})
        self.parent = f"{name}/{version}"
        self.versions.append(self.parent)

    def adapted_tags(self) -> dict:
        return {"transferlab.chain.parent": self.parent, "transferlab.chain.hop": f"{self.n_hops}/{self.n_hops}",
                "transferlab.chain": " > ".join([*self.versions, "adapted (target)"]),
                "transferlab.chain.method": self.method}
