"""Run by `torchrun` in test_ddp.py: train a tiny run and save this rank's final weights."""

import os
import sys
from dataclasses import replace
from pathlib import Path

import torch

from cifar_train.config import RECIPES
from cifar_train.run import train

data, out = sys.argv[1], Path(sys.argv[2])
cfg = replace(RECIPES["cnn"].config, data=data, out=str(out), epochs=2, val_size=50, batch_size=16, device="cpu")
result = train(cfg)
torch.save(result.model.state_dict(), out / f"rank{os.environ['RANK']}.pt")
