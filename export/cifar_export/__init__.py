"""Export cifar-train checkpoints to TorchScript and ONNX, prove they match, quantise, and benchmark them.

Importing this package does not import torch: the ONNX Runtime benchmark workers must stay torch-free.
"""

__version__ = "0.1.0"
PRODUCER = f"cifar-export {__version__}"
