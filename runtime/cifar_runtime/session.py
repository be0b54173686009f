"""Open an ONNX Runtime session on the device asked for, and say so - once, in one line - when it cannot.

`auto` takes CUDA only when the CUDA execution provider really loads and is quiet otherwise; `cuda` or an
explicit `providers=` list falls back to CPU with one CifarRuntimeWarning that names the reason.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import os
import re
import sys
import warnings
import zipfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from cifar_runtime.errors import CifarRuntimeWarning, InstallError, ModelError, UsageError, one_line

if TYPE_CHECKING:
    import onnxruntime as ort

DEVICES = ("auto", "cpu", "cuda", "cuda:N")  # cuda:N: the GPU of that index (cuda is cuda:0)
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
# Wheels that all install the same `onnxruntime` module: with two of them the last one installed wins,
# file by file, and the result is a module that may import yet lack or break its providers.
ORT_WHEELS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-qnn",
)
_TOO_NEW = re.compile(r"Unsupported model IR version: \d+, max supported IR version: \d+")  # ORT's words
_REPAIR = "pip uninstall -y {wheels} && pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA)"


def installed_ort_wheels() -> list[str]:
    """The onnxruntime wheels installed in this environment (by distribution name)."""
    found = []
    for name in ORT_WHEELS:
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def install_conflict() -> str | None:
    """A one-line hint when more than one onnxruntime wheel is installed, else None."""
    wheels = installed_ort_wheels()
    if len(wheels) < 2:
        return None
    return (
        f"{' and '.join(wheels)} are both installed and overwrite each other's files; "
        f"keep one: {_REPAIR.format(wheels=' '.join(wheels))}"
    )


TELEMETRY_VAR = "ORT_DISABLE_TELEMETRY"  # read by ONNX Runtime (1.29 and later) once, when it is imported


def onnxruntime() -> ModuleType:
    """The onnxruntime module, or an InstallError saying how to repair the environment.

    ONNX Runtime's own telemetry (on by default since 1.29 on Linux and macOS) is turned off unless the user set
    ORT_DISABLE_TELEMETRY: an offline classifier should not try to reach the network, nor warn on every start
    that it cannot store a device id when HOME is not writable."""
    os.environ.setdefault(TELEMETRY_VAR, "1")
    try:
        import onnxruntime as ort_module
    except ImportError as e:
        hint = install_conflict() or "pip install --force-reinstall onnxruntime (or onnxruntime-gpu)"
        raise InstallError(f"cannot import onnxruntime ({e}): {hint}") from e
    return ort_module


@functools.cache
def ort_errors() -> tuple[type[BaseException], ...]:
    """What ONNX Runtime raises: its C++ errors derive from Exception only, so they are listed here."""
    onnxruntime()
    state = importlib.import_module("onnxruntime.capi.onnxruntime_pybind11_state")
    native = tuple(v for v in vars(state).values() if isinstance(v, type) and issubclass(v, Exception))
    return (RuntimeError, ValueError, *native)


def requested_providers(device: str, providers: Sequence[str] | None) -> list[str]:
    """The providers to try, best first: an explicit list wins over `device`."""
    if providers is not None:
        if isinstance(providers, str) or not providers or not all(isinstance(p, str) for p in providers):
            raise UsageError(f"providers must be a non-empty list of provider names, got {providers!r}")
        return list(dict.fromkeys(providers))
    gpu_index(device)  # refuses what is not a device
    return [CPU] if device == "cpu" else [CUDA, CPU]


def gpu_index(device: str) -> int:
    """The CUDA device index `device` names (0 for auto and cuda); UsageError unless it is one of DEVICES."""
    name, colon, index = device.partition(":")
    if name in ("auto", "cpu", "cuda") and not colon:
        return 0
    if name == "cuda" and index.isdigit():
        return int(index)
    raise UsageError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")


def open_session(
    path: Path, device: str = "auto", providers: Sequence[str] | None = None, threads: int = 0
) -> ort.InferenceSession:
    """An InferenceSession for the model file at `path`; ModelError (one line) when it cannot be loaded.
    `threads`: ONNX Runtime's intra-op threads (0: its default, one per core)."""
    wanted = requested_providers(device, providers)
    if path.is_dir():
        inside = sorted(path.glob("*.onnx"))
        if not inside:
            raise ModelError(f"{path} is a folder with no .onnx file in it: pass an ONNX model file")
        raise ModelError(f"{path} is a folder, not a model file: pass the .onnx file in it, e.g. {inside[0]}")
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    not_onnx = _not_onnx(path)
    if not_onnx:
        raise ModelError(f"{path} {not_onnx}")
    rt = onnxruntime()
    conflict = install_conflict()
    if conflict:
        warnings.warn(conflict, CifarRuntimeWarning, stacklevel=3)
    loud = device != "auto" or providers is not None  # `auto` may fall back to CPU quietly
    available = rt.get_available_providers()
    reasons = {p: _not_built_reason(p) for p in wanted if p not in available}
    usable = [p for p in wanted if p in available] or [CPU]
    try:
        session = _create(rt, path, usable, gpu_index(device) if providers is None else 0, threads)
    except ort_errors() as e:
        if usable == [CPU]:
            raise ModelError(f"cannot load model {path}: {_load_error(rt, e)}") from e
        # An accelerator failed while building the session; if CPU loads the file, the model is fine.
        try:
            session = _create(rt, path, [CPU], threads=threads)
        except ort_errors() as cpu_error:
            raise ModelError(f"cannot load model {path}: {_load_error(rt, cpu_error)}") from cpu_error
        reasons.update({p: f"ONNX Runtime: {one_line(e)}" for p in usable if p != CPU})
    active = session.get_providers()
    reasons.update({p: _load_failure_reason(rt, p) for p in usable if p not in active and p not in reasons})
    if loud and reasons:
        unused = "; ".join(f"{p} not used ({why})" for p, why in reasons.items() if p != CPU)
        # stacklevel 3: point at the caller of Classifier(...), the line a user can change
        warnings.warn(f"{unused}; running on {', '.join(active)}", CifarRuntimeWarning, stacklevel=3)
    return session


