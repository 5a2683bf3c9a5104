"""Datasets (CIFAR on small files in CIFAR's own format, SVHN, digits, Fashion-MNIST), splits and augmentation."""

from __future__ import annotations

import pathlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_cifar

from art_rslad.data import (
    augment_batch,
    dataset_info,
    dataset_names,
    load_dataset,
    make_data_generator,
    make_data_loader,
    train_val_split,
)


def test_dataset_info() -> None:
    assert set(dataset_names()) == {"cifar10", "cifar100", "svhn", "mnist", "fashion-mnist", "digits"}
    for name in ("fashion-mnist", "mnist", "digits"):
        assert dataset_info(name).eps == pytest.approx(0.1)
    for name in ("cifar10", "cifar100", "svhn"):
        assert dataset_info(name).eps == pytest.approx(8 / 255)
        assert dataset_info(name).input_shape == (3, 32, 32)
    assert dataset_info("CIFAR-100").nb_classes == 100
    assert dataset_info("fashion_mnist").input_shape == (1, 28, 28)
    assert dataset_info("digits").input_shape == (1, 8, 8)
    assert dataset_info("cifar10").augmentation == "crop-flip"
    assert dataset_info("mnist").eps_step == pytest.approx(0.025)
    assert all(dataset_info(name).clip_values == (0.0, 1.0) for name in dataset_names())
    with pytest.raises(ValueError, match=r"known datasets: cifar10, cifar100"):
        dataset_info("imagenet")
    with pytest.raises(ValueError, match="split"):
        load_dataset("digits", "validation")


def test_cifar10_reads_cifar_batch_files(tmp_path: Path) -> None:
    files = {f"data_batch_{i}": 3 for i in range(1, 6)} | {"test_batch": 4}
    batches = write_cifar(tmp_path, "cifar-10-batches-py", files, "labels")
    x, y = load_dataset("cifar10", "train", root=tmp_path)
    assert x.shape == (15, 3, 32, 32) and x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() >= 0.0 and x.max() <= 1.0
    first = batches["data_batch_1"]["data"][0]
    # Plane layout: red plane first, then green, then blue; each 32 rows of 32 pixels.
    assert x[0, 1, 2, 3] == pytest.approx(first[1024 + 2 * 32 + 3] / 255)
    assert y.tolist() == [label for i in range(1, 6) for label in batches[f"data_batch_{i}"]["labels"]]
    x_test, y_test = load_dataset("cifar-10", "test", root=tmp_path)
    assert x_test.shape == (4, 3, 32, 32) and y_test.tolist() == batches["test_batch"]["labels"]


def test_cifar100_uses_the_fine_labels(tmp_path: Path) -> None:
    batches = write_cifar(tmp_path, "cifar-100-python", {"train": 5, "test": 2}, "fine_labels")
    x, y = load_dataset("cifar100", "train", root=tmp_path)
    assert x.shape == (5, 3, 32, 32) and y.tolist() == batches["train"]["fine_labels"]


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return pathlib.Path.touch, (self.marker,)


def test_a_cifar_batch_that_would_run_code_is_refused(tmp_path: Path) -> None:
    write_cifar(tmp_path, "cifar-100-python", {"train": 2, "test": 2}, "fine_labels")
    marker = tmp_path / "code-ran"
    with open(tmp_path / "cifar-100-python" / "train", "wb") as stream:
        pickle.dump({"data": _RunsCode(marker), "fine_labels": [0]}, stream)
    with pytest.raises(ValueError, match="not a CIFAR batch file"):
        load_dataset("cifar100", "train", root=tmp_path)
    assert not marker.exists()


def test_svhn_reads_mat_files_and_maps_label_10_to_0(tmp_path: Path) -> None:
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (32, 32, 3, 4), dtype=np.uint8)
    savemat(tmp_path / "test_32x32.mat", {"X": images, "y": np.array([[10], [1], [9], [10]], dtype=np.uint8)})
    x, y = load_dataset("svhn", "test", root=tmp_path)
    assert x.shape == (4, 3, 32, 32) and y.tolist() == [0, 1, 9, 0]
    assert x[2, 1, 5, 7] == pytest.approx(images[5, 7, 1, 2] / 255)


