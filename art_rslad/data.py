"""Datasets as numpy arrays in [0, 1], found offline where possible, plus splits and augmented loaders.

``load_dataset(name, split)`` knows CIFAR-10, CIFAR-100, SVHN, MNIST and Fashion-MNIST (through torchvision) and
scikit-learn's 8x8 digits. Each looks for its files in this order: an explicit ``root``, the folder named by
``$ART_RSLAD_DATA``, the cache folder (:func:`cache_dir`), for Fashion-MNIST the Debian package
``dataset-fashion-mnist`` (its gzip files are decompressed into the cache, since their bytes differ from
torchvision's checksums), and last torchvision's download. CIFAR batches and SVHN's ``.mat`` files are read by
this module (CIFAR's pickles through an unpickler that only builds numpy arrays); torchvision only fetches them.

:func:`dataset_info` gives each dataset's input shape, class count, default L-inf ``eps`` and the paper's
augmentation; :func:`train_val_split` holds out the validation split (10%, fixed by the seed; see
docs/decisions.md, "Validation split and the best checkpoint");
:func:`make_data_loader` and :func:`make_data_generator` feed trainers, with RandomCrop(padding 4) + horizontal
flip for CIFAR as in the paper.
"""

from __future__ import annotations

import gzip
import logging
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from art.data_generators import PyTorchDataGenerator
from torchvision.datasets import CIFAR10, CIFAR100, MNIST, SVHN, FashionMNIST

logger = logging.getLogger(__name__)

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte")
SPLITS = ("train", "test")
#: The augmentations of :func:`make_data_loader`: none, a random crop after zero padding, the crop and a flip.
AUGMENTATIONS = ("none", "crop", "crop-flip")


@dataclass(frozen=True)
class DatasetInfo:
    """What a trainer and an attack need to know about a dataset.

    :param name: Canonical name, e.g. ``"cifar10"``.
    :param input_shape: (C, H, W) of one image.
    :param nb_classes: Number of classes.
    :param eps: Default L-inf budget, on the scale of ``clip_values``.
    :param augmentation: Training augmentation of the paper's recipe, one of :data:`AUGMENTATIONS`.
    :param clip_values: Range of the pixel values.
    """

    name: str
    input_shape: tuple[int, int, int]
    nb_classes: int
    eps: float
    augmentation: str = "none"
    clip_values: tuple[float, float] = (0.0, 1.0)

    @property
    def eps_step(self) -> float:
        """Training PGD step size, eps / 4 (see docs/decisions.md, "Step sizes scale with eps")."""
        return self.eps / 4


