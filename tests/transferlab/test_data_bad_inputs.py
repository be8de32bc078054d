"""Data a user can get wrong is refused by the readers in one sentence naming the file (issue 21's
hostile inputs): nothing numeric-looking is accepted by accident."""

import numpy as np
import pytest

from transferlab.data import DomainSpec, load_domain
from transferlab.errors import DataError

IMAGES = np.random.default_rng(0).integers(0, 255, (40, 8, 8), dtype=np.uint8)
LABELS = np.repeat(np.arange(4), 10)


def _load(tmp_path, **arrays):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return load_domain(DomainSpec(name="npz", path=str(path))), str(path)


@pytest.mark.parametrize("x, message", [
    (IMAGES.astype(str), "'x' holds <U3 values; images and features must be real numbers"),
    (IMAGES.astype(np.complex64), "'x' holds complex64 values"),
])
def test_images_that_are_not_real_numbers_are_refused(tmp_path, x, message):
    with pytest.raises(DataError, match=message) as info:
        _load(tmp_path, x=x, y=LABELS)
    assert str(tmp_path / "d.npz") in str(info.value)


@pytest.mark.parametrize("y, message", [
    (LABELS - 1, "labels must be class indices 0, 1, ..., but the smallest is -1"),
    (LABELS + 0.5, "labels are float64 numbers \\(e.g. 0.5\\); they must be integer class indices"),
    (LABELS.astype(np.complex64), "labels are complex64 numbers"),
])
def test_labels_that_are_not_class_indices_or_names_are_refused(tmp_path, y, message):
    with pytest.raises(DataError, match=message):
        _load(tmp_path, x=IMAGES, y=y)


def test_string_labels_are_class_names(tmp_path):
    domain, _ = _load(tmp_path, x=IMAGES, y=np.array(["cat", "dog", "fox", "owl"])[LABELS])
    assert domain.classes == ("cat", "dog", "fox", "owl") and domain.y.tolist() == LABELS.tolist()


@pytest.mark.parametrize("shape", [(40, 8, 8), (40, 64)])
def test_nan_names_the_file(tmp_path, shape):
    x = IMAGES.astype(np.float32).reshape(shape)
    x[3].flat[5] = np.nan
    with pytest.raises(DataError, match="d.npz.*NaN or infinite"):
        _load(tmp_path, x=x, y=LABELS)


def test_pickled_objects_are_never_loaded_and_the_message_says_so(tmp_path):
    with pytest.raises(DataError, match="holds pickled Python objects, which are never loaded"):
        _load(tmp_path, x=np.array([object()] * 40, dtype=object), y=LABELS)


def test_a_missing_path_is_found_before_reading(tmp_path):
    from transferlab.data import check_spec

    with pytest.raises(DataError, match="dataset 'usps': nowhere does not exist"):
        check_spec(DomainSpec(name="usps", path="nowhere"), tmp_path)
    (tmp_path / "nowhere").mkdir()
    assert check_spec(DomainSpec(name="usps", path="nowhere"), tmp_path).name == "usps"  # relative to the root
