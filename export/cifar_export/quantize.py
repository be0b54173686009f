"""INT8 and FP16 copies of an fp32 ONNX file, each judged by its top-1 accuracy against fp32 on real images.

int8: onnxruntime's static quantisation in QDQ format, per-channel weights, activations calibrated (MinMax)
on a seeded sample of real training images. fp16: float16 weights and compute for GPUs, float32 inputs and
outputs kept so callers feed the same arrays.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from cifar_export.config import PRECISIONS, QuantizeConfig
from cifar_export.engines import onnx_engine, pixels_of
from cifar_export.errors import ExportError
from cifar_export.export import ExportResult, provenance, publish, refuse_overwrite
from cifar_export.formats.onnx_export import FORMAT, INPUT, check, pin_ir_version, save_onnx, set_metadata
from cifar_export.images import load_images
from cifar_export.parity import check_parity
from cifar_train import ensure_writable

CALIBRATION_BATCH = 32  # images per calibration run when the batch axis is dynamic


def quantized_path(src: Path, precision: str, out: Path) -> Path:
    """cnn.onnx -> <out>/cnn.int8.onnx"""
    return out / f"{src.stem}.{precision}{src.suffix}"


def quantize_model(src: Path, cfg: QuantizeConfig) -> ExportResult:
    """Quantise an fp32 file exported by cifar-export; publish it only if it keeps the accuracy."""
    if cfg.precision not in PRECISIONS:
        raise ExportError(f"unknown precision {cfg.precision!r}: use one of {', '.join(PRECISIONS)}")
    if cfg.calibration_count < 1:
        raise ExportError(f"--calibration-count {cfg.calibration_count} must be at least 1")
    fp32 = onnx_engine(src)
    info = fp32.info
    if info.precision != "fp32":
        raise ExportError(f"{src} is already {info.precision}: quantise the fp32 file")
    out = Path(cfg.out) if cfg.out else src.parent
    target = quantized_path(src, cfg.precision, out)
    refuse_overwrite([target], cfg.overwrite)
    ensure_writable(out)
    record = provenance(cfg, None) | {"fp32_model": src.name}
    with tempfile.TemporaryDirectory(prefix="cifar-export-") as tmp:
        tmp_file = Path(tmp) / f"{cfg.precision}.onnx"
        if cfg.precision == "int8":
            calibration = load_images(cfg.data, "train", info, cfg.calibration_count)
            record |= {"calibration_images": len(calibration.labels), "calibration_folder": str(calibration.folder)}
            feeds = pixels_of(calibration.inputs, info) if info.layout == "NHWC" else calibration.inputs
            quantize_int8(src, tmp_file, feeds, fp32.static_batch, Path(tmp))
        else:
            convert_fp16(src, tmp_file)
        proto = onnx.load(str(tmp_file))
        pin_ir_version(proto)
        extra = {k: v for k, v in info.extra.items() if k != "parity"} | {"quantize": json.dumps(record)}
        qinfo = replace(info, precision=cfg.precision, extra=extra)
        set_metadata(proto, qinfo.to_props())
        check(proto)
        save_onnx(proto, tmp_file)
        images = load_images(cfg.data, "test", info, cfg.parity.limit)
        # Judged against the fp32 file it was made from; `verify` judges it against the original checkpoint.
        candidate = onnx_engine(tmp_file)
        report = check_parity(fp32, f"fp32 {src.name}", candidate, images, cfg.precision, cfg.parity)
        return publish(report, qinfo, FORMAT, tmp_file, target, record)


def quantize_int8(src: Path, dst: Path, calibration: np.ndarray, static_batch: int, workdir: Path) -> None:
    """Static QDQ int8 with per-channel weights; activation ranges from `calibration`, a batch the file takes."""
    prepared = workdir / "prepared.onnx"
    # Shape inference + graph optimisation first, as onnxruntime's quantisation guide asks. ONNX's own shape
    # inference, not onnxruntime's symbolic one: that one (for transformers' symbolic dims) fails on ops it does not
    # know, such as airbench94's global max (ReduceMax with its axes as an input, opset 18 and later).
    quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
    # A --raw file's probabilities stay float: quantised, they would come in steps of 1/255 and not sum to 1.
    softmax = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type == "Softmax"]
    quantize_static(
        str(prepared),
        str(dst),
        _Calibration(calibration, static_batch or CALIBRATION_BATCH),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        # S8S8 (signed activations and weights) in QDQ: onnxruntime's documented first choice on x86-64.
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=softmax,
    )


def convert_fp16(src: Path, dst: Path) -> None:
    """float16 weights and compute; keep_io_types leaves the input and output float32."""
    # Shipped inside onnxruntime (onnxruntime.transformers), so no onnxconverter-common dependency.
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    proto = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    # The converter appends the input/output Casts at the end of the node list; the checker wants order.
    OnnxModel.graph_topological_sort(proto.graph, is_deterministic=True)
    save_onnx(proto, dst)


class _Calibration(CalibrationDataReader):
    """Feeds the calibration images to onnxruntime's calibrator, `batch` at a time."""

    def __init__(self, inputs: np.ndarray, batch: int) -> None:
        # Whole batches only: a static-batch file takes no other size, and a remainder adds nothing to the ranges.
        whole = max(len(inputs) // batch, 1) * batch
        self._feeds = ({INPUT: np.ascontiguousarray(inputs[i : i + batch])} for i in range(0, whole, batch))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)
