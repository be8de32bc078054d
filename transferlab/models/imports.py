"""Importing a network the user already has, from a local file: nothing is downloaded, nothing unpickled.

Two sources: a torchvision state dict (``.safetensors``, or a torch file read with
``weights_only=True``, so a file cannot run code when it is loaded) for one of the supported
architectures, or a folder in transferlab's own safe format. Every way such a file can be wrong
is the user's to fix, so each is one DataError sentence naming the file and, for weights, the key.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from transferlab.errors import ConfigError, DataError
from transferlab.models.backbones import PREFIX, head_key, load_torchvision_weights
from transferlab.models.classifier import TORCHVISION_ARCHS, Classifier, ModelSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SUPPORTED = tuple(arch.removeprefix(PREFIX) for arch in TORCHVISION_ARCHS)


def _load_torch(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise DataError(f"{path} is not a torch or safetensors weights file (unpickling failed)") from None
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        what = f" (it pickles {found.group(1)}; save model.state_dict() instead)" if found else ""
        raise DataError(f"{path} is not a plain state dict: weights_only loading refused it{what}") from None
    except Exception as exc:  # noqa: BLE001 - a non-torch file meets KeyError, EOFError, RuntimeError...
        raise DataError(f"{path} is not a torch or safetensors weights file ({type(exc).__name__} "
                        "while reading it)") from None


def _load_safetensors(path: Path) -> object:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own SafetensorError (a bare Exception)
        raise DataError(f"{path} is not a readable safetensors file ({type(exc).__name__})") from None


def _as_state_dict(loaded: object, path: Path) -> dict[str, torch.Tensor]:
    """A plain state dict, or the one a training checkpoint keeps under "state_dict" or "model"."""
    if isinstance(loaded, Mapping):
        for entry in ("state_dict", "model"):
            if isinstance(loaded.get(entry), Mapping):
                loaded = loaded[entry]
                break
    if not isinstance(loaded, Mapping):
        raise DataError(f"{path} holds a {type(loaded).__name__}, not a state dict (parameter names to tensors)")
    if not loaded:
        raise DataError(f"{path} holds an empty state dict")
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise DataError(f"{path} is not a state dict: its entry {key!r} holds a {type(value).__name__}, "
                            "not a tensor")
    state = dict(loaded)
    # nn.DataParallel / DistributedDataParallel save every key under "module.".
    if all(key.startswith("module.") for key in state):
        state = {key.removeprefix("module."): value for key, value in state.items()}
    return state


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file or of a torch file loaded with ``weights_only=True``
    (a plain state dict, or a checkpoint dict holding one under "state_dict" or "model")."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a weights file")
    loaded = _load_safetensors(path) if path.suffix == ".safetensors" else _load_torch(path)
    return _as_state_dict(loaded, path)


def _num_classes(state_dict: Mapping[str, torch.Tensor], name: str, path: Path) -> int:
    key = f"{head_key(name)}.weight"
    weight = state_dict.get(key)
    if weight is None:
        raise DataError(f"{path} does not hold torchvision {name} weights: key {key!r} (its head) is missing")
    if weight.ndim != 2 or weight.shape[0] < 2:
        raise DataError(f"{path}: head weight {key!r} has shape {tuple(weight.shape)}, not (classes >= 2, features)")
    return int(weight.shape[0])


def _channels(values: Sequence[float] | None, what: str) -> list[float] | None:
    # One value stands for all three channels (a grey-style normalisation of an RGB network).
    if values is None:
        return None
    values = [float(v) for v in values]
    if len(values) == 1:
        return values * 3
    if len(values) != 3:
        raise ConfigError(f"{what} has {len(values)} values: torchvision networks take 3 channels (or give 1)")
    return values


def import_torchvision(arch: str, path: str | Path, *, classes: list[str] | None = None, image_size: int = 224,
                       mean: Sequence[float] | None = IMAGENET_MEAN,
                       std: Sequence[float] | None = IMAGENET_STD) -> Classifier:
    """Torchvision network ``arch`` ("resnet18", ...) with the weights of state-dict file ``path``, in
    eval mode. Its number of outputs is read from the file's head; ``classes`` name them, in order."""
    name = arch.removeprefix(PREFIX)
    if name not in SUPPORTED:
        raise ConfigError(f"unknown torchvision architecture {arch!r}: supported are {', '.join(SUPPORTED)}")
    path = Path(path)
    state_dict = read_state_dict(path)
    num_classes = _num_classes(state_dict, name, path)
    if classes is not None and len(classes) != num_classes:
        raise DataError(f"{len(classes)} class names for the {num_classes} outputs of the head in {path}")
    try:
        spec = ModelSpec(arch=PREFIX + name, in_channels=3, image_size=image_size, num_classes=num_classes,
                         classes=list(classes) if classes is not None else None,
                         mean=_channels(mean, "mean"), std=_channels(std, "std"))
    except ValueError as exc:  # pydantic's ValidationError: keep only its first message
        first = exc.errors()[0]["msg"] if hasattr(exc, "errors") else str(exc)
        raise ConfigError(f"importing {path} as {name}: {first}") from None
    model = load_torchvision_weights(spec, state_dict, str(path))
    # As build_model stores them: channels-last convolutions are faster on CPU (see build_model).
    return model.to(memory_format=torch.channels_last).eval()


def import_folder(path: str | Path) -> Classifier:
    """A network saved in transferlab's own format (``model.safetensors`` + ``model.json``), in eval mode."""
    from transferlab.models.io import load_model

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist: no model folder there")
    if not path.is_dir():
        raise DataError(f"{path} is a file: give the folder that holds model.safetensors and model.json")
    try:
        model = load_model(path)
    except DataError:
        raise  # load_model's own errors already name the folder in one line
    except Exception as exc:  # noqa: BLE001 - e.g. safetensors' SafetensorError for a damaged weights file
        raise DataError(f"the model in {path} is unreadable or corrupt ({type(exc).__name__})") from None
    if not isinstance(model, Classifier):  # layer transfer, MMD per block etc. need one network's blocks
        raise DataError(f"the model in {path} is an ensemble of {len(model.members)} networks; a source model "
                        "must be one network: export one member, or pretrain anew")
    return model
