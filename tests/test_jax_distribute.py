"""Training on several devices and processes on Keras's JAX backend (`cxr_age.nets.jax_distribution`), with
TensorFlow kept out of the process as on a GPU machine without it: the real `cxr-age-train regress` on one CPU
device, on two forced CPU devices (`--strategy mirrored`) and in two processes joined by JAX's distributed
runtime over Gloo (`--strategy multiworker`, Keras's distribution variables), each recording its first step.

The three trainings compile DenseNet121 with XLA (about ten minutes on 2 cores together), so the module is
in the `distributed` group, out of the default run; CI runs it. It needs the `jax` extra."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import free_ports, guarded_environment, write_bar_images

from cxr_age.errors import CxrAgeError
from cxr_age.nets.jax_distribution import ADDRESSES, PROCESS_ID, PROCESSES, TIMEOUT, jax_cluster

pytestmark = pytest.mark.distributed
pytest.importorskip("jax")

WITHOUT_TENSORFLOW = """
import importlib, sys
sys.modules["tensorflow"] = None
module, *argv = sys.argv[1:]
raise SystemExit(importlib.import_module(module).main(argv))
"""
# The training command with a callback that writes the loss and two kernels after the first step (the wrapper
# only adds the callback: the command, its trainer and its distribution are the real ones).
RECORDING_TRAINER = """
import json, sys
sys.modules["tensorflow"] = None
import keras
import numpy as np
record, *argv = sys.argv[1:]