_INFO: dict[str, DatasetInfo] = {
    info.name: info for info in (
        DatasetInfo("cifar10", (3, 32, 32), 10, 8 / 255, "crop-flip"),
        DatasetInfo("cifar100", (3, 32, 32), 100, 8 / 255, "crop-flip"),
        DatasetInfo("svhn", (3, 32, 32), 10, 8 / 255, "crop"),
        DatasetInfo("mnist", (1, 28, 28), 10, 0.1),
        DatasetInfo("fashion-mnist", (1, 28, 28), 10, 0.1),
        DatasetInfo("digits", (1, 8, 8), 10, 0.1),
    )
}
_ALIASES = {"cifar-10": "cifar10", "cifar-100": "cifar100", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist"}


def dataset_names() -> list[str]:
    """Names accepted by :func:`load_dataset` and :func:`dataset_info`."""
    return sorted(_INFO)


def _canonical(name: str) -> str:
    key = name.lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in _INFO:
        raise ValueError(f"Unknown dataset {name!r}; known datasets: {', '.join(dataset_names())}.")
    return key


def dataset_info(name: str) -> DatasetInfo:
    """Input shape, class count, default eps (0.1 for the 28x28 and 8x8 sets, 8/255 for CIFAR and SVHN),
    augmentation and clip_values (0, 1) of dataset ``name``."""
    return _INFO[_canonical(name)]


def cache_dir() -> Path:
    """The folder where decompressed and downloaded datasets are kept (``$XDG_CACHE_HOME/art-rslad``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "art-rslad" / "data"


def _find_root(
    root: str | os.PathLike[str] | None,
    present: Callable[[Path], bool],
    unpack_into_cache: Callable[[Path], bool] | None = None,
) -> tuple[Path, bool]:
    """Return (folder, whether torchvision must download) after trying root, $ART_RSLAD_DATA, the cache and
    ``unpack_into_cache``; the download goes into the first of root, $ART_RSLAD_DATA, the cache."""
    candidates = [Path(root)] if root is not None else []
    if os.environ.get("ART_RSLAD_DATA"):
        candidates.append(Path(os.environ["ART_RSLAD_DATA"]))
    cache = cache_dir()
    for candidate in [*candidates, cache]:
        if present(candidate):
            return candidate, False
    if unpack_into_cache is not None and unpack_into_cache(cache):
        return cache, False
    return (candidates[0] if candidates else cache), True


def _not_found(name: str, root: str | os.PathLike[str] | None, error: Exception, hint: str = "") -> FileNotFoundError:
    places = [str(Path(root))] if root is not None else []
    if os.environ.get("ART_RSLAD_DATA"):
        places.append(os.environ["ART_RSLAD_DATA"] + " ($ART_RSLAD_DATA)")
    places += [str(cache_dir()), *([hint] if hint else []), "torchvision download"]
    return FileNotFoundError(
        f"{name} was not found. Looked in: " + "; ".join(places) + f". Pass root= a folder holding it. ({error})"
    )


def _has_raw_idx(folder: str) -> Callable[[Path], bool]:
    return lambda root: all((root / folder / "raw" / name).is_file() for name in _MNIST_FILES)


def _unpack_debian_fashion(target: Path) -> bool:
    """Decompress the Debian package's gzip files into ``target/FashionMNIST/raw``; False when absent."""
    sources = [DEBIAN_FASHION_MNIST / f"{name}.gz" for name in _MNIST_FILES]
    if not all(path.is_file() for path in sources):
        return False
    raw = target / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for source, name in zip(sources, _MNIST_FILES, strict=True):
        destination = raw / name
        if destination.is_file():
            continue
        partial = destination.with_suffix(".partial")
        with gzip.open(source, "rb") as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst)
        partial.replace(destination)
    logger.info("Fashion-MNIST unpacked from %s into %s", DEBIAN_FASHION_MNIST, target)
    return True


def _to_unit_float(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, H, W), (N, H, W, C) or (N, C, H, W) to float32 (N, C, H, W) in [0, 1]."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[:, None, :, :]
    elif x.ndim == 4 and x.shape[-1] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x / 255.0, dtype=np.float32)


