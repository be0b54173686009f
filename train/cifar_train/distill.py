"""Knowledge distillation targets: an ensemble of trained checkpoints, each with its own test-time views, predicts
every training image once; a student then learns from those predictions beside the labels (Hinton et al. 2015).

The teachers' logits are cached in the run folder (`teachers.pt`), one entry per teacher and precision, saved as
each one finishes, so an interrupted or resumed run never computes a teacher twice. The teachers predict at the
run's precision: with --cpu-amp in bfloat16, 1.9x faster than float32 on an AVX512-BF16 CPU; on 1,000 training
images its probabilities differ from float32's by 4e-4 on average, 0.016 at most (AMD EPYC, 2026-12-06).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from cifar_train.augment import normalize
from cifar_train.checkpoint import atomic_write, load_checkpoint, model_from_checkpoint
from cifar_train.errors import UserError
from cifar_train.loop import amp_dtype, autocast
from cifar_train.tta import TestTimeAugmentation

CACHE = "teachers.pt"
BATCH = 500  # teacher images per forward pass: (500 x 6 views) x 3 x 32 x 32 float32 is 74 MB


def teacher_paths(teachers: str) -> list[Path]:
    """The --teachers flag as checkpoint paths; UserError naming the first one that is missing."""
    paths = [Path(p.strip()) for p in teachers.split(",") if p.strip()]
    for path in paths:
        if not path.is_file():
            raise UserError(f"--teachers: checkpoint {path} does not exist")
    return paths


def teacher_probabilities(
    teachers: str,
    temperature: float,
    images: torch.Tensor,
    classes: tuple[str, ...],
    device: torch.device,
    cache: Path,
    log: Callable[[str], None],
    amp: bool = False,
) -> torch.Tensor:
    """(N, C) float32: the mean over teachers of softmax(logits / temperature), each teacher's logits averaged over
    the test-time views it was evaluated with. `images`: the (N, 3, H, W) uint8 training images, in loader order;
    `amp`: the teachers predict under autocast (the run's --amp / --cpu-amp)."""
    key = _images_key(images)
    cached = _read_cache(cache, key)
    probs = []
    for path in teacher_paths(teachers):
        ckpt = load_checkpoint(path)
        # the weights, not the file: a record added to the checkpoint changes nothing. A float32 entry has the bare
        # digest and serves every run (exact targets); a mixed-precision entry serves only runs of its precision
        exact = weights_sha256(ckpt)
        digest = exact if exact in cached or not amp else f"{exact}:{amp_dtype(device)}"
        if digest not in cached:
            if tuple(ckpt["classes"]) != classes:
                raise UserError(
                    f"--teachers: {path} was trained on classes {list(ckpt['classes'])}, this run has {list(classes)}"
                )
            tta = int((ckpt.get("config") or {}).get("tta", 0))
            log(f"teacher {path}: predicting {len(images)} training images with TTA level {tta}")
            cached[digest] = _logits(
                ckpt,
                tta,
                images,
                device,
                amp,
                lambda done, path=path: log(f"teacher {path}: {done}/{len(images)} images"),
            )
            _write_cache(cache, key, cached)
        probs.append(F.softmax(cached[digest].float() / temperature, dim=1))
    return torch.stack(probs).mean(0)


@torch.no_grad()
def _logits(
    ckpt: dict, tta: int, images: torch.Tensor, device: torch.device, amp: bool, progress: Callable[[int], None]
) -> torch.Tensor:
    # channels_last: oneDNN's convolutions (bf16 above all) run in that layout; NCHW would be converted every call
    model = TestTimeAugmentation(model_from_checkpoint(ckpt), tta).to(device, memory_format=torch.channels_last)
    model.eval()
    mean, std = torch.tensor(ckpt["mean"]), torch.tensor(ckpt["std"])
    out = []
    for start in range(0, len(images), BATCH):
        x = normalize(images[start : start + BATCH], mean, std).to(device, memory_format=torch.channels_last)
        with autocast(device, amp):
            out.append(model(x).cpu())  # kept in the dtype computed: bfloat16 entries take half the space
        done = start + len(x)
        if done == len(images) or (done // BATCH) % 10 == 0:  # a line every 5,000 images: minutes on a CPU
            progress(done)
    return torch.cat(out)  # (N, C), float32, or the autocast dtype


def weights_sha256(ckpt: dict) -> str:
    """sha256 of a checkpoint's architecture and weights (names, dtypes, shapes, values), in name order."""
    h = hashlib.sha256(str(ckpt["arch"]).encode())
    for name, tensor in sorted(ckpt["model"].items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _images_key(images: torch.Tensor) -> list[int]:
    """Identifies the training images cheaply: their count and a checksum of every pixel (as int64)."""
    return [len(images), int(images.to(torch.int64).sum()), int((images[:, 0].to(torch.int64) * 7).sum())]


def _read_cache(cache: Path, key: list[int]) -> dict[str, torch.Tensor]:
    if not cache.is_file():
        return {}
    saved = torch.load(cache, map_location="cpu", weights_only=True)
    return dict(saved["logits"]) if saved.get("images") == key else {}


def _write_cache(cache: Path, key: list[int], logits: dict[str, torch.Tensor]) -> None:
    atomic_write(cache, lambda tmp: torch.save({"images": key, "logits": logits}, tmp))
