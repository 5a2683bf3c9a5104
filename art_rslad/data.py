"""Datasets as numpy arrays in [0, 1], found offline where possible.

``load_dataset("fashion-mnist", "train")`` looks for the files in this order: an explicit ``root``, the folder
named by ``$ART_RSLAD_DATA``, the Debian package ``dataset-fashion-mnist`` (its gzip files are decompressed into
a cache folder, since their bytes differ from torchvision's checksums), and last torchvision's download.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                  "t10k-labels-idx1-ubyte")
SPLITS = ("train", "test")


def cache_dir() -> Path:
    """The folder where decompressed and downloaded datasets are kept (``$XDG_CACHE_HOME/art-rslad``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "art-rslad" / "data"


def _has_raw_fashion(root: Path) -> bool:
    raw = root / "FashionMNIST" / "raw"
    return all((raw / name).is_file() for name in _FASHION_FILES)


def _unpack_debian_fashion(target: Path) -> bool:
    """Decompress the Debian package's gzip files into ``target/FashionMNIST/raw``; False when absent."""
    sources = [DEBIAN_FASHION_MNIST / f"{name}.gz" for name in _FASHION_FILES]
    if not all(path.is_file() for path in sources):
        return False
    raw = target / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for source, name in zip(sources, _FASHION_FILES, strict=True):
        destination = raw / name
        if destination.is_file():
            continue
        partial = destination.with_suffix(".partial")
        with gzip.open(source, "rb") as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst)
        partial.replace(destination)
    return True


def _fashion_mnist_root(root: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """Return (root for torchvision, whether torchvision may download) after looking in every known place."""
    looked: list[str] = []
    candidates: list[Path] = []
    if root is not None:
        candidates.append(Path(root))
    if os.environ.get("ART_RSLAD_DATA"):
        candidates.append(Path(os.environ["ART_RSLAD_DATA"]))
    for candidate in candidates:
        if _has_raw_fashion(candidate):
            return candidate, False
        looked.append(f"{candidate / 'FashionMNIST' / 'raw'} (no raw idx files)")
    cache = cache_dir()
    if _has_raw_fashion(cache):
        return cache, False
    if _unpack_debian_fashion(cache):
        logger.info("Fashion-MNIST unpacked from %s into %s", DEBIAN_FASHION_MNIST, cache)
        return cache, False
    looked.append(f"{DEBIAN_FASHION_MNIST} (Debian package dataset-fashion-mnist not installed)")
    return (candidates[0] if candidates else cache), True


def _to_numpy(dataset: object) -> tuple[np.ndarray, np.ndarray]:
    data = dataset.data  # type: ignore[attr-defined]
    targets = dataset.targets  # type: ignore[attr-defined]
    x = np.asarray(data, dtype=np.float32)
    if x.ndim == 3:
        x = x[:, None, :, :]
    elif x.ndim == 4 and x.shape[-1] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    x = np.ascontiguousarray(x / 255.0, dtype=np.float32)
    y = np.asarray(targets, dtype=np.int64)
    return x, y


def _load_fashion_mnist(split: str, root: str | os.PathLike[str] | None) -> tuple[np.ndarray, np.ndarray]:
    from torchvision.datasets import FashionMNIST

    folder, download = _fashion_mnist_root(root)
    try:
        dataset = FashionMNIST(str(folder), train=split == "train", download=download)
    except (RuntimeError, OSError) as error:
        places = [str(Path(root))] if root is not None else []
        if os.environ.get("ART_RSLAD_DATA"):
            places.append(os.environ["ART_RSLAD_DATA"] + " ($ART_RSLAD_DATA)")
        places += [str(cache_dir()), f"{DEBIAN_FASHION_MNIST} (apt-get install dataset-fashion-mnist)",
                   "torchvision download"]
        raise FileNotFoundError(
            "Fashion-MNIST was not found. Looked in: " + "; ".join(places)
            + f". Install the Debian package 'dataset-fashion-mnist' or pass root=. ({error})"
        ) from error
    return _to_numpy(dataset)


_LOADERS = {"fashion-mnist": _load_fashion_mnist}


def dataset_names() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return sorted(_LOADERS)


def load_dataset(
    name: str, split: str = "train", root: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load a dataset as ``(x, y)``: x float32 (N, C, H, W) in [0, 1], y int64 class indices.

    :param name: One of :func:`dataset_names`, e.g. ``"fashion-mnist"``.
    :param split: ``"train"`` or ``"test"``.
    :param root: Folder holding the data in torchvision's layout; searched first.
    """
    key = name.lower().replace("_", "-")
    if key not in _LOADERS:
        raise ValueError(f"Unknown dataset {name!r} for `name`; known datasets: {', '.join(dataset_names())}.")
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}, got {split!r}.")
    return _LOADERS[key](split, root)
