"""Model registry, architectures, safe state-dict loading and the ART wrapper."""

from __future__ import annotations

import collections
import importlib.util
import pathlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.models import (
    count_parameters,
    create_model,
    list_models,
    load_weights,
    make_classifier,
    model_parameter_count,
    read_state_dict,
    resolve_device,
)

PYAUTOATTACK_DIR = Path(importlib.util.find_spec("pyautoattack").origin).parent
PYAUTOATTACK_RESNET18 = PYAUTOATTACK_DIR / "examples" / "model_test.pt"


def test_registry_lists_the_papers_models_and_the_cpu_cnns() -> None:
    assert {"resnet18", "mobilenetv2", "resnet50", "wrn-34-10", "wrn-70-16", "wideresnet", "cnn-small", "cnn-large",
            "cnn-pool"} <= set(list_models())


@pytest.mark.parametrize(("name", "shape"), [("resnet18", (3, 32, 32)), ("mobilenetv2", (3, 32, 32)),
                                             ("resnet50", (3, 32, 32)), ("cnn-small", (1, 28, 28)),
                                             ("cnn-large", (1, 28, 28)), ("cnn-pool", (1, 28, 28))])
def test_models_output_one_logit_per_class(name: str, shape: tuple[int, ...]) -> None:
    model = create_model(name, nb_classes=7).eval()
    with torch.no_grad():
        assert model(torch.rand(2, *shape)).shape == (2, 7)


def test_wideresnet_depth_and_width_are_configurable() -> None:
    small = create_model("wideresnet", nb_classes=10, depth=10, widen_factor=1).eval()
    with torch.no_grad():
        assert small(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert model_parameter_count("wideresnet", depth=34, widen_factor=10) == model_parameter_count("wrn-34-10")
    # Parameter counts of the paper's teachers (TRADES layout): 46.2M and 266.8M.
    assert 46e6 < model_parameter_count("wrn-34-10") < 46.5e6
    assert 266e6 < model_parameter_count("wrn-70-16") < 268e6
    with pytest.raises(ValueError, match="depth"):
        create_model("wideresnet", depth=30)


def test_resnet50_is_the_cifar_bottleneck_resnet_of_the_papers_surrogate() -> None:
    model = create_model("resnet50")
    assert count_parameters(model) == model_parameter_count("resnet50")
    assert 23.4e6 < count_parameters(model) < 23.6e6  # RobustBench's Engstrom2019Robustness: 23.5M
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert not any(isinstance(module, torch.nn.MaxPool2d) for module in model.modules())
    assert [len(stage) for stage in (model.layer1, model.layer2, model.layer3, model.layer4)] == [3, 4, 6, 3]
    assert model.layer1[0].conv3.out_channels == 256 and model.linear.in_features == 2048


def test_cnn_pool_differs_from_the_student_and_teacher_it_attacks() -> None:
    pool = create_model("cnn-pool")
    assert any(isinstance(module, torch.nn.MaxPool2d) for module in pool.modules())
    assert not any(isinstance(module, torch.nn.BatchNorm2d) for module in pool.modules())
    assert 100_000 < count_parameters(pool) < 110_000  # its zoo file stays well under 1 MB
    eight = create_model("cnn-pool", input_shape=(1, 8, 8)).eval()
    with torch.no_grad():
        assert eight(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(ValueError, match="hidden"):
        create_model("cnn-pool", hidden=0)


def test_meta_parameter_count_equals_the_real_one() -> None:
    for name in ("cnn-small", "cnn-large", "mobilenetv2"):
        assert model_parameter_count(name, 10) == count_parameters(create_model(name, 10))
    assert 300_000 < model_parameter_count("cnn-large") < 350_000  # the zoo teacher's size (design.md)


def test_unknown_model_and_option_name_what_is_known() -> None:
    with pytest.raises(ValueError, match=r"known models:.*resnet18"):
        create_model("resnet19")
    with pytest.raises(ValueError, match=r"no option.*depth.*in_channels"):
        create_model("resnet18", depth=18)
    with pytest.raises(ValueError, match="nb_classes"):
        create_model("resnet18", nb_classes=1)


def test_pyautoattack_resnet18_checkpoint_loads_and_matches_its_reference_model() -> None:
    """The state dict shipped with pyautoattack: legacy (non-zip) torch format, saved on CUDA."""
    assert not zipfile.is_zipfile(PYAUTOATTACK_RESNET18)
    ours = load_weights(create_model("resnet18"), PYAUTOATTACK_RESNET18).eval()
    spec = importlib.util.spec_from_file_location("pyautoattack_resnet", PYAUTOATTACK_DIR / "examples" / "resnet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    reference = module.ResNet18()
    reference.load_state_dict(torch.load(PYAUTOATTACK_RESNET18, map_location="cpu", weights_only=True))
    reference.eval()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-4)


def _cnn_state(nb_classes: int = 10) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return create_model("cnn-small", nb_classes).state_dict()


@pytest.mark.parametrize("wrap", ["module", "model", "module.model", "state_dict", "checkpoint"])
def test_common_prefixes_and_wrappers_are_unwrapped(tmp_path: Path, wrap: str) -> None:
    state = _cnn_state()
    if wrap == "state_dict":
        payload: object = {"state_dict": state, "epoch": 3}
    elif wrap == "checkpoint":
        payload = {"model_state": {f"module.{k}": v for k, v in state.items()}, "optimizer_state": {}}
    else:
        payload = {f"{wrap}.{k}": v for k, v in state.items()}
    torch.save(payload, tmp_path / "w.pt")
    model = load_weights(create_model("cnn-small"), tmp_path / "w.pt")
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key])


