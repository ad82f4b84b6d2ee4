"""Images per second of the real `cxr-age-train regress` on Keras's JAX backend (TensorFlow kept out of the
process) on one device, on two devices (`--strategy mirrored`) and in two processes (`--strategy multiworker`),
in one call, each timed over the epochs after the first (the first pays XLA's compilation).

    python benchmarks/jax_scaling.py [--images 96] [--image-size 32] [--epochs 3] [--batch-size 16]

On a CPU machine the two devices are `XLA_FLAGS=--xla_force_host_platform_device_count=2` on the same cores
and the two processes share them too, so the figures check that the paths run, not that they speed anything
up; on a machine with several GPUs each device is a GPU and the same call gives the real scaling.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
# The training command with a callback that appends each epoch's wall time to a JSON file.
TIMED_TRAINER = """
import json, sys, time
sys.modules["tensorflow"] = None
import keras
times, *argv = sys.argv[1:]

class EpochTimes(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        found = json.load(open(times)) if epoch else []
        json.dump(found + [time.perf_counter() - self.start], open(times, "w"))

import cxr_age.workflows.training as training
original = training.train
training.train = lambda *args, **kwargs: original(*args, callbacks=[EpochTimes()], **kwargs)
from cxr_age.cli.train import main
raise SystemExit(main(argv))
"""
PREPARE = "import sys; sys.modules['tensorflow'] = None; from cxr_age.cli.data import main; main(sys.argv[1:])"


def _port() -> int:
    with socket.socket() as handle:
        handle.bind(("127.0.0.1", 0))
        return handle.getsockname()[1]


def _start(root: Path, name: str, flags: list[str], **extra: str) -> subprocess.Popen:
    env = {**os.environ, "KERAS_BACKEND": "jax", "CXR_AGE_CACHE": str(root / f"cache-{name}"), **extra}
    return subprocess.Popen([sys.executable, "-c", TIMED_TRAINER, str(root / f"{name}.json"), "regress", *flags,
                             "--out", str(root / f"run-{name}")], cwd=root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _rate(root: Path, name: str, images: int) -> float:
    later = json.loads((root / f"{name}.json").read_text())[1:]
    return images * len(later) / sum(later)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    sys.path.insert(0, str(TESTS))
    from helpers import write_bar_images

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        csv = write_bar_images(root / "images", args.images, size=args.image_size)
        data = ["--csv", str(csv), "--image-dir", str(root / "images"), "--view", "all", "--image-size",
                str(args.image_size)]
        subprocess.run([sys.executable, "-c", PREPARE, "prepare", *data], cwd=root, check=True,
                       capture_output=True, env={**os.environ, "KERAS_BACKEND": "jax"})
        flags = [*data, "--backbone", "densenet121", "--epochs", str(args.epochs), "--batch-size",
                 str(args.batch_size)]
        for name, strategy, extra in (("one", "default", {}), ("two-devices", "mirrored",
                                      {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})):
            if _start(root, name, [*flags, "--strategy", strategy], **extra).wait() != 0:
                raise SystemExit(f"the {name} run failed")
        cluster = {"KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{_port()}", "KERAS_DISTRIBUTION_NUM_PROCESSES": "2"}
        pair = [_start(root, f"two-processes{'.1' * i}", [*flags, "--strategy", "multiworker"], **cluster,
                       KERAS_DISTRIBUTION_PROCESS_ID=str(i)) for i in range(2)]
        if any(process.wait() != 0 for process in pair):
            raise SystemExit("the two-process run failed")
        train_images = len((root / "run-one" / "train.csv").read_text().strip().splitlines()) - 1
        one = _rate(root, "one", train_images)
        for name in ("one", "two-devices", "two-processes"):
            rate = _rate(root, name, train_images)
            print(f"{name}: {rate:.1f} training images/s after the first epoch ({rate / one:.2f} x one device)")


if __name__ == "__main__":
    main()
