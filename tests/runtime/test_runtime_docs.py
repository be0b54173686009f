"""The README states facts the code owns: they are read from the code here, so the two cannot drift apart."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from cifar_runtime.decode import DEFAULT_MAX_PIXELS, DRAFT_FACTOR
from cifar_runtime.exitcodes import MEANINGS
from cifar_runtime.metadata import MAX_CLASS_NAME, MAX_INPUT_SIDE
from cifar_runtime.precision import AUTO_MAX_DROP

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def test_readme_exit_code_table_is_the_one_in_the_code() -> None:
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", section("Exit codes (all four CLIs)"), re.MULTILINE)
    assert {int(code): meaning for code, meaning in rows} == MEANINGS


def test_readme_security_section_states_the_checked_limits() -> None:
    text = " ".join(section("Security").split())
    assert f"at most {MAX_CLASS_NAME} characters" in text and f"1 to {MAX_INPUT_SIDE} pixels" in text
    assert "`mean` in [0, 1], `std` in (0, 1]" in text and "validate_metadata" in text
    assert "private security advisory" in text


def test_every_virtualenv_the_readme_creates_is_ignored_by_git() -> None:
    ignored = (REPO / ".gitignore").read_text(encoding="utf-8").split()
    venvs = set(re.findall(r"python3? -m venv (\S+)", README))
    assert venvs and all(f"{v.rstrip('/')}/" in ignored for v in venvs), (venvs, ignored)


def test_readme_states_the_limits_and_the_auto_precision_rule_of_the_code() -> None:
    limits = " ".join(README.split())
    assert f"(default {DEFAULT_MAX_PIXELS:,} = 4096 × 3072)" in limits and DEFAULT_MAX_PIXELS == 4096 * 3072
    assert f"at least {DRAFT_FACTOR} × the input's (128 px for 32 × 32)" in limits
    assert f"recorded accuracy drop is at most {AUTO_MAX_DROP} points" in limits


def test_readme_python_api_snippet_runs_as_written() -> None:
    snippet = README.split("## Python API", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    result = subprocess.run([sys.executable, "-c", snippet], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "1 unreadable"
