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

    KERAS_BACKEND=jax python benchmarks/gpu_step.py [--sizes 256 512] [--batch-size 64 128 256] [--steps 20]
        [--peak-tflops 790] [--cache DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PAPER_NETWORKS = (("regress", "densenet169", "mse"), ("classify", "densenet201", "crossentropy"))


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
    args = parser.parse_args()
    import keras

    from cxr_age.nets.compile_cache import enable_compile_cache
    from cxr_age.nets.precision import gpu_capability, mixed_policy

    cache = enable_compile_cache(args.cache)
    mixed = mixed_policy(gpu_capability())
    devices = [str(device) for device in __import__("jax").devices()] if keras.backend.backend() == "jax" else []
    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}, devices {devices or 'default'}, "
          f"batch {args.batch_size}, {args.steps} steps x {args.repeats} passes after a warm-up; compilation cache "
          f"{cache or 'none (not JAX)'}", flush=True)
    rows = measure(args, ("float32", mixed))
    if args.json:
        args.json.write_text(json.dumps({"backend": keras.backend.backend(), "devices": devices,
                                         "tensorflow_imported": "tensorflow" in sys.modules,
                                         "cache": str(cache) if cache else None,
                                         "environment": {"KERAS_BACKEND": os.environ.get("KERAS_BACKEND")},
                                         "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
