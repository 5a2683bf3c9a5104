"""RobustBench teachers by name, offline: the import fix, loading from RobustBench's cache layout, clear errors.

The checkpoints are randomly initialised networks (a WideResNet-34-10, a ResNet-50) written where RobustBench's
loader looks for ``Zhang2019Theoretically`` and ``Engstrom2019Robustness``; no test touches the network (downloads
are disabled or replaced by a failing stub, or the file is there).
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from art.estimators.classification import PyTorchClassifier

from art_rslad.experiments.columns import load_surrogate
from art_rslad.experiments.config import get_preset
from art_rslad.models import create_model
from art_rslad.robustbench import (
    INSTALL_HINT,
    MODEL_DIR_ENV,
    PAPER_TEACHERS,
    import_robustbench,
    load_robustbench_teacher,
    robustbench_card,
)

NAME = "Zhang2019Theoretically"
RESNET50 = "Engstrom2019Robustness"


def _zoo_entry(name: str, dataset: str = "cifar10", threat_model: str = "Linf") -> dict:
    utils = import_robustbench()
    return utils.all_models[utils.BenchmarkDataset(dataset)][utils.ThreatModel(threat_model)][name]


def test_import_gives_robustbench_its_two_missing_names_only_while_importing() -> None:
    utils = import_robustbench()
    assert callable(utils.load_model)
    for name in ("autoattack", "autoattack.state", "pkg_resources"):
        module = sys.modules.get(name)
        # Either the real package is installed, or the alias was removed after the import.
        assert module is None or "art-rslad" not in (module.__doc__ or "")
        assert module is None or getattr(module, "__name__", "") != "pyautoattack"
    # robustbench.loaders keeps the pkg_resources it imported; its one call resolves robustbench's own file.
    loaders = sys.modules["robustbench.loaders"]
    helper = loaders.pkg_resources.resource_filename("robustbench.loaders", "helper_files/imagenet_test_image_ids.txt")
    assert Path(helper).is_file()
    # robustbench.eval imported AutoAttack through the alias (pyautoattack's class) unless the GitHub package is here.
    provider = "autoattack" if importlib.util.find_spec("autoattack") is not None else "pyautoattack"
    assert sys.modules["robustbench.eval"].AutoAttack is importlib.import_module(provider).AutoAttack


def test_fresh_interpreter_imports_robustbench_through_our_import_only() -> None:
    script = (
        "import json, sys\n"
        "from art_rslad.robustbench import import_robustbench\n"
        "assert 'robustbench' not in sys.modules\n"
        "import_robustbench()\n"
        "print(json.dumps([name for name in ('autoattack', 'pkg_resources') if name in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", script], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    real = sorted(name for name in ("autoattack", "pkg_resources") if importlib.util.find_spec(name) is not None)
    # Only modules that are really installed may remain (robustbench imports them); no alias outlives the import.
    assert set(json.loads(result.stdout)) <= set(real)


def test_paper_teachers_are_in_robustbench_zoo() -> None:
    for dataset, source in PAPER_TEACHERS.items():
        assert source.startswith("robustbench:")
        assert callable(_zoo_entry(source.removeprefix("robustbench:"), dataset)["model"])


def test_loads_by_name_from_cache_layout_and_predicts_like_the_same_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = _zoo_entry(NAME)["model"]().eval()
    assert sum(p.numel() for p in reference.parameters()) == pytest.approx(48.3e6, rel=0.01)
    # The layout of a DataParallel training checkpoint, which RobustBench's loader unwraps.
    state = {"state_dict": {f"module.{key}": value for key, value in reference.state_dict().items()}}
    path = tmp_path / "cifar10" / "Linf" / f"{NAME}.pt"
    path.parent.mkdir(parents=True)
    torch.save(state, path)

    teacher = load_robustbench_teacher(f"robustbench:{NAME}", model_dir=tmp_path, device="cpu", download=False)

    assert isinstance(teacher, PyTorchClassifier)
    assert type(teacher.model) is type(reference)
    assert teacher.nb_classes == 10
    assert teacher.input_shape == (3, 32, 32)
    assert tuple(float(v) for v in teacher.clip_values) == (0.0, 1.0)
    assert teacher.preprocessing is None
    assert not teacher.model.training
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(x).numpy()
    assert torch.allclose(torch.from_numpy(teacher.predict(x.numpy())), torch.from_numpy(expected), atol=1e-5)


def test_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "robustbench", None)
    monkeypatch.setitem(sys.modules, "robustbench.utils", None)
    with pytest.raises(ImportError, match=re.escape(INSTALL_HINT)):
        load_robustbench_teacher(NAME, model_dir="unused")


def test_missing_file_without_download_names_the_cache_path(tmp_path: Path) -> None:
    expected = tmp_path / "cifar10" / "Linf" / f"{NAME}.pt"
    with pytest.raises(FileNotFoundError, match="download=False") as raised:
        load_robustbench_teacher(NAME, model_dir=tmp_path, download=False)
    assert str(expected) in str(raised.value)


def test_failed_download_is_reraised_naming_the_cache_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    utils = import_robustbench()
    calls: list[tuple[str, Path]] = []

    def no_network(gdrive_id: str, path: Path) -> None:
        calls.append((gdrive_id, path))
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(utils, "download_gdrive_new", no_network)
    expected = tmp_path / "cifar100" / "Linf" / "Gowal2020Uncovering.pt"
    with pytest.raises(FileNotFoundError, match="Name or service not known") as raised:
        load_robustbench_teacher("Gowal2020Uncovering", dataset="cifar100", model_dir=tmp_path)
    assert str(expected) in str(raised.value)
    assert calls == [(_zoo_entry("Gowal2020Uncovering", "cifar100")["gdrive_id"], expected)]


def test_corrupt_cached_file_is_a_clear_value_error(tmp_path: Path) -> None:
    path = tmp_path / "cifar10" / "Linf" / f"{NAME}.pt"
    path.parent.mkdir(parents=True)
    buffer = io.BytesIO()
    torch.save({"weight": torch.ones(1000)}, buffer)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])  # an interrupted copy
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_robustbench_teacher(NAME, model_dir=tmp_path, download=False)


def test_bad_arguments_are_value_errors_naming_them(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Did you mean Zhang2019Theoretically"):
        load_robustbench_teacher("Zhang2019Theoretical", model_dir=tmp_path, download=False)
    with pytest.raises(ValueError, match="`dataset`"):
        load_robustbench_teacher(NAME, dataset="mnist", model_dir=tmp_path)
    with pytest.raises(ValueError, match="`threat_model`"):
        load_robustbench_teacher(NAME, threat_model="L1", model_dir=tmp_path)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="`device`"):
            load_robustbench_teacher(NAME, model_dir=tmp_path, device="cuda")
    with pytest.raises(ValueError, match="timm"):
        load_robustbench_teacher("Debenedetti2022Light_XCiT-S12", model_dir=tmp_path, download=False)


def test_card_records_reported_numbers_marked_as_reported() -> None:
    card = robustbench_card(PAPER_TEACHERS["cifar10"])
    assert card["robustbench_name"] == NAME
    assert (card["dataset"], card["threat_model"], card["eps"]) == ("cifar10", "Linf", 8 / 255)
    assert (card["clean_accuracy"], card["autoattack_accuracy"]) == (pytest.approx(0.8492), pytest.approx(0.5308))
    assert "reported by RobustBench" in card["accuracy_source"]
    assert "not measured" in card["accuracy_source"]
    cifar100 = robustbench_card("Gowal2020Uncovering", dataset="cifar-100")
    assert (cifar100["clean_accuracy"], cifar100["autoattack_accuracy"]) == (pytest.approx(0.6086),
                                                                             pytest.approx(0.3003))
    unknown = robustbench_card("Wong2020Fast")
    assert unknown["clean_accuracy"] is None
    assert "not in art-rslad's table" in unknown["accuracy_source"]


def test_cifar10_presets_transfer_surrogate_loads_from_the_cache_layout(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The paper's robust ResNet-50 surrogate, by the name the CIFAR-10 presets give it; its weights are those of
    the registry's ``resnet50`` behind RobustBench's input normalisation."""
    config = get_preset("cifar10-resnet18")
    assert {get_preset(name).transfer_surrogate for name in ("cifar10-resnet18", "cifar10-mobilenetv2")} == {
        f"robustbench:{RESNET50}"}
    torch.manual_seed(0)
    reference = _zoo_entry(RESNET50)["model"]().eval()
    path = tmp_path / "cifar10" / "Linf" / f"{RESNET50}.pt"
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path))

    surrogate = load_surrogate(config, ("clean", "transfer_pgd"), device="cpu")

    assert isinstance(surrogate, PyTorchClassifier) and not surrogate.model.training
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(x)
    assert torch.allclose(torch.from_numpy(surrogate.predict(x.numpy())), expected, atol=1e-4)
    ours = create_model("resnet50").eval()
    ours.load_state_dict({key: value for key, value in reference.state_dict().items() if key not in ("mu", "sigma")})
    with torch.no_grad():
        assert torch.allclose(ours((x - reference.mu) / reference.sigma), expected, atol=1e-4)
    assert load_surrogate(config, ("clean", "autoattack")) is None  # no transfer attack: nothing is loaded
