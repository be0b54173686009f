"""`python -m cifar_runtime` runs `cifar-infer`."""

from cifar_runtime.cli import app

app(prog_name="cifar-infer")
