"""Typed pipeline parameters: the one config type behind params.yaml, the CLI, Prefect and Python.

Unknown keys and bad values are errors that name the key (``data.target.name: ...``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from transferlab.data import DomainSpec
from transferlab.errors import ConfigError
from transferlab.models import ModelSpec
from transferlab.selection import SelectionConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataParams(_Strict):
    source: DomainSpec = DomainSpec(name="mnist5k")
    target: DomainSpec = DomainSpec(name="uci-digits")
    image_size: int = Field(28, ge=8, le=512, description="common side length of both domains")
    channels: Literal[1, 3] = 1
    source_val_fraction: float = Field(0.15, gt=0, lt=1)
    target_labels_per_class: int = Field(0, ge=0, description="k labelled target samples per class")
    target_test_fraction: float = Field(0.3, gt=0, lt=1)


class ModelParams(_Strict):
    arch: Literal["lenet", "resnet18", "mlp"] = "lenet"
    hidden: int = Field(500, ge=8)

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

    workers: int = Field(1, ge=1, le=16, description="trials run in parallel (threads)")


class AdaptParams(_Strict):
    train: TrainParams = TrainParams()
    methods: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="hyperparameters per method name, e.g. {dann: {trade_off: 1.0}}"
    )
    seeds: list[int] | None = Field(
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


class MlflowParams(_Strict):
    experiment: str = "transferlab"
    model_prefix: str = Field("transferlab", pattern=r"^[A-Za-z0-9_.-]+$")
    register_models: bool = True


class PipelineParams(_Strict):
    seed: int = Field(0, ge=0)
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
    pretrain: TrainParams = TrainParams()
    similarity: SimilarityParams = SimilarityParams()
    select: SelectParams = SelectParams()
    adapt: AdaptParams = AdaptParams()
    evaluate: EvaluateParams = EvaluateParams()
    mlflow: MlflowParams = MlflowParams()

    @model_validator(mode="after")
    def _known_methods(self) -> "PipelineParams":
        from transferlab.methods import get_method

        names = set(self.adapt.methods) | set(self.select.candidates or [])
        if self.select.force_method:
            names.add(self.select.force_method)
        names.add(self.select.unsupervised_method)
        for name in sorted(names):
            get_method(name)
        return self


def _describe(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{where}'"
    return f"{source}: {where}: {first['msg']}"


def parse_params(raw: dict[str, Any], source: str = "params") -> PipelineParams:
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
