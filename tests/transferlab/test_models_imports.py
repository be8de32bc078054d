"""Importing a user's network: the forms that work, and one clear sentence for each that does not."""

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from transferlab.errors import ConfigError, DataError
from transferlab.models import import_folder, import_torchvision, read_state_dict, save_model


class Thing:
    """A custom class: weights_only loading must refuse to unpickle it."""


@pytest.fixture(scope="module")
def resnet18_state():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=4).state_dict()


def refusal(exc_type, call, *words):
    with pytest.raises(exc_type) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    for word in words:
        assert str(word) in message, message
    return message


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))


def test_a_pickled_custom_object_is_refused_by_weights_only_loading(tmp_path):
    path = tmp_path / "thing.pt"
    torch.save({"fc.weight": Thing()}, path)
    refusal(DataError, lambda: read_state_dict(path), path, "not a plain state dict", "weights_only", "Thing")


def test_a_text_file_is_not_a_weights_file(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("these are not weights\n")
    refusal(DataError, lambda: import_torchvision("resnet18", path), path, "not a torch or safetensors")


def test_a_file_holding_something_other_than_tensors_is_refused(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    refusal(DataError, lambda: read_state_dict(path), path, "list", "not a state dict")
    torch.save({"fc.weight": torch.zeros(2, 2), "epoch": 3}, path)
    refusal(DataError, lambda: read_state_dict(path), path, "'epoch'", "int")


def test_a_resnet50_state_dict_given_as_resnet18_names_a_key_resnet18_lacks(tmp_path, resnet18_state):
    path = tmp_path / "r50.pth"
    r50 = torchvision.models.resnet50(weights=None, num_classes=4).state_dict()
    torch.save(r50, path)
    message = refusal(DataError, lambda: import_torchvision("resnet18", path), path, "resnet18")
    key = message.split("'")[1]
    assert key in r50 and key not in resnet18_state


def test_a_missing_key_is_named(tmp_path, resnet18_state):
    path = tmp_path / "partial.pth"
    torch.save({k: v for k, v in resnet18_state.items() if k != "layer2.0.bn1.weight"}, path)
    refusal(DataError, lambda: import_torchvision("resnet18", path), path, "'layer2.0.bn1.weight'", "missing")


def test_a_weight_of_the_wrong_shape_is_named_with_both_shapes(tmp_path, resnet18_state):
    path = tmp_path / "grey-stem.pth"
    torch.save({**resnet18_state, "conv1.weight": torch.zeros(64, 1, 7, 7)}, path)
    refusal(DataError, lambda: import_torchvision("resnet18", path), path, "'conv1.weight'", "(64, 1, 7, 7)",
            "(64, 3, 7, 7)")


def test_a_file_without_the_head_weight_says_which_key_gives_the_class_count(tmp_path, resnet18_state):
    path = tmp_path / "headless.pth"
    torch.save({k: v for k, v in resnet18_state.items() if not k.startswith("fc.")}, path)
    refusal(DataError, lambda: import_torchvision("resnet18", path), path, "'fc.weight'")


def test_the_class_names_must_match_the_heads_outputs(tmp_path, resnet18_state):
    path = tmp_path / "r18.pth"
    torch.save(resnet18_state, path)
    refusal(DataError, lambda: import_torchvision("resnet18", path, classes=["a", "b"]), path, "2 class names", 4)
    model = import_torchvision("resnet18", path, classes=list("abcd"), image_size=32)
    assert model.spec.classes == list("abcd") and model.spec.num_classes == 4


def test_a_missing_file_an_unknown_arch_and_a_bad_normalisation_are_refused(tmp_path, resnet18_state):
    missing = tmp_path / "nowhere.pth"
    refusal(DataError, lambda: import_torchvision("resnet18", missing), missing, "does not exist")
    path = tmp_path / "r18.pth"
    torch.save(resnet18_state, path)
    refusal(ConfigError, lambda: import_torchvision("vgg16", path), "vgg16", "resnet18", "efficientnet_b0")
    refusal(ConfigError, lambda: import_torchvision("resnet18", path, mean=(0.5, 0.5), std=(0.2, 0.2)), "mean", 2)


def test_safetensors_checkpoints_and_older_layouts_give_the_same_network(tmp_path, resnet18_state):
    plain = tmp_path / "r18.pth"
    torch.save(resnet18_state, plain)
    expected = logits(import_torchvision("resnet18", plain, image_size=32))
    safetensors = tmp_path / "r18.safetensors"
    save_file({k: v.contiguous() for k, v in resnet18_state.items()}, str(safetensors))
    checkpoint, wrapped, parallel = tmp_path / "ckpt.pt", tmp_path / "wrapped.pt", tmp_path / "dp.pt"
    torch.save({"state_dict": resnet18_state, "epoch": 3, "best_acc": 0.9}, checkpoint)
    torch.save({"model": resnet18_state}, wrapped)
    torch.save({f"module.{k}": v for k, v in resnet18_state.items()}, parallel)
    # Files from before BatchNorm counted its batches lack the counters; BatchNorm fills them in.
    uncounted = tmp_path / "old.pth"
    torch.save({k: v for k, v in resnet18_state.items() if not k.endswith("num_batches_tracked")}, uncounted)
    for path in (safetensors, checkpoint, wrapped, parallel, uncounted):
        assert torch.equal(logits(import_torchvision("resnet18", path, image_size=32)), expected), path


def test_a_damaged_safetensors_file_is_named(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00garbage")
    refusal(DataError, lambda: read_state_dict(path), path, "safetensors")


def test_import_folder_reads_our_format_and_names_what_is_wrong(tmp_path, resnet18_state):
    path = tmp_path / "r18.pth"
    torch.save(resnet18_state, path)
    model = import_torchvision("resnet18", path, image_size=32)
    folder = tmp_path / "saved"
    save_model(model, folder)
    assert torch.equal(logits(import_folder(folder)), logits(model))
    refusal(DataError, lambda: import_folder(tmp_path / "absent"), tmp_path / "absent", "does not exist")
    refusal(DataError, lambda: import_folder(path), path, "folder")
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00garbage")
    refusal(DataError, lambda: import_folder(folder), folder)
