"""Shared test helpers: where the read-only NIH material is, and running the command-line tools for real."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
NIH_2017 = SHARED / "nih-metadata" / "Data_Entry_2017.csv.gz"
NIH_2020 = SHARED / "nih-metadata" / "Data_Entry_2017_v2020.csv.gz"
FULL_SAMPLE = SHARED / "nih-sample"
RGBA_IMAGES = ("00000100_000", "00002578_000", "00004934_000", "00005224_000", "00005813_000")


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python -m cxr_age ARGS` in a fresh process, as a user would, capturing its output."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-m", "cxr_age", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit code 2, exactly one line on stderr, no traceback, and the line names every fragment."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def write_csv(tmp_path: Path):
    """Write a CSV from text lines into tmp_path and return its path."""

    def write(text: str, name: str = "table.csv", encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
        return path

    return write
