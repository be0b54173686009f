"""fp32 ONNX: torch.onnx's dynamo exporter, IR version pinned, metadata in metadata_props, full checker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import onnx
import torch
from torch import nn

from cifar_export.errors import ExportError
from cifar_runtime.errors import ModelError, one_line
from cifar_runtime.metadata import ModelInfo
from cifar_train.checkpoint import atomic_write

INPUT, OUTPUT = "image", "logits"
# 18 is what the dynamo exporter writes natively; its down-conversion to 17 fails on these models
# (Reduce* axes), so lower opsets are refused rather than silently written as 18.
DEFAULT_OPSET = 18
MIN_OPSET = 18


def export_onnx(
    model: nn.Module, info: ModelInfo, opset: int = DEFAULT_OPSET, static_batch: int = 0
) -> onnx.ModelProto:
    """Export an eval-mode model to a checked ONNX proto carrying `info`; batch axis dynamic unless static_batch."""
    if opset < MIN_OPSET:
        raise ExportError(f"--opset {opset} is not supported: the exporter writes opset {MIN_OPSET} or newer")
    h, w = info.input_size
    example = torch.zeros(static_batch or 2, 3, h, w)  # (B, 3, H, W); 2, not 1, so B is not specialised
    dynamic = None if static_batch else ({0: torch.export.Dim("batch")},)
    # dynamo=True, pinned although it is torch 2.14's default: the torch.export-based exporter is the
    # maintained one (the TorchScript-based dynamo=False path is deprecated since torch 2.9 and warns), it
    # writes opset 18 natively, and it folds BatchNorm into Conv. Both match these models to ~1e-7.
    try:
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            opset_version=opset,
            optimize=True,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_shapes=dynamic,
            verbose=False,
        )
    except Exception as e:  # torch.export raises many types; the message is what helps
        raise ExportError(f"torch.onnx.export failed for {info.arch}: {one_line(e)}") from e
    proto = program.model_proto
    written = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if written != opset:
        raise ExportError(f"asked for opset {opset} but the exporter wrote {written}: use --opset {written}")
    pin_ir_version(proto)
    set_metadata(proto, info.to_props())
    check(proto)
    return proto


def set_metadata(proto: onnx.ModelProto, props: dict[str, str]) -> None:
    """Replace the model's metadata_props with `props`."""
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)


def writer(proto: onnx.ModelProto) -> Callable[[dict[str, str], Path], None]:
    """A function that saves `proto` with new metadata: only the metadata changes, the graph stays as checked."""

    def write(props: dict[str, str], path: Path) -> None:
        set_metadata(proto, props)
        save_onnx(proto, path)

    return write


def pin_ir_version(proto: onnx.ModelProto) -> None:
    """The lowest IR version that can hold the model's opsets: loadable by the pinned onnxruntime and older."""
    proto.ir_version = onnx.helper.find_min_ir_version_for(list(proto.opset_import), ignore_unknown=True)


def batch_dim(proto: onnx.ModelProto) -> int:
    """The input's static batch size, or 0 when the batch axis is dynamic."""
    return proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value


def check(proto: onnx.ModelProto) -> None:
    """onnx.checker with full_check (shape inference too); a failure is an ExportError."""
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"the exported ONNX graph is invalid: {one_line(e)}") from e


def save_onnx(proto: onnx.ModelProto, path: Path) -> None:
    """Write one self-contained file (no external data: these models are far below protobuf's 2 GB), atomically."""
    atomic_write(path, lambda tmp: onnx.save_model(proto, str(tmp), save_as_external_data=False))


def load_onnx(path: Path) -> tuple[onnx.ModelProto, ModelInfo]:
    """A model file and its metadata; ExportError when it is not ONNX or lacks the metadata."""
    try:
        proto = onnx.load(str(path))
        info = ModelInfo.from_props({p.key: p.value for p in proto.metadata_props}, source=str(path))
    except ModelError as e:
        raise ExportError(str(e)) from e
    except Exception as e:  # protobuf DecodeError, OSError, ...: the file is not a readable model
        raise ExportError(f"cannot read {path} as ONNX ({one_line(e)})") from e
    return proto, info
