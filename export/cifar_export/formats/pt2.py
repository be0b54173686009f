"""The torch.export format (.pt2): an ExportedProgram, PyTorch's supported successor to TorchScript.

The program is exported with a dynamic batch axis and saved with the same metadata as the other formats in the
extra file metadata.json. Loading it back needs only torch (`torch.export.load(path).module()`), not this code.
"""

from __future__ import annotations

import json
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


def export_program(model: nn.Module, info: ModelInfo, opts: ExportOptions, path: Path) -> None:
    """torch.export.export an eval-mode model (batch axis dynamic) and save it with `info`, atomically."""
    import torch

    h, w = info.input_size
    example = torch.zeros(2, 3, h, w)  # (B, 3, H, W); 2, not 1, so B is not specialised
    try:
        program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    except Exception as e:  # torch.export raises many types; the message is what helps
        raise ExportError(f"torch.export failed for {info.arch}: {one_line(e)}") from e
    save_program(program, info.to_props(), path)


def save_program(program: torch.export.ExportedProgram, props: dict[str, str], path: Path) -> None:
    import torch

    from cifar_train import atomic_write

    extra = {METADATA_FILE: json.dumps(props)}

    def write(tmp: Path) -> None:
        named = tmp.with_name(tmp.name + ".pt2")  # torch.export.save wants the .pt2 ending
        torch.export.save(program, str(named), extra_files=extra)
        named.replace(tmp)

    atomic_write(path, write)


def load_program(path: Path) -> tuple[torch.export.ExportedProgram, ModelInfo]:
    import torch

    extra = {METADATA_FILE: ""}
    try:
        program = torch.export.load(str(path), extra_files=extra)
        props = json.loads(extra[METADATA_FILE] or "{}")
    except (RuntimeError, ValueError, OSError, KeyError) as e:
        raise ExportError(f"cannot read {path} as a torch.export program ({one_line(e)})") from e
    return program, ModelInfo.from_props(props, source=str(path))


def load_engine(path: Path) -> Engine:
    program, info = load_program(path)
    return torch_module_engine(program.module(), "torch-export", info)


def restamp(src: Path, props: dict[str, str], dst: Path) -> None:
    program, _ = load_program(src)
    save_program(program, props, dst)


FORMAT = register(
    Format(
        "pt2",
        ".pt2",
        "torch.export ExportedProgram, PyTorch's supported deployment format",
        export_program,
        load_engine,
        restamp,
        "torch-export",
    )
)
