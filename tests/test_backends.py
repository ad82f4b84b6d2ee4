"""The networks and losses are backend-neutral Keras (issue 17): they build, run and give the same loss
values on a backend other than TensorFlow without importing TensorFlow, and `benchmarks/gpu_step.py` trains
the paper's networks on the JAX backend (the only framework the lent GPU machines have)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cxr_age.nets.losses import YearsMAE, r2_loss

ROOT = Path(__file__).resolve().parent.parent
Y_TRUE = [[0.2], [0.5], [0.9], [0.4]]
Y_PRED = [[0.3], [0.5], [0.7], [0.6]]

ON_NUMPY_BACKEND = f"""
import json, sys
import numpy as np
from cxr_age.nets.losses import YearsMAE, r2_loss
from cxr_age.nets.densenet import build_model
from cxr_age.tasks import get_task
shapes = {{}}
for task, backbone in (("regress", "densenet169"), ("classify", "densenet201")):
    model = build_model(get_task(task).head, backbone, 32)
    shapes[task] = list(np.asarray(model(np.zeros((2, 32, 32, 1), "float32"))).shape)
mae = YearsMAE(90.0)
mae.update_state(np.array({Y_TRUE}, "float32"), np.array({Y_PRED}, "float32"))
print(json.dumps({{"r2_loss": float(r2_loss(np.array({Y_TRUE}, "float32"), np.array({Y_PRED}, "float32"))),
                  "mae_years": float(mae.result()), "shapes": shapes,
                  "tensorflow_imported": any(name.split(".")[0] == "tensorflow" for name in sys.modules)}}))
"""


def _backend_env(backend: str) -> dict[str, str]:
    return {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)}


@pytest.mark.jax  # Keras's NumPy backend imports JAX (for its FFT), so this needs the jax extra too
def test_networks_and_losses_run_without_tensorflow_and_agree_with_it():
    pytest.importorskip("jax")
    result = subprocess.run([sys.executable, "-c", ON_NUMPY_BACKEND], env=_backend_env("numpy"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    other = json.loads(result.stdout.splitlines()[-1])
    assert other["tensorflow_imported"] is False
    assert other["shapes"] == {"regress": [2, 1], "classify": [2, 9]}
    y_true, y_pred = np.array(Y_TRUE, "float32"), np.array(Y_PRED, "float32")
    mae = YearsMAE(90.0)
    mae.update_state(y_true, y_pred)
    assert other["r2_loss"] == pytest.approx(float(r2_loss(y_true, y_pred)), rel=1e-6)
    assert other["mae_years"] == pytest.approx(float(mae.result()), rel=1e-6)
    assert other["mae_years"] == pytest.approx(90.0 * 0.125, rel=1e-6)


def _large_cache_entries(folder: Path) -> dict[str, int]:
    """XLA's cached programs over 1 MiB (a DenseNet's steps: 4.9 and 6.1 MB here; a small helper near the
    cache's one-second threshold could be stored by one run and not another), by name, with their sizes."""
    sizes = {path.name: path.stat().st_size for path in folder.iterdir()}
    return {name: size for name, size in sizes.items() if size > 2**20}


@pytest.mark.jax
def test_gpu_step_benchmark_trains_the_paper_regressor_on_jax(tmp_path):
    """The paper's regressor (DenseNet169) in float32 and the mixed policy this machine's chip gets (float16:
    no GPU), on the JAX backend without TensorFlow; run again, its steps come from XLA's persistent cache. The
    classifier (DenseNet201, softmax) is built without TensorFlow by the test above and trained on JAX by the
    GPU check (here its two compiles would cost over four minutes more)."""
    pytest.importorskip("jax")
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu_step.py"), "--sizes", "32", "--batch-size", "2",
               "--steps", "1", "--repeats", "1", "--cache", str(tmp_path / "xla"), "--networks", "regress"]

    def figures(name: str, *more: str) -> dict:
        result = subprocess.run([*command, "--json", str(tmp_path / name), *more], env=_backend_env("jax"),
                                capture_output=True, text=True, timeout=1500)
        assert result.returncode == 0, result.stderr[-2000:]
        return json.loads((tmp_path / name).read_text())

    first = figures("first.json")
    assert first["backend"] == "jax" and first["tensorflow_imported"] is False
    assert [(row["backbone"], row["policy"]) for row in first["rows"]] == [
        ("densenet169", "float32"), ("densenet169", "mixed_float16")]
    assert all(row["images_per_second"] > 0 for row in first["rows"])
    compiled = _large_cache_entries(tmp_path / "xla")
    assert len(compiled) >= 2  # at least a training step per policy
    again = figures("again.json")
    assert _large_cache_entries(tmp_path / "xla") == compiled  # every step found in the cache, none compiled again
    for before, after in zip(first["rows"], again["rows"], strict=True):
        print(f"{before['policy']}: compiled in {before['compile_seconds']:.1f} s, "
              f"from the cache in {after['compile_seconds']:.1f} s (tracing included)")
        assert after["compile_seconds"] < before["compile_seconds"]


def test_gpu_step_counts_the_forward_flops_of_convolutions_and_dense_layers():
    """The FLOPs behind the benchmark's TFLOP/s: a hand-counted network, and the paper's regressor at 256 px
    (8.6 GFLOP with one grey channel, the figure issue 27 quotes)."""
    import importlib.util

    import keras

    from cxr_age.nets.densenet import build_model
    from cxr_age.tasks import REGRESS

    spec = importlib.util.spec_from_file_location("gpu_step", ROOT / "benchmarks" / "gpu_step.py")
    gpu_step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_step)
    inputs = keras.Input((8, 8, 2))
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, padding="same")(inputs))
    small = keras.Model(inputs, keras.layers.Dense(1)(features))
    assert gpu_step.forward_flops(small) == 2 * 3 * 3 * 2 * 4 * 8 * 8 + 2 * 4 * 1
    assert gpu_step.forward_flops(build_model(REGRESS.head, "densenet169", 256)) / 1e9 == pytest.approx(8.57, abs=0.01)
