"""The ONNX format: torch.onnx's dynamo exporter, IR version pinned, metadata in metadata_props, full checker."""

from __future__ import annotations

from pathlib import Path

import onnx
import torch
from torch import nn

from cifar_export.engines import onnx_engine
from cifar_export.errors import ExportError, one_line
from cifar_export.formats import ExportOptions, Format, register
from cifar_runtime import ModelInfo
from cifar_train import atomic_write

INPUT, OUTPUT = "image", "logits"
# 18 is what the dynamo exporter writes natively; its down-conversion to 17 fails on these models
# (Reduce* axes), so lower opsets are refused rather than silently written as 18.
DEFAULT_OPSET = ExportOptions.opset
MIN_OPSET = 18


def export_onnx(
    model: nn.Module, info: ModelInfo, opset: int = DEFAULT_OPSET, static_batch: int = 0
) -> onnx.ModelProto:
    """Export an eval-mode model to a checked ONNX proto carrying `info`; batch axis dynamic unless static_batch."""
    check_opset(opset)
    if static_batch < 0:
        raise ExportError(f"--static-batch {static_batch} must be 0 (dynamic) or a batch size")
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


def check_opset(opset: int) -> None:
    """Refuse an opset before the exporter runs: 18 up to the newest the installed onnx package knows."""
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ExportError(f"--opset {opset} is not supported: use {MIN_OPSET} to {newest} (the newest the installed "
                          "onnx knows)")


def set_metadata(proto: onnx.ModelProto, props: dict[str, str]) -> None:
    """Replace the model's metadata_props with `props`."""
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)


def pin_ir_version(proto: onnx.ModelProto) -> None:
    """The lowest IR version that can hold the model's opsets, so older ONNX Runtimes load it (1.17 reads <= 9).

    Opset imports of domains no node uses are dropped first: onnxruntime's quantisation tools declare a dozen
    (ai.onnx.ml 5 among them), and those alone would demand IR 10.
    """
    used = {node.domain for node in proto.graph.node} | {""}
    kept = [o for o in proto.opset_import if o.domain in used or (o.domain == "ai.onnx" and "" in used)]
    del proto.opset_import[:]
    proto.opset_import.extend(kept)
    proto.ir_version = onnx.helper.find_min_ir_version_for(list(proto.opset_import), ignore_unknown=True)


def check(proto: onnx.ModelProto) -> None:
    """onnx.checker with full_check (shape inference too); a failure is an ExportError."""
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"the exported ONNX graph is invalid: {one_line(e)}") from e


def save_onnx(proto: onnx.ModelProto, path: Path) -> None:
    """Write one self-contained file (no external data: these models are far below protobuf's 2 GB), atomically."""
    atomic_write(path, lambda tmp: onnx.save_model(proto, str(tmp), save_as_external_data=False))


def restamp(src: Path, props: dict[str, str], dst: Path) -> None:
    """Rewrite an ONNX file with new metadata; the graph stays as it was checked."""
    proto = onnx.load(str(src))
    set_metadata(proto, props)
    save_onnx(proto, dst)


def _export(model: nn.Module, info: ModelInfo, opts: ExportOptions, path: Path) -> None:
    save_onnx(export_onnx(model, info, opts.opset, opts.static_batch), path)


FORMAT = register(Format("onnx", ".onnx", "ONNX (dynamo exporter, opset 18+), for ONNX Runtime and any ONNX runtime",
                         _export, onnx_engine, restamp))
