"""Readers for the on-disk formats: MNIST IDX files, USPS npz, any npz, ImageFolder trees.

Every reader returns float32 images (N, C, H, W) in [0, 1] (or (N, D) vectors), int64 labels and
class names; none of them unpickles anything or fetches from the network.
"""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np

from transferlab.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


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


def _load_npz(path: Path, dataset: str) -> dict[str, np.ndarray]:
    if not path.exists():
        raise DataError(f"dataset '{dataset}': file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
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


def read_npz(path: str | Path | None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None]:
    if path is None:
        raise DataError("dataset 'npz' is read from a file: set its 'path'")
    data = _load_npz(Path(path).expanduser(), "npz")
    if "x" not in data or "y" not in data:
        raise DataError(f"dataset 'npz': {path} needs arrays 'x' and 'y' (found {', '.join(data) or 'none'})")
    x, y = data["x"], data["y"]
    where = f"dataset 'npz' ({path})"
    if x.dtype.kind not in "uifb":
        raise DataError(f"{where}: 'x' holds {x.dtype} values; images and features must be real numbers "
                        "(integers or floats)")
    if x.ndim == 2:
        vectors = x.astype(np.float32)
        if not np.isfinite(vectors).all():
            raise DataError(f"{where}: 'x' contains NaN or infinite values")
    elif x.ndim == 3:
        vectors = _unit(x, where)[:, None]
    elif x.ndim == 4:
        channels_last = x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3)
        vectors = _unit(np.moveaxis(x, -1, 1) if channels_last else x, where)
    else:
        raise DataError(f"dataset 'npz': {path} 'x' must be (N, D), (N, H, W) or (N, C, H, W), got {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"dataset 'npz': {path} 'y' must be one label per sample ({len(x)}), got shape {y.shape}")
    classes = tuple(str(c) for c in data["classes"]) if "classes" in data else None
    labels, names = _encode_labels(y, classes, where)
    return vectors, labels, names


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


def read_imagefolder(path: str | Path | None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    from PIL import Image, UnidentifiedImageError

    folder = _folder(path, "imagefolder")
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"dataset 'imagefolder': {folder} has no class sub-folders")
    images, labels, size, mode = [], [], None, None
    for label, class_dir in enumerate(class_dirs):
        for file in sorted(class_dir.rglob("*")):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(file) as img:
                    mode = mode or ("L" if img.mode in ("L", "1", "I;16", "I") else "RGB")
                    img = img.convert(mode)
                    size = size or img.size
                    if img.size != size:
                        img = img.resize(size)
                    images.append(np.asarray(img))
            except (UnidentifiedImageError, OSError):
                raise DataError(f"dataset 'imagefolder': {file} is not a readable image") from None
            labels.append(label)
    if not images:
        raise DataError(f"dataset 'imagefolder': no image files under {folder}")
    x = np.stack(images)
    x = x[:, None] if x.ndim == 3 else np.moveaxis(x, -1, 1)
    x = _unit(x, f"dataset 'imagefolder' ({folder})")
    return x, np.asarray(labels, dtype=np.int64), tuple(p.name for p in class_dirs)


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
