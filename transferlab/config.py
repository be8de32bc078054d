"""Typed pipeline parameters: the one config type behind params.yaml, the CLI, Prefect and Python.

Unknown keys and bad values are errors that name the key (``data.target.name: ...``).

Imports marked ``code-deps: schema`` bring in the schemas of sections; they are not followed when
dvc.yaml's code deps are derived (:mod:`flows.code_deps`): a schema decides whether params load, not
what a stage writes, and every stage that reads a section imports that section's package itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator,
                      model_validator)

from transferlab.data import DomainSpec  # code-deps: schema
from transferlab.errors import ConfigError
from transferlab.seed import Seed
from transferlab.models import ModelSpec  # code-deps: schema
from transferlab.selection import SelectionConfig  # code-deps: schema
from transferlab.training.augment import AugmentSpec, Strength  # code-deps: schema
from transferlab.transitive import SelfTrainingConfig  # code-deps: schema


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IntermediateSpec(DomainSpec):
    """A candidate intermediate domain: a dataset spec like ``data.target``'s, read as an unlabelled
    pool. Its labels are never read, so nothing that needs them is allowed (``classes``), and
    ``max_samples`` draws a seeded random subsample, not a stratified one."""

    @model_validator(mode="after")
    def _unlabelled(self) -> "IntermediateSpec":
        if self.classes is not None:
            raise ValueError("an intermediate domain is an unlabelled pool (its labels are never read), so it "
                             "cannot keep only some classes: remove 'classes'")
        return self


IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class PretrainedModel(_Strict):
    """A trained model to start from: pretrain imports it (hashes, records, registers) instead of
    training one. Nothing is downloaded.

    - ``kind: registry``: a version in this project's MLflow registry, ``uri`` as
      ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` (resolved when pretrain runs);
    - ``kind: folder``: ``path`` to a folder in transferlab's safe format (model.safetensors +
      model.json, e.g. a ``models/source`` of an earlier run);
    - ``kind: torchvision``: ``arch`` (resnet18/34/50, mobilenet_v3_small/large, efficientnet_b0)
      and ``path`` to a state-dict file (.pth/.pt, loaded with weights_only, or .safetensors).
    """

    kind: Literal["registry", "folder", "torchvision"]
    uri: str | None = Field(None, pattern=r"^models:/[^/@]+(/\d+|@[A-Za-z0-9_-]+)$")
    path: str | None = None
    arch: Literal["resnet18", "resnet34", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large",
                  "efficientnet_b0"] | None = None
    classes: list[str] | None = Field(
        None, description="torchvision: names of the network's outputs, in order; without them the outputs are "
                          "nobody's classes and the target is always a new task")
    image_size: int | None = Field(None, ge=16, le=1024,
                                   description="torchvision: side length the network sees (default data.image_size)")
    mean: list[float] = Field(IMAGENET_MEAN, min_length=1, max_length=3,
                              description="torchvision: input normalisation (ImageNet's by default)")
    std: list[float] = Field(IMAGENET_STD, min_length=1, max_length=3)

    @model_validator(mode="after")
    def _fields_of_kind(self) -> "PretrainedModel":
        need = {"registry": ("uri",), "folder": ("path",), "torchvision": ("arch", "path")}[self.kind]
        for key in need:
            if getattr(self, key) is None:
                raise ValueError(f"kind '{self.kind}' needs '{key}'")
        extra = [k for k in ("uri", "path", "arch") if k not in need and getattr(self, k) is not None]
        if extra:
            raise ValueError(f"kind '{self.kind}' does not take '{extra[0]}'")
        return self


class SourceModelCandidate(_Strict):
    """A candidate source that is a trained model without its data (``data.sources``): pretrain
    imports it as ``model.pretrained`` would be, similarity ranks it with the others, and a run
    that picks it adapts source-free. ``name``: how reports call it (default from the model's path or URI)."""

    model: PretrainedModel
    name: str | None = Field(None, min_length=1, max_length=80)


_DATASET_TAG, _MODEL_TAG = "<dataset>", "<model>"  # left out of error paths


def _candidate_kind(value: Any) -> str:
    is_model = isinstance(value, SourceModelCandidate) or (isinstance(value, dict) and "model" in value)
    return _MODEL_TAG if is_model else _DATASET_TAG


# One form per entry, told apart by the 'model' key, so that an error names the form the entry meant.
SourceCandidateSpec = Annotated[Union[Annotated[DomainSpec, Tag(_DATASET_TAG)],
                                      Annotated[SourceModelCandidate, Tag(_MODEL_TAG)]], Discriminator(_candidate_kind)]


class DataParams(_Strict):
    source: DomainSpec | None = Field(
        DomainSpec(name="mnist5k"), description="the labelled source data; null when only a model is given "
                                                "(model.pretrained): source-free transfer")
    sources: list[SourceCandidateSpec] | None = Field(
        None, min_length=2, max_length=16,
        description="several candidate sources instead of data.source: datasets (each is prepared and gets its own "
                    "source model) and/or trained models ({model: {kind, path|uri, ...}}, imported without data); "
                    "similarity ranks them against the target and select picks the best "
                    "(transferlab.similarity.sources)")
    target: DomainSpec = DomainSpec(name="uci-digits")
    intermediate: list[IntermediateSpec] = Field(
        default_factory=list, max_length=8,
        description="candidate stepping stones between source and target (unlabelled pools); empty: direct only")
    image_size: int = Field(28, ge=8, le=512, description="common side length of both domains")
    channels: Literal[1, 3] = 1
    source_val_fraction: float = Field(0.15, gt=0, lt=1)
    target_labels_per_class: int = Field(0, ge=0, description="k labelled target samples per class")
    target_test_fraction: float = Field(0.3, gt=0, lt=1)
    attributes: str | None = Field(
        None, min_length=1, description="a class–attribute table: 'builtin:digits' or a CSV path "
                                        "(class,attr1,...); with new target classes and "
                                        "target_labels_per_class 0 the run is zero-shot transfer")

    @model_validator(mode="after")
    def _one_source_form(self) -> "DataParams":
        if self.sources is None:
            return self
        if "source" in self.model_fields_set and self.source is not None:
            raise ValueError("data.source and data.sources are both set: keep one (data.sources lists every "
                             "candidate source; set data.source to null)")
        self.source = None  # the candidates replace the single source's default
        for i, spec in enumerate(self.sources):
            if spec in self.sources[:i]:
                raise ValueError(f"data.sources[{i}] repeats data.sources[{self.sources.index(spec)}]")
        return self

    def candidate_sources(self) -> list[DomainSpec]:
        """The source datasets: the dataset candidates of data.sources, or data.source alone (or none)."""
        if self.sources is not None:
            return [s for s in self.sources if isinstance(s, DomainSpec)]
        return [s for s in [self.source] if s is not None]


class ModelParams(_Strict):
    arch: Literal["lenet", "lenet-bn", "resnet18", "mlp", "tv-resnet18", "tv-resnet34", "tv-resnet50",
                  "tv-mobilenet_v3_small", "tv-mobilenet_v3_large", "tv-efficientnet_b0"] = "lenet"
    hidden: int = Field(500, ge=8)
    pretrained: PretrainedModel | None = Field(
        None, description="start from this trained model instead of training one on data.source")

    def spec(self, *, in_channels: int, image_size: int, input_dim: int | None, num_classes: int) -> ModelSpec:
        return ModelSpec(arch=self.arch, hidden=self.hidden, in_channels=in_channels,
                         image_size=image_size, input_dim=input_dim, num_classes=num_classes)


class TrainParams(_Strict):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(5e-4, ge=0)
    patience: int = Field(3, ge=1)
    max_steps_per_epoch: int | None = Field(None, ge=1)
    lr_schedule: Literal["constant", "annealed"] = "constant"
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="pretrain: cross-entropy to (1 - ε) one-hot + "
                                                                 "ε / K targets (SHOT's source recipe: 0.1)")
    augment: Strength = Field("none", description="per-sample augmentation of the supervised batches: none | "
                                                  "weak | strong (transferlab.training.augment)")
    augmentation: AugmentSpec = Field(default_factory=AugmentSpec)
    attribute_weight: float = Field(1.0, ge=0, description="pretrain with data.attributes: weight β of the "
                                                            "attribute BCE (seen classes' rows) beside the "
                                                            "cross-entropy; 0: no attribute head")


class SimilarityParams(_Strict):
    permutations: int = Field(200, ge=10)
    max_samples: int = Field(1000, ge=20, description="per domain, seeded stratified subsample")
    estimator: Literal["auto", "quadratic", "linear"] = "auto"
    alpha: float = Field(0.05, gt=0, lt=1)
    bootstrap: int = Field(0, ge=0, description="0: asymptotic CI of MMD²; >0: percentile bootstrap resamples")
    dtype: Literal["float64", "float32"] = "float64"
    plots: bool = True


class SelectParams(SelectionConfig):
    """The selection policy (rule thresholds, trial budget; see transferlab.selection) plus how many
    trials may run at once."""

    workers: int = Field(1, ge=1, le=16, description="trials run in parallel threads of this process; they share torch's global "
                                                    "random generator, so with workers > 1 a trial's numbers can differ from a serial run's "
                                                    "(execution.runner: dask gives the serial result in parallel)")


class AdaptParams(_Strict):
    train: TrainParams = TrainParams()
    methods: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="hyperparameters per method name, e.g. {dann: {trade_off: 1.0}}"
    )
    self_training: SelfTrainingConfig = Field(
        default_factory=SelfTrainingConfig,
        description="the hops of transitive transfer with select.transitive.hop_method 'self-training'")
    seeds: list[Seed] | None = Field(
        None, min_length=1, max_length=20,
        description="training seeds for the chosen method and the trained baselines (default: [seed]); "
                    "evaluate reports mean ± std over them; the first seed's model is the one registered")

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, v):
        if v is not None and len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct, got {v}")
        return v


class EvaluateParams(_Strict):
    bootstrap: int = Field(1000, ge=100)
    confidence: float = Field(0.95, gt=0.5, lt=1)
    audit: bool = Field(False, description="oracle audit: also train every other eligible candidate of the "
                                           "selection and score it on the test split (selection regret)")
    # At least a tenth, so that the promotion verdict rests on some samples; at most half, so that the
    # reported numbers keep the larger part.
    promotion_share: float = Field(0.3, ge=0.1, le=0.5,
                                   description="share of the target test split (per class, seeded by the split's "
                                               "hash) held out for the champion contest only; accuracy, gain and "
                                               "verdict are reported on the rest")


class MlflowParams(_Strict):
    experiment: str = Field("transferlab", min_length=1, max_length=200)
    model_prefix: str = Field("transferlab", pattern=r"^[A-Za-z0-9_.-]+$")
    register_models: bool = True


class DistributedParams(_Strict):
    """One training run across processes (DDP through torchrun; transferlab.training.distributed): the
    pretrain stage and adapt's training. 1: one process, exactly as without this section."""

    processes: int = Field(1, ge=1, le=64, description="processes of one training run (one per GPU with CUDA); "
                                                        "the global batch (batch_size) is split evenly over them")
    backend: Literal["auto", "gloo", "nccl"] = Field(
        "auto", description="torch.distributed backend; auto: nccl when training on CUDA, gloo on the CPU")


class ExecutionParams(_Strict):
    """Where a stage's independent jobs (selection trials, adapt's seeds, the oracle audit's candidates)
    run. ``local``: in this process, as always (trials in ``select.workers`` threads). ``dask``: each
    job a Prefect task run on the Dask workers of a scheduler at ``address``, or of a LocalCluster of
    ``n_workers`` processes (one thread each) started for the stage. The results do not depend on it."""

    runner: Literal["local", "dask"] = "local"
    address: str | None = Field(
        None, pattern=r"^(tcp|tls|inproc|ucx)://\S+$",
        description="dask: an existing scheduler (tcp://host:8786); null starts a LocalCluster")
    n_workers: int = Field(2, ge=1, le=256, description="dask without address: LocalCluster worker processes")
    task_retries: int = Field(2, ge=0, le=10, description="dask: times a job whose task or worker died is "
                                                          "run again before the stage fails")

    @model_validator(mode="after")
    def _dask_only(self) -> "ExecutionParams":
        if self.runner == "local" and self.address is not None:
            raise ValueError("address is an existing Dask scheduler: it needs runner: dask")
        return self


class PipelineParams(_Strict):
    seed: Seed = 0
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    distributed: DistributedParams = DistributedParams()
    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
    pretrain: TrainParams = TrainParams()
    similarity: SimilarityParams = SimilarityParams()
    select: SelectParams = SelectParams()
    adapt: AdaptParams = AdaptParams()
    evaluate: EvaluateParams = EvaluateParams()
    mlflow: MlflowParams = MlflowParams()
    execution: ExecutionParams = ExecutionParams()

    @model_validator(mode="after")
    def _something_to_transfer_from(self) -> "PipelineParams":
        if self.data.sources is not None:
            if self.model.pretrained is not None:
                raise ValueError("data.sources and model.pretrained are both set: list the given model among the "
                                 "candidates instead ({model: {kind: ..., path: ...}}) and remove model.pretrained")
            return self
        if self.data.source is None and self.model.pretrained is None:
            raise ValueError("data.source is null and model.pretrained is not set: there is nothing to transfer from")
        return self

    @model_validator(mode="after")
    def _batches_split_over_processes(self) -> "PipelineParams":
        n = self.distributed.processes
        if self.distributed.backend == "nccl" and self.device == "cpu":
            raise ValueError("distributed.backend 'nccl' needs device 'cuda' (or 'auto' on a GPU machine); "
                             "use 'gloo' or 'auto' on the CPU")
        if n > 1 and self.data.sources is not None:
            raise ValueError("data.sources pretrains one model per candidate in one process: set "
                             "distributed.processes: 1")
        for key, train in (("pretrain", self.pretrain), ("adapt.train", self.adapt.train)):
            if train.batch_size % n:
                raise ValueError(f"{key}.batch_size {train.batch_size} does not split evenly over "
                                 f"distributed.processes {n}: make it a multiple of {n}")
        return self

    @model_validator(mode="after")
    def _known_methods(self) -> "PipelineParams":
        from transferlab.methods import get_method  # code-deps: schema
        from transferlab.selection.transitive import can_hop  # code-deps: schema

        names = set(self.adapt.methods) | set(self.select.candidates or [])
        if self.select.force_method:
            names.add(self.select.force_method)
        names.add(self.select.unsupervised_method)
        for name in sorted(names):
            get_method(name)
        for key, name in [("select.unsupervised_method", self.select.unsupervised_method),
                          *(("select.candidates", c) for c in self.select.candidates or [])]:
            if get_method(name).composite:
                raise ValueError(f"{key}: '{name}' is not a candidate of its own: trial mode builds it from the "
                                 "finalists when the validators disagree (select.ensemble)")
        if self.select.force_method and get_method(self.select.force_method).composite:
            force = self.select.force_method  # its members are hyperparameters: it cannot run without them
            get_method(force).make_config(self.adapt.methods.get(force, {}), where=f"adapt.methods.{force}")
        hop = self.select.transitive.hop_method
        if hop is not None and not can_hop(hop):
            raise ValueError(f"select.transitive.hop_method: '{hop}' does not adapt to unlabelled data, so it "
                             "cannot make a hop into an unlabelled pool: use 'self-training' or a label-free "
                             "method (dann, cdan, dan, deep-coral, mcc, adamatch, shot, ...)")
        # Every written hyperparameter is checked now, not when (or if) its method trains.
        for name, config in sorted(self.adapt.methods.items()):
            get_method(name).make_config(config, where=f"adapt.methods.{name}")
        return self


def _describe(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"] if p not in (_DATASET_TAG, _MODEL_TAG)) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{where}'"
    return f"{source}: {where}: {first['msg'].removeprefix('Value error, ')}"


def parse_params(raw: dict[str, Any], source: str = "params") -> PipelineParams:
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{source} must be a mapping of sections (seed, data, model, ...), "
                          f"not a {type(raw).__name__}")
    try:
        return PipelineParams.model_validate(raw or {})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


def load_params(path: str | Path = "params.yaml", overrides: dict[str, Any] | None = None) -> PipelineParams:
    """Read ``path``; ``overrides`` are dotted keys (``{"data.target.name": "usps"}``) applied on top."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"parameter file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({exc.__class__.__name__})") from None
    for key, value in (overrides or {}).items():
        set_dotted(raw, key, value)
    return parse_params(raw, str(path))


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set '{key}': '{part}' is not a section")
    node[parts[-1]] = value
