"""Session factory: providers per device, the CUDA fallback warning, install conflicts, unloadable models."""

from __future__ import annotations

import warnings
from pathlib import Path

import onnxruntime as ort
import pytest
from runtime_files import TINY, TINY_NOMETA

from cifar_runtime import CifarRuntimeWarning, Classifier, ModelError, UsageError, session
from cifar_runtime.session import CPU, CUDA, open_session, requested_providers

NO_CUDA = CUDA not in ort.get_available_providers()


def test_requested_providers() -> None:
    assert requested_providers("cpu", None) == [CPU]
    assert requested_providers("cuda", None) == [CUDA, CPU]
    assert requested_providers("auto", None) == [CUDA, CPU]
    assert requested_providers("cuda", [CPU, CPU]) == [CPU]  # an explicit list wins, deduplicated
    for bad_device in ("gpu", "CUDA", ""):
        with pytest.raises(UsageError, match="device must be one of auto, cpu, cuda"):
            requested_providers(bad_device, None)
    for bad_list in ([], "CPUExecutionProvider", [1]):
        with pytest.raises(UsageError, match="providers must be"):
            requested_providers("auto", bad_list)  # type: ignore[arg-type]


def test_auto_and_cpu_are_quiet() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Classifier(TINY).providers[0] in (CUDA, CPU)
        assert Classifier(TINY, device="cpu").providers == [CPU]
        assert Classifier(TINY, providers=[CPU]).providers == [CPU]


@pytest.mark.skipif(not NO_CUDA, reason="this onnxruntime has CUDA; the fallback is tested on CPU-only builds")
def test_cuda_falls_back_to_cpu_with_one_warning_naming_the_reason() -> None:
    with pytest.warns(CifarRuntimeWarning) as record:
        classifier = Classifier(TINY, device="cuda")
    assert classifier.providers == [CPU]
    (warning,) = record
    message = str(warning.message)
    assert "\n" not in message
    assert "CUDAExecutionProvider not used (this onnxruntime build has no CUDA" in message
    assert "onnxruntime-gpu" in message and message.endswith("running on CPUExecutionProvider")


def test_unknown_explicit_provider_warns() -> None:
    with pytest.warns(CifarRuntimeWarning, match="NoSuchExecutionProvider not used"):
        assert Classifier(TINY, providers=["NoSuchExecutionProvider", CPU]).providers == [CPU]


def test_two_onnxruntime_wheels_give_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "installed_ort_wheels", lambda: ["onnxruntime", "onnxruntime-gpu"])
    hint = session.install_conflict()
    assert hint is not None and "onnxruntime and onnxruntime-gpu are both installed" in hint
    assert "pip uninstall -y onnxruntime onnxruntime-gpu" in hint
    with pytest.warns(CifarRuntimeWarning, match="both installed"):
        open_session(TINY, device="cpu")
    monkeypatch.setattr(session, "installed_ort_wheels", lambda: ["onnxruntime"])
    assert session.install_conflict() is None


def test_installed_wheels_are_read_from_package_metadata() -> None:
    assert session.installed_ort_wheels()  # whichever wheel provides the onnxruntime imported above


def _bad_models(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    data = TINY.read_bytes()
    files = {
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "not_onnx": b"\x89PNG\r\n\x1a\n not a model at all",
        "text": b"hello\n",
    }
    cases = {name: (tmp_path / f"{name}.onnx", "cannot load model") for name in files}
    for name, content in files.items():
        cases[name][0].write_bytes(content)
    cases["missing"] = (tmp_path / "absent.onnx", "model file not found")
    cases["folder"] = (tmp_path, "is a folder, not a model file")
    cases["no_metadata"] = (TINY_NOMETA, "lacks the metadata 'arch'")
    return cases


def test_bad_model_files_raise_one_line_model_errors(tmp_path: Path) -> None:
    for name, (path, expected) in _bad_models(tmp_path).items():
        with pytest.raises(ModelError) as caught:
            Classifier(path, device="cpu")
        message = str(caught.value)
        assert expected in message and "\n" not in message, (name, message)


@pytest.mark.parametrize(("device", "index"), [("auto", 0), ("cpu", 0), ("cuda", 0), ("cuda:0", 0), ("cuda:3", 3)])
def test_a_device_names_its_gpu(device: str, index: int) -> None:
    from cifar_runtime.session import gpu_index

    assert gpu_index(device) == index


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "cpu:1", ""])
def test_anything_else_is_not_a_device(device: str) -> None:
    from cifar_runtime.session import gpu_index

    with pytest.raises(UsageError, match="device must be one of auto, cpu, cuda, cuda:N"):
        gpu_index(device)


def test_cuda_n_without_a_gpu_falls_back_to_cpu_with_one_warning() -> None:
    with pytest.warns(CifarRuntimeWarning, match="CUDAExecutionProvider not used") as caught:
        clf = Classifier(TINY, device="cuda:1")
    assert clf.providers == ["CPUExecutionProvider"] and len(caught) == 1
