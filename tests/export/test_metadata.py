"""The exported files describe themselves: the runtime's ModelInfo reads back what the checkpoint said."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import torch

from cifar_export import PRODUCER
from cifar_runtime.metadata import ModelInfo
from cifar_runtime.session import open_session
from cifar_train.checkpoint import sha256_file


def check_info(info: ModelInfo, checkpoint: Path) -> None:
    ckpt = torch.load(checkpoint, weights_only=True)
    assert info.arch == "cnn"
    assert list(info.classes) == ckpt["classes"] and info.classes[0] == "airplane"
    assert list(info.input_size) == ckpt["input_size"] == [32, 32]
    assert list(info.mean) == ckpt["mean"] and list(info.std) == ckpt["std"]
    assert info.layout == "NCHW" and info.interpolation == "bilinear" and info.precision == "fp32"
    assert info.source_sha256 == sha256_file(checkpoint)
    assert info.val_acc == 0.25 and info.test_acc is None  # the checkpoint's metrics have no test_acc
    assert info.producer == PRODUCER
    assert info.json_extra("config") == json.loads(json.dumps(ckpt["config"]))
    parity = info.json_extra("parity")
    assert parity["passed"] and [r["batch_size"] for r in parity["rows"]] == [1, 8, 7]


def test_onnx_metadata_round_trips_through_the_runtime_session(cnn_exported: Path, cnn_checkpoint: Path) -> None:
    session = open_session(cnn_exported / "cnn.onnx", device="cpu")
    check_info(ModelInfo.from_props(session.get_modelmeta().custom_metadata_map), cnn_checkpoint)


def test_onnx_file_is_opset_20_with_a_loadable_ir_version(cnn_exported: Path) -> None:
    proto = onnx.load(str(cnn_exported / "cnn.onnx"))
    assert {o.domain: o.version for o in proto.opset_import} == {"": 20}
    assert proto.ir_version == onnx.helper.find_min_ir_version_for(list(proto.opset_import)) == 9  # ORT 1.17 reads 9
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].dim_value  # dynamic batch axis


def test_torchscript_extra_file_round_trips(cnn_exported: Path, cnn_checkpoint: Path) -> None:
    extra = {"metadata.json": ""}
    torch.jit.load(str(cnn_exported / "cnn.torchscript.pt"), _extra_files=extra)
    check_info(ModelInfo.from_props(json.loads(extra["metadata.json"])), cnn_checkpoint)
