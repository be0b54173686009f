"""The runtime's own exception types: each message says what went wrong and what to do."""


class CifarRuntimeError(Exception):
    """Base class of every error this package raises on purpose."""


class ModelError(CifarRuntimeError):
    """The model file is missing, unreadable, not ONNX, or lacks the metadata the runtime needs."""


class ImageError(CifarRuntimeError):
    """An input could not be read or decoded as an image."""


class UsageError(CifarRuntimeError, ValueError):
    """An argument is out of range or of the wrong kind (device, providers, top_k, batch size, input type)."""


class InstallError(CifarRuntimeError):
    """onnxruntime is missing or broken in this environment (often two onnxruntime wheels at once)."""


class OutputError(CifarRuntimeError):
    """Rows could not be written while running (disk full, an I/O error, a closed pipe)."""


class CheckFailed(CifarRuntimeError):
    """A check the command exists to make failed (export parity, an accuracy gate): exit 3."""


class ReaderGone(OutputError):
    """stdout's reader closed the pipe (`cifar-infer ... | head`): normal for a Unix filter, so it stops quietly."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run: still a KeyboardInterrupt, and it says how many rows had been written for good."""

    def __init__(self, rows: int) -> None:
        super().__init__(rows)
        self.rows = rows


class CifarRuntimeWarning(UserWarning):
    """Something works, but not as asked (CUDA fell back to CPU, two onnxruntime wheels installed)."""


def one_line(e: BaseException) -> str:
    """An exception as one short line: its first line of text, or its type's name when it has none."""
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__
