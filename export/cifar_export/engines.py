"""Every way to run a model, behind one small interface: float32 (B, 3, H, W) normalised in, (B, C) logits out.
A --raw ONNX file (uint8 pixels in) gets the pixels those inputs were made from, recovered exactly.

Parity, verify, quantize and the benchmarks all go through these. ONNX files run through
`cifar_runtime.Classifier`, so every check exercises exactly the code users run (metadata, shape checks, static
batch padding). Only numpy is imported up front: the ONNX Runtime engine never loads torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cifar_runtime import Classifier, ModelInfo

Run = Callable[[np.ndarray], np.ndarray]  # (B, 3, H, W) float32 -> (B, C) float32 logits


@dataclass(frozen=True)
class Engine:
    name: str  # "torch-eager" | "torchscript" | "torch-export" | "ort"
    run: Run
    runs_on: str  # e.g. "CPUExecutionProvider" or "torch cpu, 2 threads"
    info: ModelInfo | None = None  # the file's own metadata (None for an in-memory module)
    static_batch: int = 0  # the file's fixed batch size, 0 when dynamic (Classifier pads to it by itself)

    def logits(self, inputs: np.ndarray, batch_size: int) -> np.ndarray:
        """Logits for all inputs, `batch_size` at a time."""
        chunks = [
            np.asarray(self.run(np.ascontiguousarray(inputs[i : i + batch_size])), dtype=np.float32)
            for i in range(0, len(inputs), batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)


def torch_module_engine(module: Any, name: str = "torch-eager", info: ModelInfo | None = None) -> Engine:
    """A torch module (eager, scripted, or an ExportedProgram's module) on the CPU, without autograd."""
    import torch

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    return Engine(name, run, f"torch cpu, {torch.get_num_threads()} threads", info)


def onnx_engine(path: Path, device: str = "cpu") -> Engine:
    """An ONNX file through the runtime's Classifier."""
    classifier = Classifier(path, device=device, precision=None)  # exactly this file
    info = classifier.info
    run = classifier.logits
    if info.layout == "NHWC":

        def run(x: np.ndarray) -> np.ndarray:
            return classifier.logits(pixels_of(x, info))

    return Engine("ort", run, classifier.providers[0], info, classifier.static_batch)


def pixels_of(inputs: np.ndarray, info: ModelInfo) -> np.ndarray:
    """float32 (B, 3, H, W) normalised inputs -> the uint8 (B, H, W, 3) pixels they were computed from: the inverse
    of cifar_runtime's normalize_batch. ValueError when the inputs did not come from 8-bit pixels."""
    mean = np.asarray(info.mean, np.float64)[:, None, None]
    std = np.asarray(info.std, np.float64)[:, None, None]
    levels = (inputs.astype(np.float64) * std + mean) * 255  # (B, 3, H, W), integers up to float32 rounding
    pixels = np.rint(levels)
    if len(levels) and (np.abs(levels - pixels).max() > 0.01 or pixels.min() < 0 or pixels.max() > 255):
        raise ValueError("these inputs were not made from 8-bit pixels, which a --raw model takes")
    return np.ascontiguousarray(pixels.astype(np.uint8).transpose(0, 2, 3, 1))