def test_digits_split_is_fixed_and_disjoint() -> None:
    x_train, _ = load_dataset("digits", "train")
    x_test, y_test = load_dataset("digits", "test")
    assert x_train.shape[1:] == (1, 8, 8) and len(x_train) + len(x_test) == 1797
    assert x_train.min() >= 0.0 and x_train.max() <= 1.0
    assert 0.15 < len(x_test) / 1797 < 0.25
    train_rows = {row.tobytes() for row in x_train}
    assert sum(row.tobytes() in train_rows for row in x_test) < 5  # digits has a few duplicate images
    np.testing.assert_array_equal(load_dataset("digits", "test")[1], y_test)


def test_fashion_mnist_loads_offline() -> None:
    x, y = load_dataset("fashion-mnist", "test")
    assert x.shape == (10000, 1, 28, 28) and x.dtype == np.float32
    assert sorted(np.unique(y).tolist()) == list(range(10))


def test_train_val_split_holds_out_ten_percent_fixed_by_seed() -> None:
    x = np.arange(200, dtype=np.float32).reshape(200, 1)
    y = np.arange(200) % 10
    x_train, _, x_val, y_val = train_val_split(x, y)
    assert len(x_val) == 20 and len(x_train) == 180
    assert sorted(np.concatenate([x_train, x_val]).ravel().tolist()) == list(range(200))
    np.testing.assert_array_equal(y_val, x_val.ravel().astype(int) % 10)
    np.testing.assert_array_equal(train_val_split(x, y, seed=0)[2], x_val)
    assert not np.array_equal(train_val_split(x, y, seed=1)[2], x_val)
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(x, y, val_fraction=1.0)
    with pytest.raises(ValueError, match="same length"):
        train_val_split(x, y[:10])


def test_crop_flip_takes_a_window_of_the_padded_image() -> None:
    x = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = augment_batch(x, "crop-flip", torch.Generator().manual_seed(1), padding=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for image, source in zip(out, padded, strict=True):
        windows = [source[:, top:top + 8, left:left + 8] for top in range(5) for left in range(5)]
        assert any(torch.equal(image, window) or torch.equal(image, window.flip(-1)) for window in windows)
    flipped = sum(not any(torch.equal(image, source[:, t:t + 8, s:s + 8]) for t in range(5) for s in range(5))
                  for image, source in zip(out, padded, strict=True))
    assert 0 < flipped < 16
    torch.testing.assert_close(out, augment_batch(x, "crop-flip", torch.Generator().manual_seed(1), padding=2))
    assert torch.equal(augment_batch(x, "none"), x)
    with pytest.raises(ValueError, match="augmentation"):
        augment_batch(x, "rotate")


def test_data_loader_visits_every_sample_once_per_epoch_reproducibly() -> None:
    x = np.random.default_rng(0).random((50, 3, 8, 8), dtype=np.float32)
    y = np.arange(50)
    loader = make_data_loader(x, y, batch_size=16, augmentation="crop-flip", seed=3)
    labels = torch.cat([batch_y for _, batch_y in loader])
    assert sorted(labels.tolist()) == list(range(50)) and labels.tolist() != list(range(50))
    again = make_data_loader(x, y, batch_size=16, augmentation="crop-flip", seed=3)
    for (xa, ya), (xb, yb) in zip(make_data_loader(x, y, 16, augmentation="crop-flip", seed=3), again, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    plain = make_data_loader(x, y, batch_size=50, shuffle=False)
    batch_x, _ = next(iter(plain))
    np.testing.assert_array_equal(batch_x.numpy(), x)


def test_data_generator_is_an_art_generator_of_numpy_batches() -> None:
    from art.data_generators import PyTorchDataGenerator

    x = np.random.default_rng(0).random((40, 3, 32, 32), dtype=np.float32)
    generator = make_data_generator(x, np.arange(40) % 10, batch_size=16, augmentation="crop-flip")
    assert isinstance(generator, PyTorchDataGenerator) and generator.size == 40
    batch_x, batch_y = generator.get_batch()
    assert isinstance(batch_x, np.ndarray) and batch_x.shape == (16, 3, 32, 32) and batch_y.shape == (16,)


def test_data_generator_takes_the_loader_options_and_counts_what_drop_last_keeps() -> None:
    x = np.random.default_rng(0).random((40, 3, 8, 8), dtype=np.float32)
    generator = make_data_generator(x, np.arange(40) % 10, 16, shuffle=False, drop_last=True)
    assert generator.size == 32  # two full batches of 16; the last 8 samples are dropped
    batch_x, _ = generator.get_batch()
    np.testing.assert_array_equal(batch_x, x[:16])
    with pytest.raises(TypeError):
        make_data_generator(x, np.arange(40) % 10, 16, shufle=False)
