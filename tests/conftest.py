"""Fixtures: the network guard around every test, the skip of the `shared` tests where that folder is
missing, and the small real runs that several test files share (made once per test run). Helpers that tests
import are in `helpers.py`."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import no_network
import pytest
from helpers import (
    NETWORK_LOG,
    NIH_2017,
    TEST_XLA_FLAGS,
    BackgroundCommand,
    CommandRun,
    small_classifier,
    write_bar_images,
)

# XLA (the JAX backend, TensorFlow's --jit-compile) compiles the tests' networks with LLVM's optimisation off,
# in this process and every command it starts: the same programs, compiled in about two thirds of the time on
# 2 cores, and run for a few steps of a 32-64 px network. A user's XLA_FLAGS come after, so they still win.
os.environ["XLA_FLAGS"] = " ".join(filter(None, [TEST_XLA_FLAGS, os.environ.get("XLA_FLAGS")]))

# The shared classifier's training, started in its own process as soon as the tests are collected: its
# start-up and the trace of its training step (mostly one core) then overlap the phantom regressor's
# training in this process instead of following it.
_CLASSIFIER: dict[str, tuple[BackgroundCommand, Path, Path]] = {}


def _start_classifier() -> tuple[BackgroundCommand, Path, Path]:
    root = Path(tempfile.mkdtemp(prefix="cxr-age-classify-"))
    csv = write_bar_images(root / "images", 40)
    return BackgroundCommand(small_classifier(csv, root / "run"), root), csv, root / "run"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Skip the `shared` tests, saying why, in a clone without the project's read-only NIH folder; start the
    shared classifier's training if a selected test needs it."""
    if not NIH_2017.is_file():
        skip = pytest.mark.skip(reason=f"needs the whole NIH 2017 release at {NIH_2017} (the project's "
                                       "machines and CI have it; a user's clone does not)")
        for item in items:
            if "shared" in item.keywords:
                item.add_marker(skip)
    if any("classify_run" in item.fixturenames for item in items) and not config.option.collectonly:
        _CLASSIFIER["run"] = _start_classifier()


def pytest_sessionfinish(session, exitstatus):
    for command, _, run_dir in _CLASSIFIER.values():
        command.stop()
        shutil.rmtree(run_dir.parent, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def network_guard():
    """The network guard, in this process and (through `guarded_environment`) in every command started."""
    NETWORK_LOG.unlink(missing_ok=True)
    no_network.install(str(NETWORK_LOG))
    yield
    NETWORK_LOG.unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def no_network_access(network_guard):
    """Fails the test if it, or a command it ran, tried to reach the network."""
    yield
    attempts = NETWORK_LOG.read_text() if NETWORK_LOG.exists() else ""
    NETWORK_LOG.unlink(missing_ok=True)
    assert not attempts, f"a command tried to reach the network:\n{attempts}"


@pytest.fixture
def write_csv(tmp_path: Path):
    """Write a CSV from text lines into tmp_path and return its path."""

    def write(text: str, name: str = "table.csv", encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
        return path

    return write


@pytest.fixture(scope="session")
def classify_run() -> CommandRun:
    """One small classifier run made by the command line (DenseNet121, 64 px, 40 bar images, 2 epochs),
    shared by the tests of the commands that read runs; started when the tests were collected. (Killing and
    resuming such a run is a `long` test: the killed process traces the training step again, about 50 s on
    2 cores.)"""
    if "run" not in _CLASSIFIER:
        _CLASSIFIER["run"] = _start_classifier()
    command, csv, run_dir = _CLASSIFIER["run"]
    return CommandRun(run_dir, csv, command.result())


@pytest.fixture(scope="session")
def phantom_run(tmp_path_factory):
    """A DenseNet121 regressor trained on 480 phantoms whose age lives in one patch (64 px, 6 epochs; test
    MAE about 2 years): (run directory, training result). Shared by the saliency ground-truth tests and the
    tests of the commands that read a regress run."""
    from phantoms import SIZE, write_phantoms

    from cxr_age.config import DataConfig, Experiment, TrainConfig
    from cxr_age.workflows.training import train

    root = tmp_path_factory.mktemp("phantom")
    csv = write_phantoms(root / "images", 480, seed=4)
    config = Experiment(
        name="phantom",
        data=DataConfig(csv=str(csv), image_dir=str(csv.parent / "images"), image_size=SIZE),
        train=TrainConfig(task="regress", backbone="densenet121", loss="mse", epochs=6, batch_size=16,
                          learning_rate=1e-3, patience=50, bn_momentum=0.9),
    )
    run_dir = train(config, root / "run").folder
    return run_dir, json.loads((run_dir / "metrics.json").read_text())
