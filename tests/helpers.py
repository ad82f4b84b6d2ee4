"""Test helpers: where the NIH test material is, running the command-line tools for real (in a fresh
process with the network guard, or in this one), the one-line error check, and synthetic images whose age
is visible. Fixtures live in `conftest.py`.

The default run needs nothing outside the repository: `tests/fixtures/` holds rows of both NIH releases and
a few full-size NIH PNGs, and the v2020 table ships in `data/`. Tests marked `shared` read the whole 2017
release from `../shared` (present on the project's machines and in CI, absent in a user's clone) and are
skipped, with that reason, where it is missing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import cv2
import no_network
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
NIH_2017_ROWS = FIXTURES / "nih" / "Data_Entry_2017_rows.csv"
NIH_2020_ROWS = FIXTURES / "nih" / "Data_Entry_2017_v2020_rows.csv"
FULL_SIZE = FIXTURES / "nih-full"
NIH_2020 = ROOT / "data" / "Data_Entry_2017_v2020.csv.gz"
SHARED = ROOT.parent / "shared"
NIH_2017 = SHARED / "nih-metadata" / "Data_Entry_2017.csv.gz"
GUARD_DIR = Path(__file__).resolve().parent / "network_guard"
NETWORK_LOG = Path(os.environ.get("TMPDIR", "/tmp")) / f"cxr-age-network-{os.getpid()}.log"
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"  # set for every test by conftest.py
RGBA_IMAGES = ("00000100_000", "00002578_000", "00004934_000", "00005224_000", "00005813_000")

def guarded_environment() -> dict[str, str]:
    """The environment for a command the tests start: the network guard installed, TensorFlow's log level
    left to the command."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(GUARD_DIR), env.get("PYTHONPATH")]))
    env[no_network.LOG_VARIABLE] = str(NETWORK_LOG)
    return env


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python -m cxr_age ARGS` in a fresh process, as a user would, capturing its output."""
    return subprocess.run([sys.executable, "-m", "cxr_age", *args], capture_output=True, text=True, cwd=cwd,
                          env=guarded_environment(), timeout=300)


class BackgroundCommand:
    """`python -m cxr_age ARGS` started now in a process of its own, its output kept in files, so that it
    runs while other tests do; `result()` waits for it."""

    def __init__(self, args: list[str], folder: Path) -> None:
        self.args = args
        self.stdout, self.stderr = folder / "stdout.txt", folder / "stderr.txt"
        with open(self.stdout, "w") as out, open(self.stderr, "w") as err:
            self.process = subprocess.Popen([sys.executable, "-m", "cxr_age", *args], stdin=subprocess.DEVNULL,
                                            stdout=out, stderr=err, env=guarded_environment())

    def result(self, timeout: float = 600) -> subprocess.CompletedProcess:
        code = self.process.wait(timeout=timeout)
        return subprocess.CompletedProcess(self.args, code, self.stdout.read_text(), self.stderr.read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def call_cli(main, *args: str, capsys) -> subprocess.CompletedProcess:
    """Call a command's `main` in this process (no TensorFlow start-up per call), as a finished process."""
    try:
        code = main(list(args))
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit code 2, exactly one line on stderr, no traceback, and the line names every fragment."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]

def free_ports(n: int) -> list[int]:
    """`n` TCP ports on 127.0.0.1 that nothing listens on now."""
    sockets = [socket.socket() for _ in range(n)]
    for handle in sockets:
        handle.bind(("127.0.0.1", 0))
    ports = [handle.getsockname()[1] for handle in sockets]
    for handle in sockets:
        handle.close()
    return ports


def write_bar_images(folder: Path, n: int, seed: int = 0, size: int = 64) -> Path:
    """Synthetic radiographs whose age is visible: noise plus a bright bar whose length grows with age."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ages = rng.uniform(2, 88, n).round(1)
    for i, age in enumerate(ages):
        image = rng.normal(60, 20, (size, size)).clip(0, 255)
        length = int(4 + (size - 8) * age / 90)
        image[size // 2 - 4: size // 2 + 4, 4: 4 + length] = 230
        cv2.imwrite(str(folder / f"bar{i:04d}.png"), image.astype(np.uint8))
    table = pd.DataFrame({"image": [f"bar{i:04d}.png" for i in range(n)], "age": ages,
                          "patient_id": [f"p{i}" for i in range(n)]})
    table.to_csv(folder.parent / "labels.csv", index=False)
    return folder.parent / "labels.csv"


class CommandRun(NamedTuple):
    """A run trained by the command line: its folder, the table it read, and the command's result."""

    run_dir: Path
    csv: Path
    result: subprocess.CompletedProcess


def small_classifier(csv: Path, out: Path) -> list[str]:
    """`cxr-age-train classify` of a small run: DenseNet121, 64 px, 2 epochs of batches of 8."""
    return ["train", "classify", "--csv", str(csv), "--backbone", "densenet121", "--image-size", "64",
            "--epochs", "2", "--batch-size", "8", "--out", str(out)]


def kill_after_first_epoch(args: list[str], history: Path, limit: float = 280) -> tuple[int, list[int]]:
    """Start `python -m cxr_age ARGS`, SIGKILL it as soon as `history` holds an epoch (the next one is then
    under way), and return its exit status and the epochs logged by then."""
    process = subprocess.Popen([sys.executable, "-m", "cxr_age", *args], env=guarded_environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + limit
    try:
        while not (history.is_file() and len(history.read_text().splitlines()) >= 2):
            assert process.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline, "no epoch logged in time"
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
        return process.wait(timeout=60), pd.read_csv(history)["epoch"].tolist()
    finally:
        process.kill()
