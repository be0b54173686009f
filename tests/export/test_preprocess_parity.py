"""The runtime's numpy preprocessing against the training eval transforms, on the real fixture images."""

import numpy as np
import torch

from cifar_runtime.metadata import ModelInfo
from cifar_runtime.preprocess import load_image, model_input, pixels
from cifar_train import get_spec
from cifar_train.data import eval_transform
from cifar_train.images import load_image_folder, scan_image_folder

# ResNet18 upsamples 32 -> 224. torchvision's uint8 antialiased bilinear resize reproduces Pillow's, so the same
# 1e-5 holds (measured: 7e-7 max). Were they to differ by a uint8 rounding step, that would show as ~0.0175 here.
RESIZE_TOLERANCE = 1e-5


def both_ways(cifar_fixture, arch: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    paths, _, classes = scan_image_folder(cifar_fixture / "test")
    mean, std = get_spec(arch).normalisation
    info = ModelInfo(arch=arch, classes=classes, input_size=(size, size), mean=mean, std=std)
    runtime = model_input(np.stack([pixels(load_image(p), info) for p in paths]), info)  # (N, 3, size, size)
    images = load_image_folder(cifar_fixture, "test").images  # (N, 3, 32, 32) uint8, decoded as in training
    transform = eval_transform(size, mean, std, stored=32)
    training = torch.stack([transform(im) for im in images]).numpy()
    return runtime, training


def test_cnn_preprocessing_matches_training_eval_transform(cifar_fixture):
    runtime, training = both_ways(cifar_fixture, "cnn", 32)
    assert runtime.shape == training.shape == (300, 3, 32, 32)
    assert np.abs(runtime - training).max() <= 1e-5


def test_resnet_224_resize_matches_within_stated_tolerance(cifar_fixture):
    runtime, training = both_ways(cifar_fixture, "resnet18", 224)
    diff = np.abs(runtime - training)
    assert runtime.shape == training.shape == (300, 3, 224, 224)
    assert diff.max() <= RESIZE_TOLERANCE, diff.max()
