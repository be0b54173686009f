"""--shard K/N: N shards together classify exactly what one process does, each file once, and each resumes alone."""

from __future__ import annotations

import hashlib
import io
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from runtime_files import TINY
from typer.testing import CliRunner, Result

from cifar_runtime.cli import app, resume_command
from cifar_runtime.infer import InferConfig
from cifar_runtime.inputs import find_images
from cifar_runtime.shard import Shard

N = 3


def invoke(*args: str | Path, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], input=stdin)


def rows(text: str) -> list[str]:
    return text.splitlines()


def test_shards_together_equal_one_process(cifar_fixture: Path) -> None:
    single = invoke("-m", TINY, "-f", "jsonl", "-k", "3", cifar_fixture)
    assert single.exit_code == 0, single.output
    shards = []
    for k in range(N):
        result = invoke("-m", TINY, "-f", "jsonl", "-k", "3", "--shard", f"{k}/{N}", cifar_fixture)
        assert result.exit_code == 0, result.output
        shards.append(rows(result.stdout))
    union = [row for shard in shards for row in shard]
    assert len(union) == len(set(union)) == len(rows(single.stdout)) == 500  # no file twice, none missed
    assert set(union) == set(rows(single.stdout))  # the same rows: same labels, same confidences
    assert all(100 < len(shard) < 240 for shard in shards), [len(s) for s in shards]  # about a third each


def test_the_split_depends_on_the_path_below_the_argument_not_on_order_or_mount(
    cifar_fixture: Path, tmp_path: Path
) -> None:
    mounted_elsewhere = tmp_path / "elsewhere" / "cifar"
    mounted_elsewhere.parent.mkdir()
    mounted_elsewhere.symlink_to(cifar_fixture)
    shard = Shard(1, N)
    here = [Path(f).relative_to(cifar_fixture) for f in find_images([str(cifar_fixture)], shard=shard).files]
    there = [Path(f).relative_to(mounted_elsewhere) for f in find_images([str(mounted_elsewhere)], shard=shard).files]
    assert here == there and len(here) > 0
    key = here[0].as_posix()  # e.g. "test/airplane/0003.jpg": the documented formula picks it
    assert int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % N == 1
    listed = sorted(str(p) for p in cifar_fixture.rglob("*.jpg"))
    shuffled = random.Random(0).sample(listed, len(listed))
    by_stdin = {
        tuple(sorted(find_images(["-"], io.StringIO("\n".join(order)), shard).files)) for order in (listed, shuffled)
    }
    assert len(by_stdin) == 1  # listing order does not move a file to another shard


def test_each_shard_resumes_on_its_own(cifar_fixture: Path, tmp_path: Path) -> None:
    outs = [tmp_path / f"preds.{k}.jsonl" for k in range(N)]
    for k, out in enumerate(outs):
        assert invoke("-m", TINY, "-f", "jsonl", "-o", out, "--shard", f"{k}/{N}", cifar_fixture).exit_code == 0
    complete = [out.read_text(encoding="utf-8") for out in outs]
    half = complete[1].splitlines(keepends=True)
    outs[1].write_text("".join(half[: len(half) // 2]), encoding="utf-8")  # shard 1 was interrupted
    again = invoke("-m", TINY, "-f", "jsonl", "-o", outs[1], "--shard", f"1/{N}", "--resume", cifar_fixture)
    assert again.exit_code == 0, again.output
    assert f"{len(half) - len(half) // 2} files" in again.stderr and f"{len(half) // 2} skipped" in again.stderr
    assert [out.read_text(encoding="utf-8") for out in outs] == complete
    paths = [json.loads(line)["path"] for text in complete for line in text.splitlines()]
    assert len(paths) == len(set(paths)) == 500


def test_an_empty_shard_of_a_non_empty_job_is_not_an_error(tmp_path: Path, test_images: list[Path]) -> None:
    results = [invoke("-m", TINY, "-f", "jsonl", "--shard", f"{k}/10", test_images[0]) for k in range(10)]
    assert {r.exit_code for r in results} == {0}
    assert sum(len(rows(r.stdout)) for r in results) == 1


@pytest.mark.parametrize("bad", ["3/3", "0/0", "-1/2", "1", "a/b", "1/2/3"])
def test_bad_shard_values_are_one_line_and_exit_2(test_images: list[Path], bad: str) -> None:
    result = invoke("-m", TINY, "--shard", bad, test_images[0])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"cifar-infer: error: --shard must be K/N with 0 <= K < N (K counts from 0), got {bad!r}"
    ]


def test_the_resume_command_after_ctrl_c_keeps_the_shard() -> None:
    cfg = InferConfig(format="jsonl", output=Path("p.2.jsonl"), shard=Shard(2, 4))
    assert resume_command(cfg, ["photos/"]) == (
        "cifar-infer --format jsonl --output p.2.jsonl --shard 2/4 --resume photos/"
    )


def test_the_readme_xargs_recipe(cifar_fixture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's one-machine example, run as written (with the tiny model), gives the single-process rows."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    lines = readme.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("seq 0 2 | xargs -P 3"))
    recipe = "set -e\n" + "\n".join(lines[start : start + 2])  # the xargs line and the cat that merges
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "CIFAR_MODEL": str(TINY)}
    folder = tmp_path / "export" / "cifar_export" / "samples" / "cifar10" / "test"  # the README's path
    folder.parent.mkdir(parents=True)
    folder.symlink_to(cifar_fixture / "test")
    (tmp_path / "runs").mkdir()
    done = subprocess.run(["bash", "-c", recipe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    merged = sorted(rows((tmp_path / "runs" / "preds.jsonl").read_text(encoding="utf-8")))
    monkeypatch.chdir(tmp_path)
    single = invoke("-m", TINY, "-f", "jsonl", "export/cifar_export/samples/cifar10/test")
    assert merged == sorted(rows(single.stdout)) and len(merged) == 300
