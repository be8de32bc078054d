"""Lazy domains (transferlab/data/lazy.py, sources.py, loading.py): rows read when used, exactly as the
in-memory path makes them."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from transferlab.data import DomainSpec, LazyArray, ShiftSpec, apply_shift, harmonise, load_domain
from transferlab.data import sources
from transferlab.errors import DataError
from transferlab.training import BatchStream

RNG = np.random.default_rng(0)


def _tree(root, sizes=((20, 20), (31, 17), (12, 40))):
    """Three classes, images of mixed sizes (RGB)."""
    for c in range(3):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(6):
            h, w = sizes[(c + i) % len(sizes)]
            Image.fromarray(RNG.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / f"c{c}" / f"{i}.png")
    return root


def test_an_image_folder_is_listed_not_decoded_and_each_image_is_resized_once_from_its_own_size(tmp_path, monkeypatch):
    tree = _tree(tmp_path / "tree")
    decoded = []
    real = sources._decode
    monkeypatch.setattr(sources, "_decode", lambda path, mode: decoded.append(path) or real(path, mode))
    domain = load_domain(DomainSpec(name="imagefolder", path=str(tree)))
    assert domain.is_lazy and decoded == [] and domain.classes == ("c0", "c1", "c2") and len(domain) == 18
    small = harmonise(domain, 16, 3)
    assert small.is_lazy and small.x.shape == (18, 3, 16, 16) and decoded == []
    row = small.x[7]  # class c1, file 1.png: 12x40, straight to 16x16
    assert decoded == [str(tree / "c1" / "1.png")]
    pixels = np.asarray(Image.open(tree / "c1" / "1.png").convert("RGB")) / 255.0
    expected = F.interpolate(torch.from_numpy(np.moveaxis(pixels, -1, 0).astype(np.float32))[None], size=(16, 16),
                             mode="bilinear", align_corners=False, antialias=True)[0].numpy()
    np.testing.assert_array_equal(row, expected)
    grey = harmonise(domain, 8, 1)
    assert grey.x.shape == (18, 1, 8, 8) and grey.x[[0, 5]].shape == (2, 1, 8, 8)


def test_a_corrupt_image_is_one_sentence_naming_the_file_when_read(tmp_path):
    tree = _tree(tmp_path / "tree")
    (tree / "c2" / "9.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    domain = harmonise(load_domain(DomainSpec(name="imagefolder", path=str(tree))), 8, 3)
    with pytest.raises(DataError, match=r"c2/9\.png is not a readable image"):
        np.asarray(domain.x)


@pytest.mark.parametrize("x", [
    RNG.integers(0, 255, (50, 9, 9), dtype=np.uint8),                       # grey images
    RNG.random((50, 9, 9, 3)).astype(np.float32) * 4 - 1,                  # channels-last floats outside [0, 1]
    RNG.normal(size=(50, 7)).astype(np.float32),                            # feature vectors
])
def test_an_uncompressed_npz_is_memory_mapped_and_reads_as_the_loaded_one(tmp_path, x):
    y = np.repeat(np.arange(5), 10)
    np.savez(tmp_path / "plain.npz", x=x, y=y)
    np.savez_compressed(tmp_path / "packed.npz", x=x, y=y)
    lazy = load_domain(DomainSpec(name="npz", path=str(tmp_path / "plain.npz")))
    eager = load_domain(DomainSpec(name="npz", path=str(tmp_path / "packed.npz")))
    assert lazy.is_lazy and not eager.is_lazy
    assert lazy.x.shape == eager.x.shape
    np.testing.assert_array_equal(np.asarray(lazy.x), eager.x)
    np.testing.assert_array_equal(lazy.subset(np.array([4, 1, 40])).x[:], eager.x[[4, 1, 40]])
    if eager.is_image:
        np.testing.assert_array_equal(np.asarray(harmonise(lazy, 16, 3).x), harmonise(eager, 16, 3).x)


def test_a_lazy_shift_gives_each_row_its_own_draw_whatever_batch_it_is_read_in(tmp_path):
    np.savez(tmp_path / "d.npz", x=RNG.integers(0, 255, (30, 12, 12), dtype=np.uint8), y=np.arange(30) % 3)
    domain = load_domain(DomainSpec(name="npz", path=str(tmp_path / "d.npz")))
    shifted = apply_shift(domain, ShiftSpec(name="colour-background", severity=0.7, seed=3))
    assert shifted.x.shape == (30, 3, 12, 12)
    whole = np.asarray(shifted.x)
    np.testing.assert_array_equal(shifted.x[[17]], whole[[17]])
    np.testing.assert_array_equal(shifted.subset(np.array([17, 2])).x[:], whole[[17, 2]])
    other = np.asarray(apply_shift(domain, ShiftSpec(name="colour-background", severity=0.7, seed=4)).x)
    assert not np.array_equal(whole, other)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_batches_of_a_lazy_domain_equal_the_in_memory_ones_and_continue_alike(tmp_path, monkeypatch, workers):
    monkeypatch.setenv("TRANSFERLAB_READ_WORKERS", workers)
    np.savez(tmp_path / "d.npz", x=RNG.integers(0, 255, (70, 6, 6), dtype=np.uint8), y=np.arange(70) % 7)
    lazy = load_domain(DomainSpec(name="npz", path=str(tmp_path / "d.npz")))
    eager = type(lazy)(lazy.name, np.asarray(lazy.x), lazy.y, lazy.classes)
    a, b = BatchStream(lazy, 16, seed=5, name="s"), BatchStream(eager, 16, seed=5, name="s")
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    BatchStream(lazy, 16, seed=5, name="s").next("cpu")
    assert torch.equal(torch.rand(3), expected)  # reading ahead leaves the generator training draws from
    for _ in range(6):  # past the end of a pass (4 batches of 16 in 70)
        xa, ya = a.next("cpu")
        xb, yb = b.next("cpu")
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    state = a.state()
    ahead = [a.next("cpu")[0] for _ in range(3)]
    a.restore(state)
    assert all(torch.equal(a.next("cpu")[0], x) for x in ahead)


def test_lazy_arrays_index_like_arrays():
    class Counting:
        length, sample_shape, key = 10, (2,), "counting"

        def read(self, ids):
            return np.stack([np.full(2, i, dtype=np.float32) for i in ids])

    x = LazyArray(Counting())
    assert x.shape == (10, 2) and x.ndim == 2 and len(x) == 10
    assert x[3].tolist() == [3, 3] and x[2:5][:, 0].tolist() == [2, 3, 4] and x[[9, 0]][:, 0].tolist() == [9, 0]
    view = x.subset(np.array([8, 6, 4]))
    assert view[1].tolist() == [6, 6] and view.fingerprint() != x.fingerprint()
    doubled = view.map(lambda rows, ids: rows * 2, (2,), "double")
    assert np.asarray(doubled)[:, 0].tolist() == [16, 12, 8] and x[:0].shape == (0, 2)