def _load_idx(name: str, split: str, root: str | os.PathLike[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST or Fashion-MNIST through torchvision (raw idx files, no checksum on load)."""
    fashion = name == "fashion-mnist"
    dataset_class = FashionMNIST if fashion else MNIST
    folder, download = _find_root(root, _has_raw_idx(dataset_class.__name__),
                                  _unpack_debian_fashion if fashion else None)
    try:
        dataset = dataset_class(str(folder), train=split == "train", download=download)
    except (RuntimeError, OSError) as error:
        hint = f"{DEBIAN_FASHION_MNIST} (apt-get install dataset-fashion-mnist)" if fashion else ""
        raise _not_found(dataset_class.__name__, root, error, hint) from error
    return _to_unit_float(dataset.data.numpy()), dataset.targets.numpy().astype(np.int64)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR's batch files that builds numpy arrays and plain containers, nothing else."""

    _ALLOWED = frozenset({("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                          ("numpy", "ndarray"), ("numpy", "dtype")})

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load the global {module}.{name} from a data file")
        if name == "_reconstruct":
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own _reconstruct, whichever module holds it
        return getattr(np, name)


def _read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as file:
            entry = _ArrayUnpickler(file, encoding="latin1").load()
        data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry[label_key], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path} is not a CIFAR batch file ({type(error).__name__}: {error}).") from error
    if len(labels) != len(data):
        raise ValueError(f"{path}: {len(data)} images but {len(labels)} labels.")
    return data, labels


_CIFAR_LAYOUT = {  # name -> (folder, train files, test files, label key)
    "cifar10": ("cifar-10-batches-py", tuple(f"data_batch_{index}" for index in range(1, 6)), ("test_batch",),
                "labels"),
    "cifar100": ("cifar-100-python", ("train",), ("test",), "fine_labels"),
}


def _load_cifar(name: str, split: str, root: str | os.PathLike[str] | None) -> tuple[np.ndarray, np.ndarray]:
    folder_name, train_files, test_files, label_key = _CIFAR_LAYOUT[name]
    files = train_files if split == "train" else test_files
    folder, download = _find_root(root, lambda base: all((base / folder_name / f).is_file() for f in files))
    if download:
        try:
            (CIFAR10 if name == "cifar10" else CIFAR100)(str(folder), train=split == "train", download=True)
        except (RuntimeError, OSError) as error:
            raise _not_found(name.upper(), root, error) from error
    batches = [_read_cifar_batch(folder / folder_name / file, label_key) for file in files]
    x = np.concatenate([data for data, _ in batches])
    y = np.concatenate([labels for _, labels in batches])
    return _to_unit_float(x), y


def _load_svhn(name: str, split: str, root: str | os.PathLike[str] | None) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat  # optional dependency, needed only for SVHN's .mat files

    file_name = f"{split}_32x32.mat"
    folder, download = _find_root(root, lambda base: (base / file_name).is_file())
    if download:
        try:
            SVHN(str(folder), split=split, download=True)
        except (RuntimeError, OSError) as error:
            raise _not_found("SVHN", root, error) from error
    content = loadmat(str(folder / file_name))
    x = np.transpose(content["X"], (3, 2, 0, 1))  # (H, W, C, N) -> (N, C, H, W)
    y = content["y"].astype(np.int64).reshape(-1) % 10  # SVHN labels the digit 0 as 10
    return _to_unit_float(x), y


_DIGITS_TEST_FRACTION = 0.2


def _load_digits(name: str, split: str, root: str | os.PathLike[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (1,797 images, values 0-16), split 80/20 by a fixed permutation (seed 0)."""
    from sklearn.datasets import load_digits  # optional dependency (scikit-learn), needed only for this dataset

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = digits.target.astype(np.int64)
    test_index, train_index = _split_indices(len(x), _DIGITS_TEST_FRACTION, seed=0)
    index = train_index if split == "train" else test_index
    return np.ascontiguousarray(x[index]), y[index]


_LOADERS: dict[str, Callable[[str, str, str | os.PathLike[str] | None], tuple[np.ndarray, np.ndarray]]] = {
    "cifar10": _load_cifar, "cifar100": _load_cifar, "svhn": _load_svhn, "mnist": _load_idx,
    "fashion-mnist": _load_idx, "digits": _load_digits,
}


def load_dataset(
    name: str, split: str = "train", root: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load a dataset as ``(x, y)``: x float32 (N, C, H, W) in [0, 1], y int64 class indices.

    :param name: One of :func:`dataset_names`, e.g. ``"fashion-mnist"`` or ``"cifar10"``.
    :param split: ``"train"`` or ``"test"``.
    :param root: Folder holding the data in torchvision's layout; searched first.
    """
    key = _canonical(name)
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}, got {split!r}.")
    return _LOADERS[key](key, split, root)


def _split_indices(size: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(held-out indices, remaining indices), the held-out part ``round(fraction * size)`` long, at least 1."""
    permutation = np.random.default_rng(seed).permutation(size)
    count = max(1, round(fraction * size))
    return np.sort(permutation[:count]), np.sort(permutation[count:])


def train_val_split(
    x: np.ndarray, y: np.ndarray, val_fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out a validation split of the training set, the same one for the same seed.

    :param x: Training inputs, first axis the samples.
    :param y: Training labels, same length as ``x``.
    :param val_fraction: Fraction held out, in (0, 1); 0.1 by default (see docs/decisions.md, "Validation split
        and the best checkpoint").
    :param seed: Seed of the permutation.
    :return: ``(x_train, y_train, x_val, y_val)``.
    """
    if len(x) != len(y):
        raise ValueError(f"`x` and `y` must have the same length, got {len(x)} and {len(y)}.")
    if not 0 < val_fraction < 1:
        raise ValueError(f"`val_fraction` must be in (0, 1), got {val_fraction}.")
    if len(x) < 2:
        raise ValueError(f"`x` needs at least 2 samples to split, got {len(x)}.")
    val_index, train_index = _split_indices(len(x), val_fraction, seed)
    return x[train_index], y[train_index], x[val_index], y[val_index]


def augment_batch(
    x: torch.Tensor, augmentation: str, generator: torch.Generator | None = None, padding: int = 4
) -> torch.Tensor:
    """Random crop after zero padding (and, for ``"crop-flip"``, a horizontal flip with probability 1/2).

    Equivalent per image to torchvision's ``RandomCrop(size, padding)`` + ``RandomHorizontalFlip()``, done for the
    whole batch at once on ``x``'s device. Returns a new tensor; ``x`` is not changed.

    :param x: Images (B, C, H, W).
    :param augmentation: One of :data:`AUGMENTATIONS`.
    :param generator: Source of randomness (on ``x``'s device); torch's default generator when None.
    :param padding: Pixels of zero padding on each side before cropping back to (H, W).
    """
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"`augmentation` must be one of {AUGMENTATIONS}, got {augmentation!r}.")
    if augmentation == "none":
        return x.clone()
    batch, _, height, width = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    top = torch.randint(0, 2 * padding + 1, (batch,), generator=generator, device=x.device)
    left = torch.randint(0, 2 * padding + 1, (batch,), generator=generator, device=x.device)
    rows = (top[:, None] + torch.arange(height, device=x.device))[:, None, :, None]
    cols = (left[:, None] + torch.arange(width, device=x.device))[:, None, None, :]
    samples = torch.arange(batch, device=x.device)[:, None, None, None]
    channels = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    out = padded[samples, channels, rows, cols]
    if augmentation == "crop-flip":
        flip = torch.rand(batch, generator=generator, device=x.device) < 0.5
        out = torch.where(flip[:, None, None, None], out.flip(-1), out)
    return out


def make_data_loader(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int = 128,
    *,
    augmentation: str = "none",
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = False,
) -> torch.utils.data.DataLoader:
    """A DataLoader of ``(x, y)`` tensor batches from in-memory arrays, shuffled and augmented reproducibly.

    :param x: Inputs (N, C, H, W), float in [0, 1].
    :param y: Labels (N,) as class indices (or (N, C) one-hot).
    :param batch_size: Batch size.
    :param augmentation: One of :data:`AUGMENTATIONS`; ``dataset_info(name).augmentation`` is the paper's choice.
    :param shuffle: Reshuffle each epoch.
    :param seed: Seed of the shuffling and the augmentation.
    :param drop_last: Drop the last incomplete batch.
    """
    if len(x) != len(y):
        raise ValueError(f"`x` and `y` must have the same length, got {len(x)} and {len(y)}.")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size}.")
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"`augmentation` must be one of {AUGMENTATIONS}, got {augmentation!r}.")
    generator = torch.Generator().manual_seed(seed)
    dataset = _AugmentedArrays(torch.as_tensor(np.asarray(x, dtype=np.float32)), torch.as_tensor(y),
                               augmentation, generator)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                                       generator=generator, collate_fn=dataset.collate)


class _AugmentedArrays(torch.utils.data.Dataset):
    """In-memory tensors whose collate function augments the whole batch at once (see :func:`augment_batch`)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, augmentation: str, generator: torch.Generator) -> None:
        self.x, self.y, self.augmentation, self.generator = x, y, augmentation, generator

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> int:
        return index

    def collate(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices)
        return augment_batch(self.x[index], self.augmentation, self.generator), self.y[index]


def make_data_generator(
    x: np.ndarray, y: np.ndarray, batch_size: int = 128, **loader_options: Any
) -> PyTorchDataGenerator:
    """An ART ``PyTorchDataGenerator`` over :func:`make_data_loader` (what ``fit_generator`` takes).

    :param x: Inputs (N, C, H, W), float in [0, 1].
    :param y: Labels (N,) as class indices (or (N, C) one-hot).
    :param batch_size: Batch size.
    :param loader_options: ``augmentation``, ``shuffle``, ``seed`` and ``drop_last``, as in
        :func:`make_data_loader` (and with its defaults).
    """
    loader = make_data_loader(x, y, batch_size, **loader_options)
    size = len(loader) * batch_size if loader.drop_last else len(x)  # the samples one pass over the loader yields
    return PyTorchDataGenerator(loader, size=size, batch_size=batch_size)
