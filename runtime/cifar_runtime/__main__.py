"""`python -m cifar_runtime` runs `cifar-infer`."""

from cifar_runtime.cli import entry

entry()