class FirstStep(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch or getattr(self, "seen", False):
            return
        self.seen = True
        conv = next(layer for layer in self.model.layers if isinstance(layer, keras.layers.Conv2D))
        kernels = [np.asarray(conv.kernel).ravel().tolist(), np.asarray(self.model.layers[-1].kernel).ravel().tolist()]
        with open(record, "w") as handle:
            json.dump({"loss": float(logs["loss"]), "kernels": kernels}, handle)

import cxr_age.workflows.training as training
original = training.train
training.train = lambda *args, **kwargs: original(*args, callbacks=[FirstStep()], **kwargs)
from cxr_age.cli.train import main
raise SystemExit(main(argv))
"""
TWO_DEVICES = "--xla_force_host_platform_device_count=2"


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> tuple[Path, list[str]]:
    """Forty bar images at 32 px prepared into a store (without TensorFlow), and the training flags."""
    root = tmp_path_factory.mktemp("jax-distribute")
    csv = write_bar_images(root / "images", 40)
    data = ["--csv", str(csv), "--image-dir", str(root / "images"), "--view", "all", "--image-size", "32"]
    prepared = subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, "cxr_age.cli.data", "prepare", *data],
                              cwd=root, env=_env(root), capture_output=True, text=True, timeout=300)
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    return root, [*data, "--backbone", "densenet121", "--epochs", "1", "--batch-size", "8"]


def _env(root: Path, cache: str = "cache", **extra: str) -> dict[str, str]:
    """XLA as users run it, without the tests' faster compile (conftest.py): the comparisons below need the
    same optimised programs on one device and on two (at LLVM's -O0 the steps differed by more than 2e-5)."""
    return {**guarded_environment(), "KERAS_BACKEND": "jax", "CXR_AGE_CACHE": str(root / cache), "XLA_FLAGS": "",
            **extra}


def _train(root: Path, name: str, flags: list[str], **extra: str) -> subprocess.Popen:
    """`cxr-age-train regress` into `root/name`, recording its first step in `root/name.json`."""
    log = open(root / f"{name}.log", "w")
    return subprocess.Popen([sys.executable, "-c", RECORDING_TRAINER, str(root / f"{name}.json"), "regress",
                             *flags, "--out", str(root / ("run-" + name.split(".")[0]))],
                            cwd=root, env=_env(root, f"cache-{name}", **extra), stdout=log, stderr=subprocess.STDOUT)


def _finished(root: Path, name: str, process: subprocess.Popen) -> tuple[str, dict]:
    code = process.wait(timeout=1500)
    log = (root / f"{name}.log").read_text()
    assert code == 0, log[-4000:]
    return log, json.loads((root / f"{name}.json").read_text())


def _val_loss(run: Path) -> float:
    return float(pd.read_csv(run / "history.csv")["val_loss"].iloc[0])


def test_two_devices_and_two_processes_take_the_one_device_step(work):
    root, flags = work
    one = _train(root, "one", [*flags, "--strategy", "default"])
    two = _train(root, "mirrored", [*flags, "--strategy", "mirrored"], XLA_FLAGS=TWO_DEVICES)
    one_log, one_step = _finished(root, "one", one)
    two_log, two_step = _finished(root, "mirrored", two)
    address = f"127.0.0.1:{free_ports(1)[0]}"
    cluster = {ADDRESSES: address, PROCESSES: "2"}
    chief = _train(root, "multi", [*flags, "--strategy", "multiworker"], **cluster, **{PROCESS_ID: "0"})
    worker = _train(root, "multi.1", [*flags, "--strategy", "multiworker"], **cluster, **{PROCESS_ID: "1"})
    chief_log, chief_step = _finished(root, "multi", chief)
    worker_log, worker_step = _finished(root, "multi.1", worker)

    assert "strategy default: 1 replica" in one_log
    assert "strategy mirrored: 2 replicas (jax cpu:0, cpu:1)" in two_log and "= 4 per replica" in two_log
    assert "strategy multiworker: 2 replicas" in chief_log and "process 0 of 2" in chief_log
    assert "this worker's share of the training is done" in worker_log
    # Adam's first step moves every weight by about the learning rate (1e-3) whatever its gradient's size, so
    # a weight whose gradient is near zero carries the rounding of the summation order into its step: the
    # weights are compared to 2% of one step (measured here: 4.6e-6 at most, the loss to 4.3e-6 relative).
    for step in (two_step, chief_step, worker_step):
        assert step["loss"] == pytest.approx(one_step["loss"], rel=2e-5)
        for kernel, reference in zip(step["kernels"], one_step["kernels"]):
            np.testing.assert_allclose(kernel, reference, rtol=0, atol=2e-5)
    assert chief_step == worker_step  # both processes hold the same replicated weights
    for run in ("run-mirrored", "run-multi"):
        assert _val_loss(root / run) == pytest.approx(_val_loss(root / "run-one"), abs=1e-4)
        assert (root / run / "metrics.json").is_file()
    written = {path.name for path in (root / "run-multi-worker1").iterdir()}  # the worker's share, no results
    assert "metrics.json" not in written and not any(name.startswith("predictions") for name in written)


@pytest.mark.parametrize("environ, fragment", [
    ({}, "needs KERAS_DISTRIBUTION_JOB_ADDRESSES, KERAS_DISTRIBUTION_NUM_PROCESSES, KERAS_DISTRIBUTION_PROCESS_ID"),
    ({ADDRESSES: "nohost", PROCESSES: "2", PROCESS_ID: "0"}, "must start with the coordinator's host:port"),
    ({ADDRESSES: "127.0.0.1:1", PROCESSES: "two", PROCESS_ID: "0"}, "must be a whole number"),
    ({ADDRESSES: "127.0.0.1:1", PROCESSES: "2", PROCESS_ID: "2"}, "is not one of the 2 processes"),
])
def test_a_malformed_cluster_is_one_line(environ, fragment):
    with pytest.raises(CxrAgeError, match=fragment):
        jax_cluster(environ)


def test_an_unreachable_coordinator_and_an_indivisible_batch_end_in_one_line(work):
    root, flags = work
    lonely = {ADDRESSES: f"127.0.0.1:{free_ports(1)[0]}", PROCESSES: "2", PROCESS_ID: "1", TIMEOUT: "3"}
    commands = [(["--strategy", "multiworker"], lonely, "cannot reach the coordinator"),
                (["--strategy", "mirrored", "--batch-size", "7"], {"XLA_FLAGS": TWO_DEVICES},
                 "does not divide among 2 replicas")]
    for extra_flags, environ, fragment in commands:
        result = subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, "cxr_age.cli.train", "regress", *flags,
                                 *extra_flags, "--out", str(root / "refused")], cwd=root,
                                env=_env(root, **environ), capture_output=True, text=True, timeout=300)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and fragment in lines[-1], result.stderr[-2000:]
        assert "Traceback" not in result.stderr
        assert not (root / "refused").exists()
