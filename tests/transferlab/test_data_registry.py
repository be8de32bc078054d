from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transferlab.data import DomainSpec, ShiftSpec, check_same_label_space, list_datasets, load_domain
from transferlab.errors import DataError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_builtin_domains_ship_with_packages():
    mnist = load_domain(DomainSpec(name="mnist5k"))
    digits = load_domain(DomainSpec(name="uci-digits"))
    assert mnist.x.shape == (5000, 1, 28, 28) and digits.x.shape == (1797, 1, 8, 8)
    for d in (mnist, digits):
        assert d.x.dtype == np.float32 and d.x.min() >= 0 and d.x.max() == pytest.approx(1.0)
        assert d.classes == tuple(str(i) for i in range(10))
        assert (d.class_counts() > 0).all()
    check_same_label_space(mnist, digits)


def test_registry_lists_names_sizes_and_classes():
    info = {d.name: d for d in list_datasets()}
    assert {"mnist5k", "uci-digits", "mnist", "usps", "npz", "imagefolder"} <= set(info)
    assert info["mnist5k"].n_samples == 5000 and info["uci-digits"].n_samples == 1797
    assert info["usps"].needs_path and not info["mnist5k"].needs_path


@pytest.mark.skipif(not SHARED.exists(), reason="needs ../shared/data")
def test_mnist_and_usps_from_the_shared_folder():
    mnist = load_domain(DomainSpec(name="mnist", path=str(SHARED), split="test"))
    assert mnist.x.shape == (10000, 1, 28, 28)
    assert np.bincount(mnist.y).tolist()[:3] == [980, 1135, 1032]
    usps = load_domain(DomainSpec(name="usps", path=str(SHARED / "usps"), split="train"))
    assert usps.x.shape == (7291, 1, 16, 16)


def test_npz_images_vectors_and_subsampling(tmp_path):
    rng = np.random.default_rng(0)
    images = tmp_path / "img.npz"
    np.savez(images, x=rng.integers(0, 256, (60, 12, 12, 3), dtype=np.uint8), y=np.repeat([0, 1, 2], 20),
             classes=np.array(["cat", "dog", "owl"]))
    d = load_domain(DomainSpec(name="npz", path=str(images), max_samples=30), seed=1)
    assert d.x.shape == (30, 3, 12, 12) and d.classes == ("cat", "dog", "owl")
    assert d.class_counts().tolist() == [10, 10, 10]
    vectors = tmp_path / "vec.npz"
    np.savez(vectors, x=rng.normal(size=(40, 7)), y=np.array(["a", "b"] * 20))
    v = load_domain(DomainSpec(name="npz", path=str(vectors)))
    assert v.x.shape == (40, 7) and not v.is_image and v.classes == ("a", "b")


def test_imagefolder(tmp_path):
    for cls in ("ants", "bees"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(np.full((10, 10), 40 * i, dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    d = load_domain(DomainSpec(name="imagefolder", path=str(tmp_path)))
    assert d.x.shape == (6, 1, 10, 10) and d.classes == ("ants", "bees")
    assert d.y.tolist() == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("spec, message", [
    (DomainSpec(name="nope"), "unknown dataset 'nope'"),
    (DomainSpec(name="usps"), "set 'path'"),
    (DomainSpec(name="usps", path="/no/such/folder"), "does not exist"),
    (DomainSpec(name="mnist", path="/tmp"), "not found"),
])
def test_clear_errors(spec, message):
    with pytest.raises(DataError, match=message):
        load_domain(spec)


def test_corrupt_files_are_reported(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_domain(DomainSpec(name="npz", path=str(bad)))
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 5)
    (raw / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_domain(DomainSpec(name="mnist", path=str(tmp_path), split="train"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "c").mkdir()
    (tmp_path / "broken" / "c" / "x.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a readable image"):
        load_domain(DomainSpec(name="imagefolder", path=str(tmp_path / "broken")))


def test_label_sets_that_differ_are_refused(tmp_path):
    three = tmp_path / "three.npz"
    np.savez(three, x=np.zeros((6, 8, 8), dtype=np.uint8), y=np.repeat([0, 1, 2], 2))
    with pytest.raises(DataError, match="different label sets"):
        check_same_label_space(load_domain(DomainSpec(name="uci-digits")),
                               load_domain(DomainSpec(name="npz", path=str(three))))


def test_shifts_in_the_spec_are_applied_in_order():
    d = load_domain(DomainSpec(name="uci-digits", max_samples=50,
                               shifts=[ShiftSpec(name="invert", severity=1.0), ShiftSpec(name="noise", severity=0.2)]))
    assert d.name == "uci-digits+invert(1)+noise(0.2)"
