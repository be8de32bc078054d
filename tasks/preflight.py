"""What can be checked before any stage writes anything: the machine, the data the params name, and
whether the methods the params force can run on the label budget they set.

The schema (:mod:`transferlab.config`) already refused bad values by key; this adds what needs the
machine or the project: a GPU for ``device: cuda``, each dataset's name and path, the imported
model's file, a forced method's needs, and that a shared MLflow store's experiment and model names
are not another project's. ``transferlab run`` calls it before the flow starts, the
flow before it writes overrides into params.yaml, and every stage before it runs (``dvc repro``), so
a run that cannot succeed fails in one line with nothing written and nothing in MLflow.
"""

from __future__ import annotations

from pathlib import Path

from transferlab.config import PipelineParams, SourceModelCandidate
from transferlab.data import check_spec
from transferlab.errors import ConfigError
from transferlab.methods import get_method
from transferlab.training import resolve_device
from tasks import datasets, tracking


def check(params: PipelineParams, root: Path = Path(".")) -> None:
    """Raise the first problem found, as a one-line user error naming the key."""
    resolve_device(params.device)
    datasets.register_tracked(root)
    for spec in (*params.data.candidate_sources(), params.data.target):
        check_spec(spec, root)
    models = [("model.pretrained", params.model.pretrained)] + [
        (f"data.sources[{i}].model", c.model) for i, c in enumerate(params.data.sources or [])
        if isinstance(c, SourceModelCandidate)]
    for key, pretrained in models:
        if pretrained is not None and pretrained.path is not None:
            if not (Path(root) / Path(pretrained.path).expanduser()).exists():
                raise ConfigError(f"{key}.path: {pretrained.path} does not exist")
    attributes = params.data.attributes
    if attributes is not None and not attributes.startswith("builtin:") and not (Path(root) / attributes).exists():
        raise ConfigError(f"data.attributes: the attribute table {attributes} does not exist")
    _forced_method_can_run(params)
    tracking.check_ownership(root, params)


def _forced_method_can_run(params: PipelineParams) -> None:
    name = params.select.force_method
    if name is None:
        return
    method = get_method(name)
    if method.needs_target_labels and params.data.target_labels_per_class == 0:
        raise ConfigError(f"select.force_method: '{name}' needs labelled target samples, but "
                          "data.target_labels_per_class is 0: set it to 1 or more, or force a label-free method")
    if getattr(method, "needs_attributes", False) and params.data.attributes is None:
        raise ConfigError(f"select.force_method: '{name}' predicts classes through their attributes, but "
                          "data.attributes is not set: give a class–attribute table (e.g. builtin:digits)")
    if method.uses_source and not params.data.candidate_sources():
        raise ConfigError(f"select.force_method: '{name}' trains with source data, but there is none "
                          "(only source models): force a source-free method")
    if method.needs_several_sources and len(params.data.candidate_sources()) < 2:
        raise ConfigError(f"select.force_method: '{name}' trains on several candidate sources, but there is one: "
                          "list them under data.sources (and set data.source to null)")
