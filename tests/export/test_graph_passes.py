"""The exporter's own graph rewrites keep the model's outputs (checked in ONNX Runtime against torch)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from cifar_export.formats.onnx_export import fold_batchnorm_through_maxpool
from cifar_runtime.session import open_session


class ConvPoolNorm(nn.Module):
    """airbench's order: conv, max-pool, then BatchNorm (which the exporter cannot fold by itself), then GELU."""

    def __init__(self, scale_sign: float) -> None:
        super().__init__()
        self.conv, self.pool, self.norm = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(8)
        with torch.no_grad():
            self.norm.running_mean.uniform_(-1, 1)
            self.norm.running_var.uniform_(0.5, 2)
            self.norm.weight.uniform_(0.5, 1.5).mul_(scale_sign)
            self.norm.bias.uniform_(-1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(self.norm(self.pool(self.conv(x))))


def export(model: nn.Module, tmp_path) -> onnx.ModelProto:
    model.eval()
    program = torch.onnx.export(
        model,
        (torch.zeros(2, 3, 8, 8),),
        dynamo=True,
        opset_version=20,
        optimize=True,
        input_names=["image"],
        output_names=["logits"],
    )
    return program.model_proto


def run(proto: onnx.ModelProto, x: np.ndarray, tmp_path) -> np.ndarray:
    path = tmp_path / "m.onnx"
    onnx.save(proto, str(path))
    return open_session(path, device="cpu").run(None, {"image": x})[0]


@pytest.mark.parametrize("scale_sign, folds", [(1.0, 1), (-1.0, 0)])
def test_batchnorm_after_maxpool_folds_into_the_conv_only_when_exact(scale_sign, folds, tmp_path) -> None:
    torch.manual_seed(0)
    model = ConvPoolNorm(scale_sign)
    proto = export(model, tmp_path)
    assert "BatchNormalization" in [n.op_type for n in proto.graph.node]
    assert fold_batchnorm_through_maxpool(proto.graph) == folds
    ops = [n.op_type for n in proto.graph.node]
    assert ("BatchNormalization" in ops) == (folds == 0)
    onnx.checker.check_model(proto, full_check=True)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run(proto, x, tmp_path), expected, atol=1e-5)
    if folds:  # the BatchNorm's parameters went with it
        names = {t.name for t in proto.graph.initializer}
        assert not any(name.startswith("norm.") for name in names), names
