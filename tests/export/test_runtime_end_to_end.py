"""The exported file is all the runtime needs: its Classifier, fed JPEG files, agrees with the checkpoint.

This joins both halves of the parity story: the runtime's Pillow/numpy preprocessing, driven only by the
file's metadata (incl. ResNet18's resize to 224), against torchvision's eval transform and the eager model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cifar_export.images import SAMPLES
from cifar_runtime import Classifier
from cifar_runtime.preprocess import model_input, read_pixels
from cifar_train.checkpoint import load_checkpoint, model_from_checkpoint
from cifar_train.data import eval_transform
from cifar_train.images import decode_images, scan_image_folder


@pytest.mark.parametrize(
    ("arch", "exported", "checkpoint"),
    [("cnn", "cnn_exported", "cnn_checkpoint"), ("resnet18", "resnet_exported", "resnet_checkpoint")],
)
def test_runtime_classifier_on_jpeg_files_matches_the_checkpoint(
    arch: str, exported: str, checkpoint: str, request: pytest.FixtureRequest
) -> None:
    folder: Path = request.getfixturevalue(exported)
    paths, _, classes = scan_image_folder(SAMPLES / "test")
    paths = paths[::15]  # 20 images, 2 per class
    clf = Classifier(folder / f"{arch}.onnx", device="cpu")
    assert clf.classes == classes
    # the runtime's own numpy/Pillow preprocessing, driven only by the file's metadata
    runtime_logits = clf.logits(model_input(np.stack([read_pixels(p, clf.info) for p in paths]), clf.info))
    # the training side: torchvision eval transform and the eager model from the checkpoint
    model = model_from_checkpoint(load_checkpoint(request.getfixturevalue(checkpoint)))
    with torch.inference_mode():
        transform = eval_transform(clf.input_size[0], clf.info.mean, clf.info.std, stored=32)  # CIFAR's 32x32 files
        torch_logits = model(transform(decode_images(paths))).numpy()
    assert np.abs(runtime_logits - torch_logits).max() <= 1e-4
    assert (runtime_logits.argmax(1) == torch_logits.argmax(1)).all()
    assert [p.label for p in clf.predict([str(p) for p in paths[:3]])] == [
        classes[i] for i in torch_logits[:3].argmax(1)
    ]