def test_old_checkpoints_without_num_batches_tracked_load(tmp_path: Path) -> None:
    state = {k: v for k, v in _cnn_state().items() if not k.endswith("num_batches_tracked")}
    torch.save(collections.OrderedDict(state), tmp_path / "old.pt")
    load_weights(create_model("cnn-small"), tmp_path / "old.pt")


def test_trades_wideresnet_unused_sub_block_is_dropped(tmp_path: Path) -> None:
    model = create_model("wideresnet", depth=10, widen_factor=1)
    state = dict(model.state_dict())
    state.update({f"sub_block1.{k}": v for k, v in state.items() if k.startswith("block1.")})
    torch.save(state, tmp_path / "trades.pt")
    load_weights(create_model("wideresnet", depth=10, widen_factor=1), tmp_path / "trades.pt")


def test_another_architecture_is_refused_naming_the_keys(tmp_path: Path) -> None:
    torch.save(_cnn_state(), tmp_path / "cnn.pt")
    with pytest.raises(ValueError, match=r"missing keys: .*conv1\.weight.*unexpected keys: .*features"):
        load_weights(create_model("resnet18"), tmp_path / "cnn.pt")


def test_another_class_count_is_refused_with_a_hint(tmp_path: Path) -> None:
    torch.save(_cnn_state(nb_classes=10), tmp_path / "ten.pt")
    with pytest.raises(ValueError, match=r"classifier\.0\.weight file \(10, 1568\) vs model \(5, 1568\).*"
                                         r"10 classes, the model 5; pass the matching nb_classes"):
        load_weights(create_model("cnn-small", nb_classes=5), tmp_path / "ten.pt")


def test_truncated_and_corrupt_files_raise_value_error(tmp_path: Path) -> None:
    torch.save(_cnn_state(), tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    legacy_truncated = PYAUTOATTACK_RESNET18.read_bytes()[:100_000]
    (tmp_path / "legacy_truncated.pt").write_bytes(legacy_truncated)
    for name in ("truncated.pt", "noise.pt", "legacy_truncated.pt"):
        with pytest.raises(ValueError, match="corrupt"):
            load_weights(create_model("cnn-small"), tmp_path / name)
    with pytest.raises(FileNotFoundError):
        load_weights(create_model("cnn-small"), tmp_path / "absent.pt")


class _RunsCode:
    """Unpickling this object would create a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return pathlib.Path.touch, (self.marker,)


def test_a_pickle_that_would_run_code_is_refused_and_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    torch.save({"conv.weight": torch.zeros(1), "payload": _RunsCode(marker)}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match=r"not a plain state dict|refused"):
        load_weights(create_model("cnn-small"), tmp_path / "evil.pt")
    assert not marker.exists()


def test_files_without_a_state_dict_are_refused(tmp_path: Path) -> None:
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "meta.pt")
    for name in ("list.pt", "meta.pt"):
        with pytest.raises(ValueError, match="not a state dict"):
            read_state_dict(tmp_path / name)


def test_make_classifier_follows_dataset_info() -> None:
    classifier = make_classifier(create_model("cnn-small"), "fashion-mnist", lr=0.05, weight_decay=1e-4, device="cpu")
    assert isinstance(classifier, PyTorchClassifier)
    assert classifier.input_shape == (1, 28, 28) and classifier.nb_classes == 10
    assert tuple(classifier.clip_values) == (0.0, 1.0)
    group = classifier.optimizer.param_groups[0]
    assert isinstance(classifier.optimizer, torch.optim.SGD)
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.05, 0.9, 1e-4)
    assert classifier.predict(np.random.rand(3, 1, 28, 28).astype(np.float32)).shape == (3, 10)
    cifar100 = make_classifier(create_model("resnet18", 100), "cifar100", device="cpu")
    assert cifar100.nb_classes == 100 and cifar100.input_shape == (3, 32, 32)
    with pytest.raises(ValueError, match="known datasets"):
        make_classifier(create_model("cnn-small"), "imagenet")


def test_device_choice() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(None) == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA variant of test_make_classifier_follows_dataset_info")
def test_make_classifier_on_cuda() -> None:
    classifier = make_classifier(create_model("cnn-small"), "fashion-mnist", device="cuda")
    assert classifier.device.type == "cuda"
    assert classifier.predict(np.random.rand(2, 1, 28, 28).astype(np.float32)).shape == (2, 10)


@pytest.mark.parametrize(("name", "input_shape"), [("cnn-small", (1, 8, 8)), ("cnn-large", (3, 32, 32)),
                                                   ("resnet18", (1, 28, 28))])
def test_input_shape_fills_the_architecture_options(name: str, input_shape: tuple[int, int, int]) -> None:
    model = create_model(name, 10, input_shape=input_shape).eval()
    assert model(torch.zeros(2, *input_shape)).shape == (2, 10)


def test_explicit_options_win_over_input_shape() -> None:
    model = create_model("cnn-small", 10, input_shape=(1, 8, 8), width=4, image_size=12)
    assert model(torch.zeros(1, 1, 12, 12)).shape == (1, 10)
    assert model.features[0].out_channels == 4
