"""A domain on disk: one compressed .npz (x, y, classes, name), read back without pickle."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from transferlab.data.types import Domain
from transferlab.errors import DataError


def save_domain(domain: Domain, path: str | Path) -> None:
    np.savez_compressed(path, x=domain.x, y=domain.y, classes=np.array(domain.classes, dtype=str),
                        name=np.array(domain.name))


def load_domain_file(path: str | Path) -> Domain:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return Domain(str(data["name"]), data["x"], data["y"], tuple(str(c) for c in data["classes"]))
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path} is not a readable domain file ({exc.__class__.__name__})") from None
