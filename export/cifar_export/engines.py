"""Every way to run a model, behind one small interface: float32 (B, 3, H, W) normalised in, (B, C) logits out.

Parity, verify, quantize, bench and folder-check all go through these. ONNX files run through
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
        chunks = [np.asarray(self.run(np.ascontiguousarray(inputs[i:i + batch_size])), dtype=np.float32)
                  for i in range(0, len(inputs), batch_size)]
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
    classifier = Classifier(path, device=device)
    return Engine("ort", classifier.logits, classifier.providers[0], classifier.info, classifier.static_batch)
