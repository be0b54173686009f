"""Each engine as a Runner: float32 (B, 3, H, W) in, (B, num_classes) logits out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from cifar_export.errors import ExportError
from cifar_export.parity import Runner
from cifar_runtime.errors import CifarRuntimeError
from cifar_runtime.session import open_session


def torch_runner(model: nn.Module) -> Runner:
    """A torch module (eager or TorchScript) on the CPU, without autograd."""

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return run


def ort_runner(path: Path, device: str = "cpu") -> Runner:
    """An ONNX file through cifar_runtime's session factory: the code users run, not a private ORT call."""
    try:
        session = open_session(path, device=device)
    except CifarRuntimeError as e:
        raise ExportError(str(e)) from e
    name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {name: x})[0]

    return run
