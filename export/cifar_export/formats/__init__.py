"""The registry of export formats. A format is one module in this package that registers how to write a model,
read it back as an Engine, and rewrite its metadata; adding a format is adding such a file (and its test): the CLI
verbs, `all`, the bench and the card derive from FORMATS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cifar_export.engines import Engine
from cifar_export.errors import ExportError

if TYPE_CHECKING:
    from cifar_runtime import ModelInfo


@dataclass(frozen=True)
class ExportOptions:
    """What a format may need to know beyond the model and its metadata."""

    opset: int = 20  # ONNX opset: 20 has GELU as one op (formats/onnx_export.py says why that matters)
    static_batch: int = 0  # fix the batch axis to this size; 0 = dynamic
    raw: bool = False  # input uint8 (N, H, W, 3) RGB pixels, preprocessing inside the graph (formats with raw_ok)


@dataclass(frozen=True)
class Format:
    name: str  # the CLI's name for it: `cifar-export NAME CKPT`
    suffix: str  # file name ending, e.g. ".onnx", ".torchscript.pt"
    summary: str
    export: Callable[[Any, ModelInfo, ExportOptions, Path], None]  # (eval-mode module, metadata, options, path)
    load: Callable[[Path], Engine]  # read a written file back (its metadata in Engine.info)
    restamp: Callable[[Path, dict[str, str], Path], None]  # (written file, new metadata props, destination)
    engine: str  # the name of its row in `python -m benchmarks.engines`, e.g. "ort-fp32"
    raw_ok: bool = False  # can write the self-contained variant that takes raw pixels (ExportOptions.raw)
    static_batch_ok: bool = False  # can fix the batch axis (ExportOptions.static_batch); parity runs at that size


FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    FORMATS[fmt.name] = fmt
    return fmt


def file_name(arch: str, fmt: Format, tta: int = 0, raw: bool = False) -> str:
    """cnn + onnx -> cnn.onnx; with test-time augmentation in the graph: airbench94.tta2.onnx; taking raw pixels:
    cnn.raw.onnx."""
    return f"{arch}{f'.tta{tta}' if tta else ''}{'.raw' if raw else ''}{fmt.suffix}"


def format_of(path: Path) -> Format | None:
    """The registered format whose suffix ends the file name (the longest match), or None."""
    matches = [f for f in FORMATS.values() if path.name.endswith(f.suffix)]
    return max(matches, key=lambda f: len(f.suffix)) if matches else None


def open_engine(path: Path, device: str = "cpu") -> Engine:
    """The engine for an exported file of any registered format, or for a cifar-train checkpoint (.pt)."""
    if not path.is_file():
        raise ExportError(f"model file {path} does not exist")
    fmt = format_of(path)
    if fmt is not None:
        return fmt.load(path)
    if path.suffix == ".pt":
        from cifar_export.source import checkpoint_engine, load_source

        source = load_source(path)
        return checkpoint_engine(source, source.trained_tta)
    known = ", ".join(f.suffix for f in FORMATS.values())
    raise ExportError(f"{path} is not an exported model ({known}) or a cifar-train checkpoint (.pt)")


def _register_all() -> None:
    """Import every module of this package: each registers its format (in file-name order; onnx_export first)."""
    import importlib
    import pkgutil

    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: (m.name != "onnx_export", m.name)):
        importlib.import_module(f"{__name__}.{module.name}")


_register_all()
