"""The ONNX format: torch.onnx's dynamo exporter, IR version pinned, metadata in metadata_props, full checker."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cifar_export.engines import onnx_engine
from cifar_export.errors import ExportError, one_line
from cifar_export.formats import ExportOptions, Format, register
from cifar_runtime import ModelInfo

if TYPE_CHECKING:  # onnx and torch load when a file is written or read, not when the format registers
    import onnx
    from torch import nn

INPUT, OUTPUT = "image", "logits"
PROBABILITIES = "probabilities"  # the second output of a --raw file: softmax of the logits
# The default, 20, is the first opset with a Gelu op. At 18 GELU is written as five elementwise ops, and then
# (measured on airbench94) onnxruntime fuses none of the int8 convs that feed a GELU into QLinearConv, so int8 runs
# no faster than fp32, and OpenCV 4.11's DNN module crashes on the file. Opset 20 needs IR 9: ONNX Runtime 1.17
# (the oldest the runtime declares) reads it. Below 18 the exporter's down-conversion fails on these models
# (Reduce* axes), so lower opsets are refused rather than silently written as 18.
DEFAULT_OPSET = ExportOptions.opset
MIN_OPSET = 18


def export_onnx(
    model: nn.Module, info: ModelInfo, opset: int = DEFAULT_OPSET, static_batch: int = 0
) -> onnx.ModelProto:
    """Export an eval-mode model to a checked ONNX proto carrying `info`; batch axis dynamic unless static_batch."""
    import torch

    from cifar_export.wrappers import RawInput

    check_opset(opset)
    if static_batch < 0:
        raise ExportError(f"--static-batch {static_batch} must be 0 (dynamic) or a batch size")
    h, w = info.input_size
    example = torch.zeros(static_batch or 2, 3, h, w)  # (B, 3, H, W); 2, not 1, so B is not specialised
    outputs = [OUTPUT]
    if info.layout == "NHWC":
        model = RawInput(model, info.mean, info.std)
        example = torch.zeros(static_batch or 2, h, w, 3, dtype=torch.uint8)  # (B, H, W, 3) RGB pixels
        outputs = [OUTPUT, PROBABILITIES]
    dynamic = None if static_batch else ({0: torch.export.Dim("batch")},)
    # dynamo=True, pinned although it is torch 2.14's default: the torch.export-based exporter is the
    # maintained one (the TorchScript-based dynamo=False path is deprecated since torch 2.9 and warns), it
    # writes opsets 18+ natively, and it folds BatchNorm into a Conv it follows. Both match these models to ~1e-7.
    try:
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            opset_version=opset,
            optimize=True,
            input_names=[INPUT],
            output_names=outputs,
            dynamic_shapes=dynamic,
            verbose=False,
        )
    except Exception as e:  # torch.export raises many types; the message is what helps
        raise ExportError(f"torch.onnx.export failed for {info.arch}: {one_line(e)}") from e
    proto = program.model_proto
    written = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if written != opset:
        raise ExportError(f"asked for opset {opset} but the exporter wrote {written}: use --opset {written}")
    fold_batchnorm_through_maxpool(proto.graph)
    pin_ir_version(proto)
    set_metadata(proto, info.to_props())
    check(proto)
    return proto


def fold_batchnorm_through_maxpool(graph: onnx.GraphProto) -> int:
    """Rewrite Conv -> MaxPool -> BatchNormalization as Conv' -> MaxPool, where Conv' has the BatchNorm folded in.

    Exact: inference BatchNorm is y = a * x + b per channel, and max-pooling commutes with it when every a > 0
    (airbench's frozen BatchNorm scales are all 1). The exporter folds BatchNorm only when it follows the Conv
    directly; after this pass no BatchNorm is left for fp32 or int8 to run on its own. Returns the number folded.
    """
    from onnx import numpy_helper

    inits = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    folded, replaced = [], set()
    for norm in (n for n in graph.node if n.op_type == "BatchNormalization" and len(n.output) == 1):
        pool = producer.get(norm.input[0])
        conv = producer.get(pool.input[0]) if pool is not None and pool.op_type == "MaxPool" else None
        if conv is None or conv.op_type != "Conv" or len(pool.output) != 1:
            continue
        if uses[conv.output[0]] != 1 or uses[pool.output[0]] != 1 or uses[conv.input[1]] != 1:
            continue
        if not all(name in inits for name in (*conv.input[1:], *norm.input[1:5])):
            continue  # weights computed by nodes: leave them
        if {conv.output[0], pool.output[0]} & {o.name for o in graph.output}:
            continue  # an intermediate the graph also returns must keep its value
        eps = next((a.f for a in norm.attribute if a.name == "epsilon"), 1e-5)
        scale, shift, mean, var = (numpy_helper.to_array(inits[name]).astype(np.float64) for name in norm.input[1:5])
        a = scale / np.sqrt(var + eps)  # (C,)
        if not (a > 0).all():
            continue
        weight = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)  # (C, C_in/groups, kH, kW)
        bias = (
            numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64)
            if len(conv.input) > 2 and conv.input[2]
            else np.zeros_like(a)
        )
        inits[conv.input[1]].CopyFrom(
            numpy_helper.from_array((weight * a[:, None, None, None]).astype(np.float32), conv.input[1])
        )
        bias_name = f"{conv.input[1]}_folded_bias"
        graph.initializer.append(numpy_helper.from_array((bias * a + shift - mean * a).astype(np.float32), bias_name))
        replaced.update([*norm.input[1:5], *conv.input[2:]])
        del conv.input[2:]
        conv.input.append(bias_name)
        pool.output[0] = norm.output[0]  # the pool now produces what BatchNorm produced
        folded.append(norm)
    for norm in folded:
        graph.node.remove(norm)
    used = {name for node in graph.node for name in node.input}
    for dead in [t for t in graph.initializer if t.name in replaced and t.name not in used]:
        graph.initializer.remove(dead)
    return len(folded)


def check_opset(opset: int) -> None:
    """Refuse an opset before the exporter runs: 18 up to the newest the installed onnx package knows."""
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ExportError(
            f"--opset {opset} is not supported: use {MIN_OPSET} to {newest} (the newest the installed onnx knows)"
        )


def set_metadata(proto: onnx.ModelProto, props: dict[str, str]) -> None:
    """Replace the model's metadata_props with `props`."""
    import onnx

    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)


