import shutil
from dataclasses import replace

import pytest
import torch

from cifar_train.config import RECIPES
from cifar_train.data import build_datasets, stratified_split
from cifar_train.errors import UserError
from cifar_train.images import load_image_folder


def test_fixture_decodes_to_uint8_tensors_in_cifar_class_order(cifar_fixture):
    s = load_image_folder(cifar_fixture, "test")
    assert s.images.shape == (300, 3, 32, 32) and s.images.dtype == torch.uint8
    assert s.classes[0] == "airplane" and s.classes[-1] == "truck"
    assert torch.equal(s.labels.bincount(), torch.full((10,), 30))


def test_stratified_split_is_exact_disjoint_balanced_and_fixed():
    labels = torch.arange(10).repeat_interleave(500)
    train_idx, val_idx = stratified_split(labels, 1000, seed=0)
    assert len(val_idx) == 1000 and len(train_idx) == 4000
    assert not set(train_idx.tolist()) & set(val_idx.tolist())
    assert torch.equal(labels[val_idx].bincount(), torch.full((10,), 100))
    assert torch.equal(stratified_split(labels, 1000, seed=0)[1], val_idx)
    assert not torch.equal(stratified_split(labels, 1000, seed=1)[1], val_idx)


def test_uneven_split_still_sums_to_val_size():
    labels = torch.tensor([0] * 7 + [1] * 3)
    _, val_idx = stratified_split(labels, 3, seed=0)
    assert len(val_idx) == 3


def test_transforms_produce_recipe_shapes_and_ranges(cifar_fixture):
    data, _ = build_datasets(replace(RECIPES["cnn"].config, data=str(cifar_fixture), val_size=50))
    x, y = data.train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
    assert len(data.train) == 150 and len(data.val) == 50 and len(data.test) == 300
    raw = data.test.images[0].float() / 255
    assert torch.allclose(data.test[0][0], (raw - 0.5) / 0.5, atol=1e-6)  # eval: ToTensor + Normalize(0.5, 0.5) only


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("missing", "no data at"),
        ("no_test", "is not a folder"),
        ("empty_class", "holds no image files"),
        ("extra_class", "different class folders"),
        ("unreadable_class", "train/dog: none of its image files can be read"),
    ],
)
def test_bad_data_is_a_user_error_naming_the_problem(tmp_path, cifar_fixture, breakage, message):
    root = tmp_path / "data"
    if breakage != "missing":
        shutil.copytree(cifar_fixture, root)
    if breakage == "no_test":
        shutil.rmtree(root / "test")
    elif breakage == "empty_class":
        for f in (root / "train" / "cat").iterdir():
            f.unlink()
    elif breakage == "extra_class":
        (root / "test" / "unicorn").mkdir()
        shutil.copy(cifar_fixture / "test" / "cat" / "0000.jpg", root / "test" / "unicorn")
    elif breakage == "unreadable_class":
        for f in (root / "train" / "dog").iterdir():
            f.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(UserError, match=message):
        build_datasets(replace(RECIPES["cnn"].config, data=str(root), val_size=10))


def test_files_that_cannot_be_read_are_left_out_and_said_once(tmp_path, cifar_fixture):
    root = tmp_path / "data"
    shutil.copytree(cifar_fixture, root)
    (root / "train" / "dog" / "0000.jpg").write_bytes(b"\xff\xd8 not really a jpeg")  # no image at all
    whole = (root / "test" / "cat" / "0000.jpg").read_bytes()
    (root / "test" / "cat" / "0000.jpg").write_bytes(whole[: len(whole) // 2])  # a header, then truncated
    (root / "train" / "dog" / "notes.txt").write_text("not an image extension: never read")
    said = []
    data, _ = build_datasets(replace(RECIPES["cnn"].config, data=str(root), val_size=10), said.append)
    assert len(data.train) + len(data.val) == 199 and len(data.test) == 299  # the rest, every one of them
    assert data.info.unreadable == 2
    assert [line for line in said if line.startswith("skipped 2 file(s) that cannot be read")], said


def test_a_folder_laid_out_with_val_and_no_test_is_tested_on_val(tmp_path, cifar_fixture):
    from cifar_export.images import split_folder

    root = tmp_path / "data"
    shutil.copytree(cifar_fixture, root)
    (root / "test").rename(root / "val")  # as Ultralytics and timm lay a dataset out
    said = []
    data, _ = build_datasets(replace(RECIPES["cnn"].config, data=str(root), val_size=10), said.append)
    assert len(data.test) == 300 and len(data.val) == 10  # val/ is tested once; validation still comes from train/
    assert [line for line in said if line.startswith(f"no test/ folder: {root / 'val'} is the test split")], said
    assert split_folder(root, "test") == root / "val"  # export's checks read the same images
