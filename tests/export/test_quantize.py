"""INT8 and FP16 copies: they run through the runtime, report their accuracy against fp32, say what they are."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from cifar_export.cli import app
from cifar_runtime import Classifier

runner = CliRunner()


def test_airbench94_quantizes_to_int8_that_keeps_its_answers(airbench94_checkpoint: Path, tmp_path: Path) -> None:
    exported = runner.invoke(
        app, ["onnx", str(airbench94_checkpoint), "--tta", "0", "--out", str(tmp_path), "--limit", "40"]
    )
    assert exported.exit_code == 0, exported.output
    result = runner.invoke(app, ["quantize", str(tmp_path / "airbench94.onnx"), "--int8", "--limit", "40"])
    assert result.exit_code == 0, result.output  # onnxruntime's symbolic shape inference failed on its ReduceMax
    report = json.loads((tmp_path / "airbench94.int8.onnx.parity.json").read_text())
    assert report["parity"]["passed"] and min(r["top1_agreement"] for r in report["parity"]["rows"]) >= 90


@pytest.fixture(scope="module")
def quantized(cnn_exported: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("quantized")
    args = ["quantize", str(cnn_exported / "cnn.onnx"), "--int8", "--fp16", "--out", str(out)]
    # All 300 sample test images: one image is a third of a point, so a 1-point budget is a real test.
    result = runner.invoke(app, [*args, "--calibration-count", "64", "--max-drop", "1.0"])
    return out, result


def test_int8_is_qdq_per_channel_smaller_and_reports_accuracy(quantized, cnn_exported: Path) -> None:
    out, result = quantized
    assert result.exit_code == 0, result.output
    report = json.loads((out / "cnn.int8.onnx.parity.json").read_text())
    name = "cnn.int8.onnx"
    proto = onnx.load(str(out / name))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops  # QDQ format
    weight_scales = [n for n in proto.graph.initializer if n.name.endswith("_scale") and len(n.dims) == 1]
    assert any(s.dims[0] == 64 for s in weight_scales)  # one scale per output channel of the first conv
    assert (out / name).stat().st_size < 0.35 * (cnn_exported / "cnn.onnx").stat().st_size
    rows = report["parity"]["rows"]
    assert [r["images"] for r in rows] == [300, 300, 300]
    assert report["parity"]["reference"] == "fp32 cnn.onnx"
    fp32_acc = report["parity"]["reference_accuracy"]
    assert fp32_acc > 20  # the fixture model learned something, so agreement means something
    assert all(abs(r["accuracy"] - fp32_acc) <= 1.0 and r["top1_agreement"] >= 95 for r in rows)
    quantize = json.loads({p.key: p.value for p in proto.metadata_props}["quantize"])
    assert quantize["calibration_images"] == 64 and quantize["calibration_folder"].endswith("train")


def test_fp16_keeps_float32_io_and_its_metadata(quantized) -> None:
    out, _ = quantized
    report = json.loads((out / "cnn.fp16.onnx.parity.json").read_text())
    assert report["parity"]["passed"] and report["parity"]["rows"][0]["top1_agreement"] >= 99
    proto = onnx.load(str(out / "cnn.fp16.onnx"))
    io_types = {v.type.tensor_type.elem_type for v in [*proto.graph.input, *proto.graph.output]}
    assert io_types == {onnx.TensorProto.FLOAT}
    info = Classifier(out / "cnn.fp16.onnx", device="cpu").info
    assert info.precision == "fp16" and info.arch == "cnn"
    assert info.json_extra("parity")["precision"] == "fp16"


def test_quantize_needs_a_precision_and_an_fp32_file(quantized, cnn_exported: Path) -> None:
    out, _ = quantized
    assert runner.invoke(app, ["quantize", str(cnn_exported / "cnn.onnx")]).exit_code == 2
    again = runner.invoke(app, ["quantize", str(out / "cnn.fp16.onnx"), "--int8"])
    assert again.exit_code == 2 and "already fp16" in again.stderr