def _not_onnx(path: Path) -> str | None:
    """What the file is when its first bytes say it cannot be ONNX (which starts with a protobuf field tag)."""
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError as e:
        return f"cannot be read: {e.strerror or e}"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):  # a pickle: old torch.save
        return f"is a PyTorch checkpoint, not an ONNX model: export it with `cifar-export onnx {path}`"
    if head != b"PK\x03\x04":
        return None
    entries = _zip_entries(path)
    from_checkpoint = "export ONNX from the cifar-train checkpoint it came from: `cifar-export onnx CHECKPOINT.pt`"
    if "archive_format" in entries:  # torch.export.save
        return f"is a torch.export (.pt2) program, which ONNX Runtime cannot run: {from_checkpoint}"
    if "code" in entries:  # torch.jit.save: the scripted code beside the pickled constants
        return f"is a TorchScript program, which ONNX Runtime cannot run: {from_checkpoint}"
    if "data.pkl" in entries:  # torch.save
        return f"is a PyTorch checkpoint, not an ONNX model: export it with `cifar-export onnx {path}`"
    onnx = sorted(name for name in entries if name.endswith(".onnx"))
    if onnx:
        return f"is a zip archive, not an ONNX model: unpack it and pass the .onnx file in it ({onnx[0]})"
    return "is a zip archive with no ONNX model in it"


def _zip_entries(path: Path) -> set[str]:
    """The names in a zip archive, each also without its first folder (torch archives put all under one)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return set()
    return {part for name in names for part in (name, *name.split("/", 2)[1:2])}


def quiet_ort_logs() -> None:
    """Keep ONNX Runtime's own warnings off stderr (process-wide): the CLI prints its own one-line ones."""
    onnxruntime().set_default_logger_severity(3)  # 3 = ERROR


def _create(rt: ModuleType, path: Path, providers: list[str], gpu: int = 0, threads: int = 0) -> ort.InferenceSession:
    options = rt.SessionOptions()
    options.log_severity_level = 3  # session warnings (e.g. nodes placed on CPU) would repeat ours
    # Idle ONNX Runtime threads would spin between runs on the cores the decoding threads need: measured on the
    # 10k test folder (2 cores, int8), 4059 img/s without spinning against 3528-3691 with it.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.intra_op_num_threads = threads  # 0: ONNX Runtime's default
    # enable_fallback=0: ORT's own fallback prints to stdout (mixing into our output) and, at run time,
    # swaps providers on a shared session; we fall back here instead, once, before any run.
    chosen = [(p, {"device_id": str(gpu)}) if p == CUDA else p for p in providers]  # which GPU: cuda:N
    session = rt.InferenceSession(str(path), sess_options=options, providers=chosen, enable_fallback=0)
    session.disable_fallback()
    return session


def _load_error(rt: ModuleType, e: BaseException) -> str:
    """ORT's reason in one line; a file too new for this onnxruntime says so first (ORT puts that at the end)."""
    too_new = _TOO_NEW.search(str(e))
    if too_new:
        return f"it needs a newer onnxruntime than {rt.__version__} ({too_new.group()}): pip install -U onnxruntime"
    return one_line(e)


def _not_built_reason(provider: str) -> str:
    if provider == CUDA:
        return "this onnxruntime build has no CUDA; for GPUs: pip uninstall onnxruntime, pip install onnxruntime-gpu"
    return "not built into this onnxruntime"


def _load_failure_reason(rt: ModuleType, provider: str) -> str:
    """Why ORT skipped a built-in provider: for CUDA, the loader's own error for its shared library."""
    if provider != CUDA:
        return "ONNX Runtime did not activate it"
    name = "onnxruntime_providers_cuda.dll" if sys.platform == "win32" else "libonnxruntime_providers_cuda.so"
    library = Path(rt.__file__).parent / "capi" / name
    try:
        ctypes.CDLL(str(library))
    except OSError as e:  # e.g. "libcudnn.so.9: cannot open shared object file: No such file or directory"
        return one_line(e)
    return "its library loads, but ONNX Runtime could not create it: is there a CUDA device and driver?"
