"""Which model file to load: the one asked for, else $CIFAR_MODEL, else the one shipped inside the package."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from cifar_runtime.errors import ModelError

ENV_VAR = "CIFAR_MODEL"
# The trained model shipped in cifar_runtime/models/ (its int8 sibling beside it): named after its architecture.
BUNDLED_NAME = "cifar10-airbench95.onnx"


def bundled_model() -> Path | None:
    """The model file installed with the package, or None when this build ships none."""
    resource = resources.files("cifar_runtime") / "models" / BUNDLED_NAME
    # pip installs packages as plain files, so the resource is a real path ORT can open.
    return Path(str(resource)) if resource.is_file() else None


def resolve_model(model: str | os.PathLike[str] | None) -> Path:
    """`model` if given, else $CIFAR_MODEL if set, else the bundled model; ModelError when there is none."""
    if model is not None:
        return Path(model)
    from_env = os.environ.get(ENV_VAR, "")
    if from_env:
        return Path(from_env)
    bundled = bundled_model()
    if bundled is None:
        raise ModelError(
            f"no default model is bundled with this cifar-runtime: pass --model FILE "
            f"(Classifier(model=...)) or set {ENV_VAR}=FILE"
        )
    return bundled
