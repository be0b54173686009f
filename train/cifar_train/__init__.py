"""cifar-train: the two seed CIFAR-10 pipelines (custom CNN, ResNet18 transfer), reproducible and resumable."""

__version__ = "0.1.0"
