"""The real training command on Keras's JAX backend with no TensorFlow in the process (issue 27): the store is
prepared there too (by the OpenCV decoder), training and evaluation read it through NumPy batches
(`cxr_age.io.store_batches`), the compiled steps go to XLA's persistent cache, and TensorFlow's Keras loads
the model and predicts the same ages; what needs TensorFlow says so in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import assert_one_line_error, call_cli, guarded_environment, write_bar_images

from cxr_age.cli import data
from cxr_age.io.store import PreparedStore

pytestmark = pytest.mark.jax

WITHOUT_TENSORFLOW = """
import importlib, json, sys
sys.modules["tensorflow"] = None  # as on a machine that has no TensorFlow: `import tensorflow` fails
module, *argv = sys.argv[1:]
code = importlib.import_module(module).main(argv)
loaded = sorted({name.split(".")[0] for name, found in sys.modules.items() if found is not None})
print(json.dumps({"tensorflow_imported": "tensorflow" in loaded or "tf_keras_vis" in loaded}))
raise SystemExit(code)
"""
SCRIPT_WITHOUT_TENSORFLOW = """
import runpy, sys
sys.modules["tensorflow"] = None
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
SIZE = "32"
ROOT = Path(__file__).resolve().parent.parent


def _without_tensorflow(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**guarded_environment(), "KERAS_BACKEND": "jax", "CXR_AGE_CACHE": str(cwd / "cache")}
    return subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture
def bars(tmp_path, monkeypatch):
    """Forty bar images, a table of them, and the working folder where `prepared/` is looked for."""
    pytest.importorskip("jax")
    monkeypatch.chdir(tmp_path)
    csv = write_bar_images(tmp_path / "images", 40)
    return ["--csv", str(csv), "--image-dir", str(tmp_path / "images"), "--view", "all", "--image-size", SIZE]


def test_the_training_command_trains_and_evaluates_on_jax_without_tensorflow(bars, tmp_path, capsys):
    prepared = _without_tensorflow("cxr_age.cli.data", "prepare", *bars, cwd=tmp_path)
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    assert json.loads(prepared.stdout.splitlines()[-1]) == {"tensorflow_imported": False}
    with_tensorflow = call_cli(data.main, "prepare", *bars, "--out", "tf-store", capsys=capsys)
    assert with_tensorflow.returncode == 0, with_tensorflow.stderr
    (store,) = [PreparedStore(folder) for folder in (tmp_path / "prepared").iterdir()]
    tf_store = PreparedStore(tmp_path / "tf-store")
    rows = np.arange(40)
    # The two decoders agree to float rounding; quantised to uint8, a shrunk pixel that lies halfway between two
    # grey levels may round either way (4% of them here, at 64 -> 32 px).
    differences = store.read(rows).astype(int) - tf_store.read(rows).astype(int)
    assert np.abs(differences).max() <= 1 and (differences != 0).mean() < 0.1

    trained = _without_tensorflow("cxr_age.cli.train", "regress", *bars, "--backbone", "densenet121",
                                  "--epochs", "2", "--batch-size", "8", "--out", "jax-run", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    print(trained.stdout)
    assert json.loads(trained.stdout.splitlines()[-1]) == {"tensorflow_imported": False}
    assert "reading prepared images from prepared/" in trained.stdout and "jax cpu" in trained.stdout
    run = tmp_path / "jax-run"
    assert len(pd.read_csv(run / "history.csv")) == 2 and not (run / "tensorboard").exists()
    metrics = json.loads((run / "metrics.json").read_text())["splits"]["test"]
    assert metrics["model"]["mae"]["value"] > 0 and metrics["baseline"]["mae"] > 0
    assert any((tmp_path / "cache" / "xla").iterdir())  # the compiled steps, for the next run
    image = str(tmp_path / "images" / "bar0001.png")
    predicted = _without_tensorflow("cxr_age.cli.predict", image, "--run", "jax-run", cwd=tmp_path)
    assert_one_line_error(predicted, "this command needs TensorFlow, which this Python cannot import")

    import cxr_age  # TensorFlow's Keras reads the JAX-trained model and predicts what JAX predicted

    on_jax = pd.read_csv(run / "predictions_test.csv")
    on_tensorflow = cxr_age.AgeModel.load(run).predict([str(tmp_path / "images" / name) for name in on_jax["image"]])
    np.testing.assert_allclose(on_tensorflow["predicted_age"], on_jax["predicted_age"], atol=0.01)


def test_what_needs_tensorflow_says_so_in_one_line_without_it(bars, tmp_path):
    unprepared = _without_tensorflow("cxr_age.cli.train", "regress", *bars, "--out", "never", cwd=tmp_path)
    assert_one_line_error(unprepared, "without TensorFlow (jax backend) images are read from a prepared store",
                          "40 images at 32 px", "cxr-age-data prepare")
    assert not (tmp_path / "never").exists()
    augmented = _without_tensorflow("cxr_age.cli.train", "regress", *bars, "--augment", "--out", "never", cwd=tmp_path)
    assert_one_line_error(augmented, "--augment runs in the tf.data pipeline")
    assert not (tmp_path / "never").exists()
    mirrored = _without_tensorflow("cxr_age.cli.train", "regress", *bars, "--strategy", "mirrored", "--out", "never",
                                   cwd=tmp_path)  # keras.distribution on JAX: a prepared store as well
    assert_one_line_error(mirrored, "read from a prepared store only (as on several JAX devices)", "40 images at 32 px")
    assert not (tmp_path / "never").exists()
    saliency = _without_tensorflow("cxr_age.cli.saliency", "--run", "any", cwd=tmp_path)
    assert_one_line_error(saliency, "saliency maps (tf-keras-vis) needs TensorFlow")


def test_the_training_benchmark_times_each_epoch_of_the_real_command_without_tensorflow(tmp_path):
    """`benchmarks/train_epoch.py` (what `gpu_step.py --train-command` runs on the GPU machine): the embedded
    sample prepared and trained on for two epochs, each timed."""
    pytest.importorskip("jax")
    command = [sys.executable, "-c", SCRIPT_WITHOUT_TENSORFLOW, str(ROOT / "benchmarks" / "train_epoch.py"),
               "--backbone", "densenet121", "--image-size", SIZE, "--batch-size", "64", "--cache",
               str(tmp_path / "cache"), "--json", str(tmp_path / "timed.json")]
    result = subprocess.run(command, env={**guarded_environment(), "KERAS_BACKEND": "jax"}, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    print(result.stdout[-2000:])
    timed = json.loads((tmp_path / "timed.json").read_text())
    assert (timed["backend"], timed["tensorflow_imported"], timed["stored_images"]) == ("jax", False, 477)
    assert len(timed["epochs"]) == 2 and timed["images_per_second"] > 0 and timed["train_images"] > 300
    assert "epoch 2:" in result.stdout and "training images/s" in result.stdout
