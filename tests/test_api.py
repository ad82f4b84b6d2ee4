"""The public API: importing it changes nothing in the process; experiments resolve the paper's defaults in
the library; a finished run loads as one object that predicts files and arrays alike and draws saliency maps;
training leaves TensorBoard logs and an inference model without the optimizer's state."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pandas as pd
import pytest
from helpers import guarded_environment

import cxr_age
from cxr_age.io.ages import GROUP_LABELS

IMPORT_CHANGES_NOTHING = """
import json, os, sys
def state():
    fd2 = os.fstat(2)
    return {"environ": dict(os.environ), "fd2": [fd2.st_dev, fd2.st_ino, os.readlink("/proc/self/fd/2")]}
before = state()
import cxr_age
after_package = state()
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "matplotlib", "tf_keras_vis"))
import matplotlib
matplotlib.use("pdf")  # the user's choice of backend, before the library's modules are loaded
import tensorflow  # TensorFlow sets variables of its own on import; ours must add none
before_modules = state()
import pkgutil, importlib
names = [m.name for m in pkgutil.walk_packages(cxr_age.__path__, "cxr_age.")]
for name in names:
    importlib.import_module(name)
for name in cxr_age.__all__:
    getattr(cxr_age, name)
print(json.dumps({"package": before == after_package, "heavy": heavy, "modules": before_modules == state(),
                  "backend": matplotlib.get_backend(), "count": len(names)}))
"""


def test_importing_the_library_changes_nothing_in_the_process(tmp_path):
    result = subprocess.run([sys.executable, "-c", IMPORT_CHANGES_NOTHING], capture_output=True, text=True,
                            env={**guarded_environment(), "MPLBACKEND": "svg"}, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["package"] and found["heavy"] == []
    assert found["modules"], "a cxr_age module changed os.environ or file descriptor 2 on import"
    assert found["backend"] == "pdf"
    assert found["count"] > 30


def test_an_experiment_resolves_the_papers_defaults_per_task(tmp_path):
    regress = cxr_age.Experiment.load(task="regress")
    assert (regress.name, regress.train.backbone, regress.train.loss) == ("demo", "densenet169", "mse")
    classify = cxr_age.Experiment.load(task="classify", image_size=64)
    assert (classify.train.backbone, classify.train.loss, classify.data.image_size) == ("densenet201",
                                                                                        "crossentropy", 64)
    paper = cxr_age.Experiment.load(task="regress", csv="nih.csv")
    assert (paper.name, paper.data.image_size, paper.data.view) == ("regress_mse", 512, "PA")
    assert cxr_age.Experiment.load("regress_r2").train.loss == "r2"
    assert regress.with_settings(loss="r2", epochs=3).train.epochs == 3
    with pytest.raises(cxr_age.CxrAgeError, match="loss crossentropy does not fit regress"):
        regress.with_settings(loss="crossentropy")
    with pytest.raises(cxr_age.CxrAgeError, match="unknown setting.*epoch\\b"):
        regress.with_settings(epoch=3)
    with pytest.raises(cxr_age.CxrAgeError, match="config classify is for classify, not regress"):
        cxr_age.Experiment.load("classify", task="regress")
    with pytest.raises(cxr_age.CxrAgeError, match="unknown task None"):
        cxr_age.Experiment.load("demo")


@pytest.fixture(scope="module")
def regressor(phantom_run):
    return cxr_age.AgeModel.load(phantom_run[0])


def test_files_and_arrays_of_any_type_give_the_runs_own_ages(regressor, phantom_run):
    run_dir = phantom_run[0]
    evaluated = pd.read_csv(run_dir / "predictions_test.csv").iloc[:4]
    files = [run_dir.parent / "images" / name for name in evaluated["image"]]
    assert regressor.task.name == "regress" and regressor.image_size == 64
    assert regressor.metrics["splits"]["test"]["model"]["mae"]["value"] > 0
    by_file = regressor.predict(files)
    np.testing.assert_allclose(by_file["predicted_age"], evaluated["predicted_age"], atol=0.01)
    assert by_file["image"].tolist() == [str(path) for path in files]
    pixels = cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED)
    big = cv2.resize(pixels, (256, 256), interpolation=cv2.INTER_NEAREST)  # 4 x 4 blocks: area-resized back
    arrays = [pixels, pixels.astype(np.uint16) * 257, pixels / 255.0, np.dstack([pixels] * 3), big]
    ages = regressor.predict(arrays)["predicted_age"]
    np.testing.assert_allclose(ages, evaluated["predicted_age"].iloc[0], atol=0.05)


def test_bad_arrays_are_refused_with_a_reason(regressor):
    with pytest.raises(cxr_age.CxrAgeError, match="values in \\[0, 1\\]"):
        regressor.predict(np.full((32, 32), 3.0))
    with pytest.raises(cxr_age.CxrAgeError, match="uint8, uint16 or float"):
        regressor.predict(np.zeros((32, 32), np.int64))
    with pytest.raises(cxr_age.CxrAgeError, match="no images given"):
        regressor.predict([])


def test_saliency_maps_without_dummy_arguments(regressor, phantom_run, classify_run):
    files = sorted((phantom_run[0].parent / "images").glob("*.png"))[:2]
    maps = regressor.saliency(files)
    assert maps.shape == (2, 64, 64) and maps.min() >= 0 and maps.max() == pytest.approx(1)
    with pytest.raises(cxr_age.CxrAgeError, match="a regressor's maps explain its age"):
        regressor.saliency(files, group="70-80")
    classifier = cxr_age.AgeModel.load(classify_run.run_dir)
    predicted = classifier.predict(files)
    assert np.allclose(predicted[[f"p_{label}" for label in GROUP_LABELS]].sum(axis=1), 1, atol=1e-4)
    own = classifier.saliency(files, method="gradcam")
    chosen = predicted["predicted_group"].iloc[0]
    np.testing.assert_allclose(classifier.saliency(files[:1], method="gradcam", group=chosen), own[:1], atol=1e-5)
    assert classifier.saliency(files[:1], method="gradcam", group=GROUP_LABELS.index(chosen)).shape == (1, 64, 64)
    with pytest.raises(cxr_age.CxrAgeError, match="unknown age group"):
        classifier.saliency(files, group="90-100")


def test_training_writes_tensorboard_logs_and_a_lean_inference_model(phantom_run, regressor):
    run_dir = phantom_run[0]
    assert list((run_dir / "tensorboard" / "train").glob("events.out.tfevents.*"))
    assert list((run_dir / "tensorboard" / "validation").glob("events.out.tfevents.*"))
    weight_bytes = sum(int(np.prod(w.shape)) * 4 for w in regressor.network.weights)
    assert (run_dir / "model.keras").stat().st_size <= 1.2 * weight_bytes
    assert getattr(regressor.network, "optimizer", None) is None  # nothing of the optimizer was saved


def test_a_command_shows_no_tensorflow_start_up_chatter(phantom_run):
    """TF_CPP_MIN_LOG_LEVEL is left unset (guarded_environment drops it): the command quiets TensorFlow's
    import and its CUDA probe itself, and stderr holds no C++ log line."""
    image = sorted((phantom_run[0].parent / "images").glob("*.png"))[0]
    result = subprocess.run([sys.executable, "-m", "cxr_age", "predict", str(image), "--run", str(phantom_run[0]),
                             "--no-progress"], capture_output=True, text=True, env=guarded_environment(), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "years" in result.stdout
    assert not any(marker in result.stderr for marker in ("I0000", "E0000", "W0000", "cuInit", "oneDNN")), result.stderr
