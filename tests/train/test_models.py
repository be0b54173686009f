import pytest
import torch

from cifar_train.errors import UserError
from cifar_train.models import create_model, get_spec

load_pretrained = get_spec("resnet18").load_pretrained


def test_cnn_layer_shapes_match_the_seed_table():
    model = create_model("cnn").eval()
    x = torch.zeros(2, 3, 32, 32)
    shapes = []
    for layer in [*model.features, *model.classifier]:
        x = layer(x)
        shapes.append((type(layer).__name__, tuple(x.shape[1:])))
    convs = [s for name, s in shapes if name == "Conv2d"]
    pools = [s for name, s in shapes if name == "MaxPool2d"]
    linears = [s for name, s in shapes if name == "Linear"]
    assert convs == [(64, 32, 32), (64, 32, 32), (128, 16, 16), (128, 16, 16), (256, 8, 8)]
    assert pools == [(64, 16, 16), (128, 8, 8), (256, 4, 4)]
    assert dict(shapes)["Flatten"] == (4096,)
    assert linears == [(512,), (10,)]
    assert sum(1 for name, _ in shapes if name == "BatchNorm2d") == 5
    conv_layers = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert all(m.kernel_size == (3, 3) and m.padding == (1, 1) for m in conv_layers)
    assert [m.p for m in model.classifier if isinstance(m, torch.nn.Dropout)] == [0.5]


def test_resnet18_trains_exactly_layer4_and_fc():
    model = create_model("resnet18")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert trainable and all(n.startswith(("layer4.", "fc.")) for n in trainable)
    assert not any(n.startswith(("layer4.", "fc.")) for n in frozen)
    assert model.fc.out_features == 10 and model.fc.in_features == 512
    assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 10)


def test_missing_imagenet_weights_say_how_to_provide_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UserError, match="--weights FILE.*--no-pretrained"):
        load_pretrained(create_model("resnet18"), None)


def test_local_weights_file_loads_backbone_and_keeps_10_way_head(tmp_path):
    torch.manual_seed(1)
    source = create_model("resnet18")
    imagenet_like = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}
    imagenet_like["fc.weight"], imagenet_like["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    torch.save(imagenet_like, tmp_path / "w.pth")
    target = create_model("resnet18")
    load_pretrained(target, tmp_path / "w.pth")
    assert torch.equal(target.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    assert target.fc.out_features == 10


def test_weights_file_of_another_architecture_is_refused(tmp_path):
    torch.save(create_model("cnn").state_dict(), tmp_path / "cnn.pth")
    with pytest.raises(UserError, match="does not fit resnet18"):
        load_pretrained(create_model("resnet18"), tmp_path / "cnn.pth")


@pytest.mark.parametrize(("arch", "features"), [("resnet34", 512), ("resnet50", 2048)])
def test_deeper_resnets_are_registered_with_the_same_transfer_recipe(arch, features):
    model = create_model(arch)
    assert model.fc.in_features == features and model.fc.out_features == 10
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"layer4", "fc"}
