"""Networks: a classifier is a stack of named feature blocks followed by a linear head."""

from transferlab.models.backbones import build_torchvision, load_torchvision_weights, torchvision_state_dict
from transferlab.models.classifier import Classifier, ModelSpec, build_model
from transferlab.models.imports import import_folder, import_torchvision, read_state_dict
from transferlab.models.io import load_model, save_model

__all__ = ["Classifier", "ModelSpec", "build_model", "build_torchvision", "import_folder", "import_torchvision",
           "load_model", "load_torchvision_weights", "read_state_dict", "save_model", "torchvision_state_dict"]
