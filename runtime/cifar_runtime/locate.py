"""Which model file to load: the one asked for (a path, or the name of a bundled model), else $CIFAR_MODEL, else
the default shipped inside the package."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from cifar_runtime.errors import ModelError

ENV_VAR = "CIFAR_MODEL"
# The trained models shipped in cifar_runtime/models/, named after their architecture. The default has its int8
# sibling beside it; the small one (the distilled student, about 0.4x the default's cost per image at the same
# one-view accuracy, for small devices) ships in int8 only, its fp32 file is not worth the package size.
BUNDLED_NAME = "cifar10-airbench95.onnx"
SMALL_NAME = "cifar10-airbench94.int8.onnx"


def bundled_names() -> dict[str, str]:
    """What `--model NAME` takes: the bundled models by name."""
    return {"default": BUNDLED_NAME, "small": SMALL_NAME}


MODEL_HELP = f"ONNX model file, or a bundled model: {' | '.join(bundled_names())} [default: ${ENV_VAR}, else default]"


def bundled_model(name: str = "default") -> Path | None:
    """The model file installed with the package under `name`, or None when this build ships none."""
    resource = resources.files("cifar_runtime") / "models" / bundled_names()[name]
    # pip installs packages as plain files, so the resource is a real path ORT can open.
    return Path(str(resource)) if resource.is_file() else None


def resolve_model(model: str | os.PathLike[str] | None) -> Path:
    """`model` if given (a file, else a bundled model's name), else $CIFAR_MODEL if set, else the bundled default;
    ModelError when there is none."""
    if model is not None:
        names = bundled_names()
        if str(model) in names and not Path(model).exists():  # a file of that name in the working folder wins
            bundled = bundled_model(str(model))
            if bundled is None:
                raise ModelError(f"no {model!r} model ({names[str(model)]}) is bundled with this cifar-runtime")
            return bundled
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
