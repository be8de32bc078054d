"""Networks: a classifier is a stack of named feature blocks followed by a linear head."""

from transferlab.models.classifier import Classifier, ModelSpec, build_model
from transferlab.models.io import load_model, save_model

__all__ = ["Classifier", "ModelSpec", "build_model", "load_model", "save_model"]