def pin_ir_version(proto: onnx.ModelProto) -> None:
    """The lowest IR version that can hold the model's opsets, so older ONNX Runtimes load it (1.17 reads <= 9).

    Opset imports of domains no node uses are dropped first: onnxruntime's quantisation tools declare a dozen
    (ai.onnx.ml 5 among them), and those alone would demand IR 10.
    """
    import onnx

    used = {node.domain for node in proto.graph.node} | {""}
    kept = [o for o in proto.opset_import if o.domain in used or (o.domain == "ai.onnx" and "" in used)]
    del proto.opset_import[:]
    proto.opset_import.extend(kept)
    proto.ir_version = onnx.helper.find_min_ir_version_for(list(proto.opset_import), ignore_unknown=True)


def check(proto: onnx.ModelProto) -> None:
    """onnx.checker with full_check (shape inference too); a failure is an ExportError."""
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"the exported ONNX graph is invalid: {one_line(e)}") from e


def save_onnx(proto: onnx.ModelProto, path: Path) -> None:
    """Write one self-contained file (no external data: these models are far below protobuf's 2 GB), atomically."""
    import onnx

    from cifar_train import atomic_write

    atomic_write(path, lambda tmp: onnx.save_model(proto, str(tmp), save_as_external_data=False))


def restamp(src: Path, props: dict[str, str], dst: Path) -> None:
    """Rewrite an ONNX file with new metadata; the graph stays as it was checked."""
    import onnx

    proto = onnx.load(str(src))
    set_metadata(proto, props)
    save_onnx(proto, dst)


def _export(model: nn.Module, info: ModelInfo, opts: ExportOptions, path: Path) -> None:
    save_onnx(export_onnx(model, info, opts.opset, opts.static_batch), path)


FORMAT = register(
    Format(
        "onnx",
        ".onnx",
        "ONNX (dynamo exporter, opset 20 by default), for any ONNX runtime",
        _export,
        onnx_engine,
        restamp,
        "ort-fp32",
        static_batch_ok=True,
        raw_ok=True,
    )
)
