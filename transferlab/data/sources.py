"""The readers behind lazy domains (:mod:`transferlab.data.lazy`).

- :class:`ImageFiles`: an ImageFolder tree as torchvision lists it (``torchvision.datasets.ImageFolder``:
  one sub-folder per class, its image files sorted), each image decoded by PIL when its row is read,
  at its own size until it is resized once, straight to the size the domain needs.
- :class:`NpzMember`: an array stored uncompressed inside an ``.npz`` (what ``np.savez`` writes),
  memory-mapped where it lies in the archive, so that rows are read from disk by the page cache
  instead of loading the array.

Both are plain data (paths, offsets, shapes), cheap to send to DataLoader worker processes.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from transferlab.errors import DataError

GREY_MODES = ("L", "1", "I;16", "I")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def _decode(path: str, mode: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert(mode))
    except (UnidentifiedImageError, OSError, ValueError):
        raise DataError(f"dataset 'imagefolder': {path} is not a readable image") from None


def resize_rows(rows: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The one resize of every path: antialiased bilinear, as :func:`transferlab.data.harmonise` does."""
    if tuple(rows.shape[-2:]) == tuple(size):
        return rows
    return F.interpolate(rows, size=size, mode="bilinear", align_corners=False, antialias=True)


class ImageFiles:
    """Rows of an ImageFolder tree: (C, H, W) float32 in [0, 1], grey (C 1) or RGB (C 3) as the first
    image is, resized from each image's own size to ``size`` (the first image's, until told)."""

    def __init__(self, root: str, files: list[str], mode: str, size: tuple[int, int], key: str | None = None):
        self.root, self.files, self.mode, self.size = root, files, mode, tuple(size)
        self.length = len(files)
        self.sample_shape = (1 if mode == "L" else 3, *self.size)
        self._key = key or _listing_key(root, files)

    @property
    def key(self) -> str:
        return f"{self._key}|{self.mode}|{self.size[0]}x{self.size[1]}"

    def resized(self, size: tuple[int, int]) -> "ImageFiles":
        return ImageFiles(self.root, self.files, self.mode, size, self._key)

    def read(self, ids: np.ndarray) -> np.ndarray:
        out = np.empty((len(ids), *self.sample_shape), dtype=np.float32)
        for i, k in enumerate(ids):
            pixels = _decode(self.files[k], self.mode)
            # float64 division, then float32: what the built-in datasets do with their uint8 images
            unit = (pixels / 255.0).astype(np.float32)
            chw = unit[None] if unit.ndim == 2 else np.moveaxis(unit, -1, 0)
            out[i] = resize_rows(torch.from_numpy(np.ascontiguousarray(chw))[None], self.size)[0].clamp(0, 1).numpy()
        return out


def _listing_key(root: str, files: list[str]) -> str:
    """The tree as listed: names, sizes and modification times (no file is read)."""
    digest = hashlib.blake2b(str(root).encode(), digest_size=16)
    for f in files:
        st = os.stat(f)
        digest.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return f"imagefolder:{digest.hexdigest()}"


def image_folder(path: str) -> tuple[ImageFiles, np.ndarray, tuple[str, ...]]:
    """(reader, labels, class names) of an ImageFolder tree, listed by torchvision, nothing decoded
    but the first image (its mode and size are the domain's until it is harmonised)."""
    from torchvision.datasets import ImageFolder

    class Listing(ImageFolder):
        def find_classes(self, directory):  # hidden folders (.ipynb_checkpoints, .git) are not classes
            classes = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
            if not classes:
                raise FileNotFoundError(directory)
            return classes, {c: i for i, c in enumerate(classes)}

    try:
        listing = Listing(path, loader=str, allow_empty=True,
                          is_valid_file=lambda p: Path(p).suffix.lower() in IMAGE_SUFFIXES)
    except FileNotFoundError:
        raise DataError(f"dataset 'imagefolder': {path} has no class sub-folders") from None
    if not listing.samples:
        raise DataError(f"dataset 'imagefolder': no image files under {path}")
    files = [p for p, _ in listing.samples]
    first = _first_image(files[0])
    mode = "L" if first.mode in GREY_MODES else "RGB"
    labels = np.array([c for _, c in listing.samples], dtype=np.int64)
    return ImageFiles(str(path), files, mode, (first.size[1], first.size[0])), labels, tuple(listing.classes)


def _first_image(path: str):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            return img
    except (UnidentifiedImageError, OSError):
        raise DataError(f"dataset 'imagefolder': {path} is not a readable image") from None


class NpzMember:
    """``name`` of an uncompressed ``.npz``, memory-mapped; rows scaled as :func:`readers._unit` scales
    the whole array (``scale`` computed from the whole array once)."""

    def __init__(self, path: str, name: str, offset: int, shape: tuple[int, ...], dtype: str, fortran: bool):
        self.path, self.name, self.offset = path, name, offset
        self.shape, self.dtype, self.fortran = tuple(shape), dtype, fortran
        self.length = self.shape[0]
        self.sample_shape = self.shape[1:]
        self.transform: tuple = ("none",)
        st = os.stat(path)
        self.key = f"npz:{path}:{name}:{st.st_size}:{st.st_mtime_ns}"
        self._mm = None

    def __getstate__(self):
        return {**self.__dict__, "_mm": None}

    def array(self) -> np.ndarray:
        if self._mm is None:
            self._mm = np.memmap(self.path, dtype=np.dtype(self.dtype), mode="r", offset=self.offset,
                                 shape=self.shape, order="F" if self.fortran else "C")
        return self._mm

    def raw(self, ids: np.ndarray) -> np.ndarray:
        order = np.argsort(ids, kind="stable")  # increasing offsets: sequential reads
        rows = np.empty((len(ids), *self.sample_shape), dtype=np.dtype(self.dtype))
        rows[order] = self.array()[ids[order]]
        return rows

    def read(self, ids: np.ndarray) -> np.ndarray:
        return apply_unit(self.raw(ids), self.transform)


def apply_unit(rows: np.ndarray, transform: tuple) -> np.ndarray:
    """``readers._unit``'s scaling, decided once for the whole array: ("int", top) / ("float", low,
    high) / ("none",) for floats already in [0, 1] and for feature vectors."""
    if transform[0] == "int":
        return (rows.astype(np.float32) / transform[1]).clip(0, 1)
    rows = rows.astype(np.float32)
    if transform[0] == "float":
        return ((rows - transform[1]) / max(transform[2] - transform[1], 1e-12)).astype(np.float32)
    return rows


def npz_member(path: Path, name: str) -> NpzMember | None:
    """The member memory-mapped where it lies, or None when the archive compresses it."""
    with zipfile.ZipFile(path) as archive:
        try:
            info = archive.getinfo(f"{name}.npy")
        except KeyError:
            return None
        if info.compress_type != zipfile.ZIP_STORED:
            return None
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        local = handle.read(30)
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        handle.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(handle)
        offset = handle.tell()
    if dtype.hasobject:
        return None  # pickled objects: the caller's np.load refuses them with its message
    return NpzMember(str(path), name, offset, shape, dtype.str, fortran)
