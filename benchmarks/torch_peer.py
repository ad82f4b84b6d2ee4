"""The peer of `benchmarks/gpu_step.py`: torchvision's DenseNet169 regressor and DenseNet201 classifier with one
grey input channel, trained step by step the way gpu_step trains ours (the same random NumPy batch copied in
and the loss read back each step, Adam at 1e-3, after one warm-up step), in float32 (cuDNN may use TF32) and
under autocast bfloat16 or float16 (with a gradient scaler). PyTorch runs eagerly here; the first step's
seconds (cuDNN's algorithm search) are reported apart, as ours are.

gpu_step.py --peer torch runs this in a process of its own before its own rows, so the two frameworks never
share the GPU's memory. Alone:

    python benchmarks/torch_peer.py --sizes 256 --batch-size 64 128 --precisions float32 bfloat16 --json F
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torchvision

BACKBONES = {"regress": "densenet169", "classify": "densenet201"}
OUTPUTS = {"regress": 1, "classify": 9}
AUTOCAST = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def peer_network(task: str) -> torch.nn.Module:
    """torchvision's DenseNet of the paper's network for `task`, its stem taking one grey channel."""
    network = getattr(torchvision.models, BACKBONES[task])(weights=None, num_classes=OUTPUTS[task])
    network.features.conv0 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return network


def _batch(task: str, size: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(size)
    images = rng.random((batch_size, 1, size, size), dtype=np.float32)
    if task == "regress":
        return images, rng.random((batch_size, 1), dtype=np.float32)
    return images, rng.integers(0, 9, batch_size)


def images_per_second(task: str, size: int, batch_size: int, precision: str, steps: int,
                      repeats: int) -> tuple[float, list[float]]:
    """Seconds of the first step, and images/s of `repeats` passes of `steps` steps."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = True
    network = peer_network(task).to(device).train()
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device, enabled=precision == "float16")
    x, y = _batch(task, size, batch_size)

    def step() -> float:
        images, targets = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        with torch.autocast(device, dtype=AUTOCAST[precision], enabled=AUTOCAST[precision] is not None):
            outputs = network(images)
            if task == "regress":
                loss = torch.nn.functional.mse_loss(torch.sigmoid(outputs.float()), targets)
            else:
                loss = torch.nn.functional.cross_entropy(outputs.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.item()  # read back, as Keras's train_on_batch returns numbers

    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    step()
    passes = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        passes.append(steps * batch_size / (time.perf_counter() - start))
    return first, passes


def measure(args: argparse.Namespace) -> list[dict]:
    """A row per network, size, batch size and precision, printed as it is measured."""
    rows = []
    for task in args.networks:
        for size in args.sizes:
            for batch_size in args.batch_size:
                for precision in args.precisions:
                    first, passes = images_per_second(task, size, batch_size, precision, args.steps, args.repeats)
                    rows.append({"task": task, "backbone": BACKBONES[task], "size": size, "batch_size": batch_size,
                                 "precision": precision, "first_step_seconds": first, "passes": passes,
                                 "images_per_second": statistics.median(passes)})
                    print(f"torchvision {BACKBONES[task]:<12} {size:4d} px batch {batch_size:<4d} {precision:<9} "
                          f"first step {first:5.1f} s, {rows[-1]['images_per_second']:9.1f} images/s "
                          f"({', '.join(f'{p:.1f}' for p in passes)})", flush=True)
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256])
    parser.add_argument("--networks", nargs="+", default=["regress"], choices=tuple(BACKBONES))
    parser.add_argument("--batch-size", type=int, nargs="+", default=[64])
    parser.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"], choices=tuple(AUTOCAST))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(f"PyTorch {torch.__version__}, torchvision {torchvision.__version__}, {device}", flush=True)
    rows = measure(args)
    if args.json:
        args.json.write_text(json.dumps({"torch": torch.__version__, "device": device, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
