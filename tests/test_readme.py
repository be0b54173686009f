"""Every command in the README's bash blocks runs as written, in a fresh clone of this repository.

Marked `readme` (CI runs `pytest -m readme` after the suite): it clones the repository, so it tests what is
committed, and runs the commands in order, as a newcomer would, with the development venv's commands on PATH.
The reader's own image folder, `my-images`, is a real one that is not CIFAR-10 (tests/digits.py).
Lines that need what no test machine has are skipped, each by a named rule below.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from digits import write_digits

REPO = Path(__file__).resolve().parents[1]
# Lines the test cannot run here, and why: nothing else is skipped.
SKIPPED = {
    "needs a GPU": re.compile(r"--device cuda|onnxruntime-gpu|torchrun"),
    "needs a Ray cluster or an object store": re.compile(r"--address|s3://"),
    "installs into the environment running the test": re.compile(r"^pip install"),
    "is the test command itself": re.compile(r"tests/run\.sh"),
    "starts or talks to a long-running service (tests/runtime/test_serve.py runs it)": re.compile(
        r"cifar-infer serve|localhost:8000"
    ),
}


def readme_commands() -> list[str]:
    """The README's bash commands, in order: one per line, continuation lines joined, comments dropped."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def skipped(command: str) -> str | None:
    return next((why for why, pattern in SKIPPED.items() if pattern.search(command)), None)


def test_nearly_every_readme_command_is_run() -> None:
    commands = readme_commands()
    skips = [c for c in commands if skipped(c)]
    assert len(commands) > 15 and len(skips) <= 10, skips


@pytest.mark.readme
def test_every_readme_command_runs_in_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    write_digits(clone / "my-images")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("CIFAR_MODEL", None)
    for command in readme_commands():
        if skipped(command):
            continue
        done = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{command}\nexit {done.returncode}\n{done.stderr[-2000:]}"
