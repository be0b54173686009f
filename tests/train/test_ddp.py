import subprocess
import sys
from pathlib import Path

import torch


def test_two_gloo_processes_end_with_identical_weights(cifar_fixture, tmp_path):
    worker = Path(__file__).with_name("ddp_worker.py")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(worker),
            str(cifar_fixture),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    w0, w1 = (torch.load(tmp_path / f"rank{i}.pt", weights_only=True) for i in (0, 1))
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "metrics.json").is_file()
    assert r.stderr.count("epoch   2/2") == 1  # rank 0 logs, rank 1 stays quiet
    # Each rank trained on its half: 150 train images -> 75 per rank per epoch; metrics span both.
    metrics = __import__("json").loads((tmp_path / "metrics.json").read_text())
    assert metrics["environment"]["world_size"] == 2
    assert sum(map(sum, metrics["test"]["confusion_matrix"])) == 300
