"""TorchScript: scripted (not traced), with the same metadata as the ONNX file in the extra file metadata.json.

torch.jit.script and torch.jit.trace both round-trip these models bit-exactly; script is used because it keeps
the code instead of one recorded run, so no shape or branch of the example input is baked in. TorchScript is
deprecated upstream, so this module stays thin.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from cifar_export.errors import ExportError
from cifar_runtime.errors import ModelError, one_line
from cifar_runtime.metadata import ModelInfo
from cifar_train.checkpoint import atomic_write

METADATA_FILE = "metadata.json"


def export_torchscript(model: nn.Module, info: ModelInfo, path: Path) -> None:
    """Script an eval-mode model and save it with `info` as metadata.json, atomically."""
    with _quiet_deprecation():
        scripted = torch.jit.script(model)
    save_torchscript(scripted, info.to_props(), path)


def save_torchscript(module: torch.jit.ScriptModule, props: dict[str, str], path: Path) -> None:
    """Save a scripted module with `props` as its metadata.json, atomically."""
    extra = {METADATA_FILE: json.dumps(props)}

    def write(tmp: Path) -> None:
        with _quiet_deprecation():
            torch.jit.save(module, str(tmp), _extra_files=extra)

    atomic_write(path, write)


def load_torchscript(path: Path) -> tuple[torch.jit.ScriptModule, ModelInfo]:
    """A TorchScript file on the CPU, as saved, and its metadata."""
    extra = {METADATA_FILE: ""}
    try:
        with _quiet_deprecation():
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        props = json.loads(extra[METADATA_FILE] or "{}")
        info = ModelInfo.from_props(props, source=str(path))
    except ModelError as e:
        raise ExportError(str(e)) from e
    except (RuntimeError, ValueError, OSError) as e:
        raise ExportError(f"cannot read {path} as TorchScript ({one_line(e)})") from e
    return module, info  # no .eval() here: a file saved in train mode must show it


@contextlib.contextmanager
def _quiet_deprecation() -> Iterator[None]:
    """torch.jit warns that it is deprecated on every call; the mission asks for TorchScript regardless."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield
