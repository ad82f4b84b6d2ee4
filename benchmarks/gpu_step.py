"""Training images/s of the paper's networks on Keras's JAX backend, for a machine that has JAX but no TensorFlow
(the GPU machines lent to this project): the DenseNet169 regressor and the DenseNet201 classifier of
`cxr_age.nets.densenet`, compiled as `cxr-age-train` compiles them, at --sizes px, in float32 and under the
mixed-precision policy `--mixed-precision` picks for the chip (`mixed_bfloat16` on GPUs of compute capability
8.0 and up, else `mixed_float16`; `cxr_age.nets.precision`). Only Keras, NumPy and pandas/scikit-learn (for
`cxr_age.tasks`) are needed: no TensorFlow.

Each figure is the median images/s of --repeats timed passes of --steps steps after a warm-up, on random
in-memory images (the pipeline is not measured here); the first step's seconds (XLA compilation, or its loading
from the persistent compilation cache, `cxr_age.nets.compile_cache`) are reported apart. A training rate is
also the rate at which the input must deliver images to keep the device busy; the last column gives it as the
CPU cores it would take at a per-core decode rate (--png-per-core, default: this project's measured raw PNG
path, docs/benchmarks.md) and says whether a prepared store's rate (--store-rate) covers it.

With --peer torch, torchvision's DenseNet169/201 with one grey channel are timed the same way in the same run
(`benchmarks/torch_peer.py`, in a process of its own before ours, with JAX's preallocation of 75% of the GPU's
memory turned off so that the peer has the memory it needs), and
each of our rows is given as a ratio to the peer's at the same network, size, batch and precision (float32;
bfloat16 or float16 autocast for our mixed policies). With --train-command, instead of the step table, two
epochs of the real training command are timed (`benchmarks/train_epoch.py`: `cxr_age.train` on the embedded
sample from a prepared store) at the first --sizes and --batch-size.

    KERAS_BACKEND=jax python benchmarks/gpu_step.py [--sizes 256 512] [--batch-size 64 128 256] [--steps 20]
        [--peak-tflops 790] [--peer torch] [--cache DIR] [--json FILE]
    KERAS_BACKEND=jax python benchmarks/gpu_step.py --train-command [float32|mixed] --sizes 256 --batch-size 64
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PAPER_NETWORKS = (("regress", "densenet169", "mse"), ("classify", "densenet201", "crossentropy"))
BENCHMARKS = Path(__file__).resolve().parent
PEER_PRECISION = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


def _batch(task: str, size: int, batch_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.random((batch_size, size, size, 1), dtype=np.float32)
    if task == "regress":
        return images, rng.random((batch_size, 1), dtype=np.float32)
    return images, np.eye(9, dtype=np.float32)[rng.integers(0, 9, batch_size)]


def images_per_second(task: str, backbone: str, loss: str, shape: tuple[int, int], policy: str,
                      args: argparse.Namespace) -> tuple[float, list[float], float]:
    """Seconds to compile the training step (its first call), timed passes of `args.steps` steps, and the
    forward FLOPs per image, of one network at `shape` (image size, batch size) under a dtype policy."""
    import keras

    from cxr_age.nets.densenet import NetworkOptions, build_model
    from cxr_age.settings import TrainConfig
    from cxr_age.tasks import get_task

    size, batch_size = shape
    keras.utils.clear_session()
    model = build_model(get_task(task).head, backbone, size, options=NetworkOptions(policy=policy))
    get_task(task).compile(model, TrainConfig(task=task, backbone=backbone, loss=loss, jit_compile=True))
    x, y = _batch(task, size, batch_size, seed=size)
    start = time.perf_counter()
    model.train_on_batch(x, y)  # traces and compiles the step, or loads it from the compilation cache
    compile_seconds = time.perf_counter() - start
    model.train_on_batch(x, y)
    passes = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            model.train_on_batch(x, y)  # returns host numbers: each step is waited for
        passes.append(args.steps * batch_size / (time.perf_counter() - start))
    return compile_seconds, passes, forward_flops(model)


def forward_flops(model) -> float:
    """Multiply-adds x 2 of the convolutions and dense layers of one image's forward pass (batch
    normalisation, activations and pooling, a few percent, left out); training costs about three times it."""
    import keras

    flops = 0.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel_h, kernel_w, inputs, outputs = layer.kernel.shape
            _, height, width, _ = layer.output.shape
            flops += 2.0 * kernel_h * kernel_w * inputs * outputs * height * width
        elif isinstance(layer, keras.layers.Dense):
            flops += 2.0 * layer.kernel.shape[0] * layer.kernel.shape[1]
    return flops


def _feeds(rate: float, args: argparse.Namespace) -> str:
    cores = rate / args.png_per_core
    store = "covers it" if args.store_rate >= rate else "does NOT cover it"
    return f"{cores:.1f} cores of PNG decode; a store at {args.store_rate:,.0f}/s {store}"


def _line(row: dict, args: argparse.Namespace, float32_rate: float | None) -> str:
    ratio = f", {row['images_per_second'] / float32_rate:.2f} x float32" if float32_rate else ""
    peak = f" = {row['train_tflops'] / args.peak_tflops:.1%} of {args.peak_tflops:g}" if args.peak_tflops else ""
    return (f"{row['backbone']:<12} {row['task']:<9} {row['size']:4d} px batch {row['batch_size']:<4d} "
            f"{row['policy']:<14} compiled in {row['compile_seconds']:6.1f} s, {row['images_per_second']:9.1f} "
            f"images/s ({', '.join(f'{p:.1f}' for p in row['passes'])}{ratio}), {row['train_tflops']:.1f} TFLOP/s"
            f"{peak}; to feed it: {_feeds(row['images_per_second'], args)}")


def peer_rows(args: argparse.Namespace, policies: tuple[str, ...]) -> list[dict]:
    """torchvision's rows for the same networks, sizes, batches and precisions (`benchmarks/torch_peer.py`)."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "peer.json"
        command = [sys.executable, str(BENCHMARKS / "torch_peer.py"), "--sizes", *map(str, args.sizes),
                   "--networks", *args.networks, "--batch-size", *map(str, args.batch_size), "--precisions",
                   *(PEER_PRECISION[policy] for policy in policies), "--steps", str(args.steps), "--repeats",
                   str(args.repeats), "--json", str(out)]
        subprocess.run(command, check=True)
        return json.loads(out.read_text())["rows"]


def versus_peer(rows: list[dict], peers: list[dict], args: argparse.Namespace) -> list[str]:
    """Each of our rows over torchvision's at the same network, size, batch and precision."""
    peer = {(p["task"], p["size"], p["batch_size"], p["precision"]): p for p in peers}
    lines = []
    for row in rows:
        match = peer.get((row["task"], row["size"], row["batch_size"], PEER_PRECISION[row["policy"]]))
        if match is None:
            continue
        tflops = 3 * row["forward_gflops"] * 1e9 * match["images_per_second"] / 1e12
        share = f" ({tflops / args.peak_tflops:.1%} of the chip)" if args.peak_tflops else ""
        lines.append(f"{row['backbone']:<12} {row['size']:4d} px batch {row['batch_size']:<4d} {row['policy']:<14} "
                     f"ours {row['images_per_second']:8.1f} / torchvision {match['images_per_second']:8.1f} images/s "
                     f"= {row['images_per_second'] / match['images_per_second']:.2f}x; torchvision at "
                     f"{tflops:.1f} TFLOP/s{share}")
    return lines


def train_command(args: argparse.Namespace) -> dict:
    """Two epochs of the real training command timed (`benchmarks/train_epoch.py`), printed."""
    sys.path.insert(0, str(BENCHMARKS))
    import train_epoch

    result = train_epoch.time_training(args.networks[0], args.sizes[0], args.batch_size[0], 2,
                                       args.train_command == "mixed")
    print("\n".join(train_epoch.report(result)), flush=True)
    return result


def measure(args: argparse.Namespace, policies: tuple[str, ...]) -> list[dict]:
    """A row per network, size, batch size and policy, printed as it is measured."""
    rows = []
    for task, backbone, loss in (net for net in PAPER_NETWORKS if net[0] in args.networks):
        for shape in ((size, batch) for size in args.sizes for batch in args.batch_size):
            float32_rate = None
            for policy in policies:
                compile_seconds, passes, flops = images_per_second(task, backbone, loss, shape, policy, args)
                rate = statistics.median(passes)
                rows.append({"task": task, "backbone": backbone, "size": shape[0], "batch_size": shape[1],
                             "policy": policy, "compile_seconds": compile_seconds, "images_per_second": rate,
                             "passes": passes, "forward_gflops": flops / 1e9, "train_tflops": 3 * flops * rate / 1e12})
                print(_line(rows[-1], args, float32_rate), flush=True)
                float32_rate = float32_rate or rate
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--networks", nargs="+", default=["regress", "classify"], choices=("regress", "classify"))
    parser.add_argument("--batch-size", type=int, nargs="+", default=[64], help="one or more (default 64)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--png-per-core", type=float, default=104.0,
                        help="raw PNG path images/s per CPU core (default: 207.9/2, docs/benchmarks.md, 256 px)")
    parser.add_argument("--store-rate", type=float, default=18771.0,
                        help="prepared store images/s (default: docs/benchmarks.md, 2 cores)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--peak-tflops", type=float,
                        help="the chip's matrix rate, to report the share of it reached (e.g. 790: an H200's "
                             "measured dense bfloat16 rate)")
    parser.add_argument("--cache", type=Path,
                        help="XLA's compilation cache folder (default: the user's cache, ~/.cache/cxr-age/xla)")
    parser.add_argument("--peer", choices=("torch",),
                        help="also time torchvision's DenseNets the same way, first, and give our rates over theirs")
    parser.add_argument("--train-command", nargs="?", const="float32", choices=("float32", "mixed"),
                        help="instead: time the real training command (2 epochs of the first --networks on the "
                             "embedded sample, first --sizes and --batch-size), in float32 or the chip's mixed policy")
    args = parser.parse_args()
    if args.peer:
        # JAX would otherwise take 75% of the GPU's memory when it first looks at the device, before the peer runs.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import keras

    from cxr_age.nets.compile_cache import enable_compile_cache
    from cxr_age.nets.precision import gpu_capability, mixed_policy

    cache = enable_compile_cache(args.cache)
    mixed = mixed_policy(gpu_capability())
    devices = [str(device) for device in __import__("jax").devices()] if keras.backend.backend() == "jax" else []
    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}, devices {devices or 'default'}, "
          f"batch {args.batch_size}, {args.steps} steps x {args.repeats} passes after a warm-up; compilation cache "
          f"{cache or 'none (not JAX)'}", flush=True)
    figures = {"backend": keras.backend.backend(), "devices": devices, "cache": str(cache) if cache else None,
               "environment": {"KERAS_BACKEND": os.environ.get("KERAS_BACKEND")}}
    if args.train_command:
        figures["train_command"] = train_command(args)
    else:
        peers = peer_rows(args, ("float32", mixed)) if args.peer else []
        figures["rows"] = measure(args, ("float32", mixed))
        figures["peer_rows"] = peers
        for line in versus_peer(figures["rows"], peers, args):
            print(line, flush=True)
    figures["tensorflow_imported"] = sys.modules.get("tensorflow") is not None
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
