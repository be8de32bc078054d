"""Readers for the on-disk formats: MNIST IDX files, USPS npz, any npz, ImageFolder trees.

Every reader returns float32 images (N, C, H, W) in [0, 1] (or (N, D) vectors), int64 labels and
class names; none of them unpickles anything or fetches from the network.
"""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np

from transferlab.data.lazy import LazyArray
from transferlab.data.sources import IMAGE_SUFFIXES, NpzMember, image_folder, npz_member  # noqa: F401
from transferlab.errors import DataError



def _folder(path: str | Path | None, dataset: str) -> Path:
    if path is None:
        raise DataError(f"dataset '{dataset}' is read from a folder: set its 'path'")
    folder = Path(path).expanduser()
    if not folder.exists():
        raise DataError(f"dataset '{dataset}': folder {folder} does not exist")
    if not folder.is_dir():
        raise DataError(f"dataset '{dataset}': {folder} is not a folder")
    return folder


def _read_idx(path: Path) -> np.ndarray:
    """One IDX file (optionally gzip-compressed): magic, dims, big-endian payload."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"MNIST file {path} is unreadable or corrupt ({exc.__class__.__name__})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"MNIST file {path} is not an IDX file (bad magic number)")
    dtype = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}.get(raw[2])
    if dtype is None:
        raise DataError(f"MNIST file {path} has an unknown IDX data type {raw[2]:#x}")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"MNIST file {path} is truncated or corrupt: its header is incomplete")
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    offset = 4 + 4 * ndim
    count = int(np.prod(dims))
    itemsize = np.dtype(dtype).itemsize
    if len(raw) - offset != count * itemsize:
        raise DataError(f"MNIST file {path} is truncated or corrupt: expected {count} values of {tuple(dims)}")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path:
    for base in (folder / "MNIST" / "raw", folder / "raw", folder):
        for candidate in (base / stem, base / f"{stem}.gz"):
            if candidate.exists():
                return candidate
    raise DataError(f"dataset 'mnist': {stem}[.gz] not found under {folder} (looked in MNIST/raw/, raw/ and the folder)")


def read_mnist(path: str | Path | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    folder = _folder(path, "mnist")
    parts = {"train": ["train"], "test": ["t10k"], "all": ["train", "t10k"]}[split]
    xs, ys = [], []
    for prefix in parts:
        images = _read_idx(_find_idx(folder, f"{prefix}-images-idx3-ubyte"))
        labels = _read_idx(_find_idx(folder, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"dataset 'mnist' under {folder}: {prefix} images and labels do not match")
        xs.append(images)
        ys.append(labels)
    return _unit(np.concatenate(xs))[:, None], np.concatenate(ys).astype(np.int64)


def _load_npz(path: Path, dataset: str, skip: tuple[str, ...] = ()) -> dict[str, np.ndarray | None]:
    """Every member of the archive (None for those in ``skip``, which are not read)."""
    if not path.exists():
        raise DataError(f"dataset '{dataset}': file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: None if k in skip else data[k] for k in data.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc) and zipfile.is_zipfile(path):
            raise DataError(f"dataset '{dataset}': {path} holds pickled Python objects, which are never loaded "
                            "(save plain numeric arrays)") from None
        raise DataError(f"dataset '{dataset}': {path} is not a readable .npz file (ValueError)") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"dataset '{dataset}': {path} is not a readable .npz file ({exc.__class__.__name__})") from None


def read_usps(path: str | Path | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    folder = _folder(path, "usps")
    xs, ys = [], []
    for part in ({"all": ["train", "test"]}.get(split) or [split]):
        data = _load_npz(folder / f"{part}.npz", "usps")
        if "x" not in data or "y" not in data:
            raise DataError(f"dataset 'usps': {folder / f'{part}.npz'} needs arrays 'x' and 'y'")
        xs.append(data["x"])
        ys.append(data["y"])
    x = np.concatenate(xs)
    if x.dtype.kind not in "uifb":
        raise DataError(f"dataset 'usps' under {folder}: images hold {x.dtype} values, not real numbers")
    if x.ndim != 3:
        raise DataError(f"dataset 'usps' under {folder}: expected images (N, H, W), got shape {x.shape}")
    return _unit(x, f"dataset 'usps' ({folder})")[:, None], np.concatenate(ys).astype(np.int64)


def read_npz(path: str | Path | None) -> tuple[np.ndarray | LazyArray, np.ndarray, tuple[str, ...] | None]:
    """x, labels, class names. An ``x`` stored uncompressed (``np.savez``) is memory-mapped and read by
    row (:mod:`transferlab.data.sources`); a compressed one is loaded. Both give the same rows."""
    if path is None:
        raise DataError("dataset 'npz' is read from a file: set its 'path'")
    path = Path(path).expanduser()
    data = _load_npz(path, "npz", skip=("x",))
    if "x" not in data or "y" not in data:
        raise DataError(f"dataset 'npz': {path} needs arrays 'x' and 'y' (found {', '.join(data) or 'none'})")
    where = f"dataset 'npz' ({path})"
    member = npz_member(path, "x")
    raw = _load_npz(path, "npz")["x"] if member is None else None
    dtype, shape = (np.dtype(member.dtype), member.shape) if member is not None else (raw.dtype, raw.shape)
    if dtype.kind not in "uifb":
        raise DataError(f"{where}: 'x' holds {dtype} values; images and features must be real numbers "
                        "(integers or floats)")
    y = data["y"]
    if len(shape) not in (2, 3, 4):
        raise DataError(f"dataset 'npz': {path} 'x' must be (N, D), (N, H, W) or (N, C, H, W), got {shape}")
    if y.ndim != 1 or len(y) != shape[0]:
        raise DataError(f"dataset 'npz': {path} 'y' must be one label per sample ({shape[0]}), got shape {y.shape}")
    vectors = _lazy_images(member, where) if member is not None else _images(raw, where)
    classes = tuple(str(c) for c in data["classes"]) if "classes" in data else None
    labels, names = _encode_labels(y, classes, where)
    return vectors, labels, names


def _images(x: np.ndarray, where: str) -> np.ndarray:
    if x.ndim == 2:
        vectors = x.astype(np.float32)
        if not np.isfinite(vectors).all():
            raise DataError(f"{where}: 'x' contains NaN or infinite values")
        return vectors
    if x.ndim == 3:
        return _unit(x, where)[:, None]
    return _unit(np.moveaxis(x, -1, 1) if _channels_last(x.shape) else x, where)


def _channels_last(shape: tuple[int, ...]) -> bool:
    return shape[-1] in (1, 3) and shape[1] not in (1, 3)


def _lazy_images(member: NpzMember, where: str) -> LazyArray:
    """What :func:`_images` does, row by row: the scaling is decided from one pass over the array."""
    member.transform = _unit_transform(member, where)
    x = LazyArray(member)
    shape = member.sample_shape
    if len(shape) == 2:
        return x.map(lambda rows, ids: rows[:, None], (1, *shape), "channel axis")
    if len(shape) == 3 and _channels_last((0, *shape)):
        return x.map(lambda rows, ids: np.ascontiguousarray(np.moveaxis(rows, -1, 1)), (shape[2], *shape[:2]),
                     "channels first")
    return x


def _unit_transform(member: NpzMember, where: str) -> tuple:
    dtype = np.dtype(member.dtype)
    if np.issubdtype(dtype, np.integer):
        top = 255.0 if dtype.itemsize == 1 or _scan(member, np.max) <= 255 else float(np.iinfo(dtype).max)
        return ("int", top)
    low, high, finite = np.inf, -np.inf, True
    for start in range(0, member.length, 4096):
        rows = member.raw(np.arange(start, min(start + 4096, member.length))).astype(np.float32)
        finite = finite and bool(np.isfinite(rows).all())
        low, high = min(low, float(rows.min(initial=0))), max(high, float(rows.max(initial=0)))
    if not finite:
        raise DataError(f"{where}: " + ("'x' contains" if len(member.sample_shape) == 1 else "images contain")
                        + " NaN or infinite values")
    if len(member.sample_shape) == 1 or (low >= 0 and high <= 1):
        return ("none",)
    return ("float", low, high)


def _scan(member: NpzMember, reduce) -> float:
    return max(float(reduce(member.raw(np.arange(s, min(s + 4096, member.length))), initial=0))
               for s in range(0, member.length, 4096))


def _encode_labels(y: np.ndarray, classes: tuple[str, ...] | None, where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    if classes is not None:
        if not np.issubdtype(y.dtype, np.integer) or y.min(initial=0) < 0 or y.max(initial=0) >= len(classes):
            raise DataError(f"{where}: labels must be integers indexing 'classes' (0..{len(classes) - 1})")
        return y.astype(np.int64), classes
    if y.dtype.kind in "fc":
        raise DataError(f"{where}: labels are {y.dtype} numbers (e.g. {y.flat[0]}); they must be integer class "
                        "indices (0, 1, ...) or class names")
    if y.dtype.kind not in "iuUS":
        raise DataError(f"{where}: labels are {y.dtype}; they must be integer class indices or class names")
    if y.dtype.kind in "iu" and y.size and y.min() < 0:
        raise DataError(f"{where}: labels must be class indices 0, 1, ..., but the smallest is {y.min()}")
    if y.dtype.kind in "iu" and y.size and y.max() < 1000:
        names = tuple(str(i) for i in range(int(y.max()) + 1))
        return y.astype(np.int64), names
    values = sorted({str(v) for v in y.tolist()})
    index = {v: i for i, v in enumerate(values)}
    return np.array([index[str(v)] for v in y.tolist()], dtype=np.int64), tuple(values)


def read_imagefolder(path: str | Path | None) -> tuple[LazyArray, np.ndarray, tuple[str, ...]]:
    """An ImageFolder tree, read lazily: x's rows are decoded when they are used (see
    :class:`transferlab.data.sources.ImageFiles`)."""
    folder = _folder(path, "imagefolder")
    reader, labels, classes = image_folder(str(folder))
    return LazyArray(reader), labels, classes


def _unit(x: np.ndarray, where: str = "images") -> np.ndarray:
    """Images to float32 in [0, 1]: integers by their type's range, floats by their own maximum."""
    if np.issubdtype(x.dtype, np.integer):
        top = 255.0 if x.max(initial=0) <= 255 else float(np.iinfo(x.dtype).max)
        return (x.astype(np.float32) / top).clip(0, 1)
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{where}: images contain NaN or infinite values")
    low, high = float(x.min(initial=0)), float(x.max(initial=0))
    if low >= 0 and high <= 1:
        return x
    return ((x - low) / max(high - low, 1e-12)).astype(np.float32)
