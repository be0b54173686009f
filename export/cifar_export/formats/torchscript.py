"""The TorchScript format: scripted (not traced), with the ONNX file's metadata in the extra file metadata.json.

torch.jit.script and torch.jit.trace both round-trip these models bit-exactly; script is used because it keeps
the code instead of one recorded run, so no shape or branch of the example input is baked in. TorchScript is
deprecated upstream (torch.export's .pt2 is the supported format, see pt2.py), so this module stays thin.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from cifar_export.engines import Engine, torch_module_engine
from cifar_export.errors import ExportError, one_line
from cifar_export.formats import ExportOptions, Format, register
from cifar_runtime import ModelInfo

if TYPE_CHECKING:  # torch loads when a file is written or read, not when the format registers (`--help` is fast)
    import torch
    from torch import nn

METADATA_FILE = "metadata.json"


def export_torchscript(model: nn.Module, info: ModelInfo, opts: ExportOptions, path: Path) -> None:
    """Script an eval-mode model and save it with `info` as metadata.json, atomically."""
    import torch

    with _quiet_deprecation():
        scripted = torch.jit.script(model)
    save_torchscript(scripted, info.to_props(), path)


def save_torchscript(module: torch.jit.ScriptModule, props: dict[str, str], path: Path) -> None:
    """Save a scripted module with `props` as its metadata.json, atomically."""
    import torch

    from cifar_train import atomic_write

    extra = {METADATA_FILE: json.dumps(props)}

    def write(tmp: Path) -> None:
        with _quiet_deprecation():
            torch.jit.save(module, str(tmp), _extra_files=extra)

    atomic_write(path, write)


def load_torchscript(path: Path) -> tuple[torch.jit.ScriptModule, ModelInfo]:
    """A TorchScript file on the CPU, as saved, and its metadata."""
    import torch

    extra = {METADATA_FILE: ""}
    try:
        with _quiet_deprecation():
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        props = json.loads(extra[METADATA_FILE] or "{}")
    except (RuntimeError, ValueError, OSError) as e:
        raise ExportError(f"cannot read {path} as TorchScript ({one_line(e)})") from e
    return module, ModelInfo.from_props(props, source=str(path))  # no .eval(): a file saved in train mode shows it


def load_engine(path: Path) -> Engine:
    module, info = load_torchscript(path)
    return torch_module_engine(module, "torchscript", info)


def restamp(src: Path, props: dict[str, str], dst: Path) -> None:
    module, _ = load_torchscript(src)
    save_torchscript(module, props, dst)


@contextlib.contextmanager
def _quiet_deprecation() -> Iterator[None]:
    """torch.jit warns that it is deprecated on every call; users still ask for TorchScript files."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


FORMAT = register(
    Format(
        "torchscript",
        ".torchscript.pt",
        "TorchScript (scripted), for libtorch and older PyTorch",
        export_torchscript,
        load_engine,
        restamp,
        "torchscript",
    )
)
