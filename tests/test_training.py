"""The trainer with real DenseNets at small sizes: builds, losses and metrics against scikit-learn,
resumption after a real process is killed, and run folders that two processes never share (learnability:
test_saliency_phantom.py)."""

import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pandas as pd
import pytest
from helpers import kill_after_first_epoch, run_cli, small_classifier, write_bar_images
from sklearn.metrics import mean_absolute_error, r2_score, roc_auc_score

from cxr_age.config import Experiment, TrainConfig, to_toml
from cxr_age.errors import CxrAgeError
from cxr_age.io.ages import GROUP_LABELS, group_index
from cxr_age.io.files import folder_lock, new_folder, write_atomic
from cxr_age.nets.densenet import NetworkOptions, build_model
from cxr_age.nets.losses import YearsMAE, r2_loss
from cxr_age.nets.precision import gpu_capability, mixed_policy
from cxr_age.stats.bootstrap import weighted_bootstrap, weighted_mean
from cxr_age.stats.metrics import classification_metrics, regression_metrics
from cxr_age.tasks import CLASSIFY, REGRESS, get_task
from cxr_age.workflows.training import BestModelCheckpoint, class_weights, with_precision_policy


# DenseNet121 builds and trains in the default run; the paper's two, which only repeat that path with more
# layers (13 s on 2 cores), in the `long` group that CI runs.
@pytest.mark.parametrize("backbone, task", [("densenet121", "regress"),
                                            pytest.param("densenet169", "regress", marks=pytest.mark.long),
                                            pytest.param("densenet201", "classify", marks=pytest.mark.long)])
def test_each_backbone_builds_and_trains_one_step(backbone, task):
    config = Experiment(train=TrainConfig(task=task, backbone=backbone,
                                          loss="mse" if task == "regress" else "crossentropy"))
    model = build_model(get_task(task).head, backbone, 64)
    config.task.compile(model, config.train, run_eagerly=True)
    x = np.random.default_rng(0).random((2, 64, 64, 1), dtype=np.float32)
    y = np.array([[0.3], [0.7]], np.float32) if task == "regress" else np.eye(9, dtype=np.float32)[[2, 6]]
    before = model.get_layer("conv1_conv").get_weights()[0].copy()
    model.train_on_batch(x, y)
    assert model.output_shape == ((None, 1) if task == "regress" else (None, 9))
    assert not np.allclose(before, model.get_layer("conv1_conv").get_weights()[0])
    assert model.layers[-1].activation.__name__ == ("sigmoid" if task == "regress" else "softmax")


def test_r2_loss_is_one_minus_sklearn_r2():
    rng = np.random.default_rng(1)
    for _ in range(5):
        y, p = rng.random(16).astype(np.float32), rng.random(16).astype(np.float32)
        assert float(r2_loss(y[:, None], p[:, None])) == pytest.approx(1 - r2_score(y, p), rel=1e-4)


def test_years_mae_metric():
    y, p = np.array([[0.5], [0.2]], np.float32), np.array([[0.4], [0.4]], np.float32)
    metric = YearsMAE(90.0)
    metric.update_state(y, p)
    assert float(metric.result()) == pytest.approx(mean_absolute_error(y * 90, p * 90), rel=1e-5)


def _predictions(n=120, seed=0):
    rng = np.random.default_rng(seed)
    age = rng.uniform(1, 90, n)
    return pd.DataFrame({"age": age, "predicted_age": age + rng.normal(0, 6, n),
                         "patient_id": [str(i // 2) for i in range(n)], "group": group_index(age)})


def test_regression_metrics_agree_with_sklearn():
    frame = _predictions()
    result = regression_metrics(frame, train_median=49.0, draws=200)
    model = result["model"]
    assert model["mae"]["value"] == pytest.approx(mean_absolute_error(frame["age"], frame["predicted_age"]))
    assert model["r2"]["value"] == pytest.approx(r2_score(frame["age"], frame["predicted_age"]))
    assert model["pearson_r"]["value"] == pytest.approx(np.corrcoef(frame["age"], frame["predicted_age"])[0, 1])
    for value in model.values():
        assert value["ci95"][0] <= value["value"] <= value["ci95"][1]
    assert result["baseline"]["mae"] == pytest.approx(np.abs(frame["age"] - 49.0).mean())
    assert result["patients"] == 60


def test_bootstrap_resamples_whole_patients():
    patients = np.array(["a"] * 50 + ["b"] * 50)
    values = np.array([0.0] * 50 + [1.0] * 50)
    low, high = weighted_bootstrap(patients, weighted_mean(values), draws=200)
    assert (low, high) == (0.0, 1.0)  # two patients: each draw has 0, 1 or 2 copies of b, nothing between


def test_classification_metrics_agree_with_sklearn():
    frame = _predictions(180)
    rng = np.random.default_rng(2)
    logits = np.eye(9)[frame["group"]] * 2 + rng.normal(0, 1, (len(frame), 9))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    for g, label in enumerate(GROUP_LABELS):
        frame[f"p_{label}"] = probabilities[:, g]
    result = classification_metrics(frame, train_majority=5, draws=100)
    for g, label in enumerate(GROUP_LABELS):
        expected = roc_auc_score(frame["group"] == g, probabilities[:, g])
        assert result["per_group"][label]["auc"] == pytest.approx(expected)
    assert result["model"]["accuracy"]["value"] == pytest.approx((probabilities.argmax(1) == frame["group"]).mean())
    assert result["baseline"]["accuracy"] == pytest.approx((frame["group"] == 5).mean())
    assert result["baseline"]["macro_auc"] == 0.5


def test_class_weights_average_one():
    weights = class_weights(np.array([0, 0, 0, 1, 5]))
    assert weights[0] == pytest.approx(5 / 9) and weights[1] == pytest.approx(5 / 3)
    assert weights[8] == 1.0
    assert np.mean([weights[g] for g in (0, 0, 0, 1, 5)]) == pytest.approx(1.0)


def test_pretrained_weights_from_a_local_file(tmp_path):
    backbone = keras.applications.DenseNet121(include_top=False, weights=None, input_shape=(64, 64, 3), pooling="avg")
    backbone.save_weights(tmp_path / "densenet121_notop.weights.h5")
    model = build_model(CLASSIFY.head, "densenet121", 64, weights=str(tmp_path / "densenet121_notop.weights.h5"))
    np.testing.assert_array_equal(model.get_layer("conv1_conv").get_weights()[0],
                                  backbone.get_layer("conv1_conv").get_weights()[0])
    assert model.input_shape == (None, 64, 64, 1)
    with pytest.raises(CxrAgeError, match="weights file not found"):
        build_model(CLASSIFY.head, "densenet121", 64, weights=str(tmp_path / "nope.h5"))


def test_offline_imagenet_names_the_file_to_fetch():
    fetch = "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5 and pass it as `weights`"
    with pytest.raises(CxrAgeError, match=fetch):
        build_model(CLASSIFY.head, "densenet121", 64, weights="imagenet")


@pytest.mark.long
def test_a_killed_run_resumes_to_the_same_epoch_count(tmp_path):
    """A small classifier run is SIGKILLed once its first epoch was logged, then the same command is run
    again."""
    csv = write_bar_images(tmp_path / "images", 40)
    run_dir = tmp_path / "run"
    args = small_classifier(csv, run_dir)
    status, epochs = kill_after_first_epoch(args, run_dir / "history.csv")
    assert status == -signal.SIGKILL
    assert epochs == [0]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resuming {run_dir}" in result.stdout
    assert pd.read_csv(run_dir / "history.csv")["epoch"].tolist() == [0, 1]
    assert not (run_dir / "backup").exists()
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".model.keras")]  # no half-written model
    for name in ("model.keras", "metrics.json", "predictions_val.csv", "predictions_test.csv", "loss_curves.png",
                 "roc_test.png", "train.csv", "skipped.csv"):
        assert (run_dir / name).is_file(), name


def test_a_resumed_run_keeps_the_best_model_of_all_epochs(tmp_path):
    history, model_file = tmp_path / "history.csv", tmp_path / "model.keras"
    pd.DataFrame({"epoch": [0, 1], "loss": [0.2, 0.1], "val_loss": [0.05, 0.03]}).to_csv(history, index=False)
    model_file.write_bytes(b"the best model so far")
    checkpoint = BestModelCheckpoint(model_file, history)
    checkpoint.set_model(build_model(REGRESS.head, "densenet121", 32))
    checkpoint.on_train_begin()
    checkpoint.on_epoch_end(2, {"val_loss": 0.04})
    assert model_file.read_bytes() == b"the best model so far"
    checkpoint.on_epoch_end(3, {"val_loss": 0.02})
    assert keras.saving.load_model(model_file).name == "densenet121_regress"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.csv", "model.keras"]


def test_two_processes_never_train_into_one_folder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", LOCK_AND_WAIT, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(CxrAgeError, match="in use by another running process"):
            with folder_lock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with folder_lock(tmp_path):  # released by the kernel when its holder was killed
        pass


LOCK_AND_WAIT = """
import sys, time
from pathlib import Path
from cxr_age.io.files import folder_lock
with folder_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_same_out_folder_claimed_by_exactly_one(tmp_path):
    out = tmp_path / "run"
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda _: _try_claim(out), range(8)))
    assert outcomes.count("claimed") == 1 and outcomes.count("refused") == 7


def test_a_write_that_fails_halfway_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text('{"old": true}')

    def half_then_crash(temporary):
        temporary.write_text('{"new": tr')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, half_then_crash)
    assert target.read_text() == '{"old": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def _try_claim(out):
    try:
        new_folder(str(out), "test", out.parent)
        return "claimed"
    except CxrAgeError:
        return "refused"


def _tiny_batch():
    rng = np.random.default_rng(0)
    return rng.random((4, 32, 32, 1)).astype("float32"), np.full((4, 1), 0.5, "float32")


@pytest.mark.parametrize("policy, half, scaled", [("mixed_float16", "float16", True),
                                                   ("mixed_bfloat16", "bfloat16", False)])
def test_mixed_precision_computes_in_half_precision_with_a_float32_output(policy, half, scaled):
    """float16 with Keras's loss scaling; bfloat16 (float32's exponent range) without."""
    model = build_model(REGRESS.head, "densenet121", 32, options=NetworkOptions(policy=policy))
    conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    assert (conv.compute_dtype, conv.variable_dtype) == (half, "float32")
    assert model.get_layer("age").compute_dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored after building
    config = Experiment(train=TrainConfig(task="regress", backbone="densenet121", loss="mse",
                                          mixed_precision=True, precision_policy=policy))
    config.task.compile(model, config.train, run_eagerly=True)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) is scaled
    loss = model.train_on_batch(*_tiny_batch())[0]
    assert np.isfinite(loss)
    assert model.predict(_tiny_batch()[0], verbose=0).dtype == np.float32


@pytest.mark.parametrize("capability, policy", [(None, "mixed_float16"), ((7, 5), "mixed_float16"),
                                                ((8, 0), "mixed_bfloat16"), ((9, 0), "mixed_bfloat16")])
def test_the_mixed_policy_fits_the_chip(capability, policy):
    assert mixed_policy(capability) == policy


def test_this_machine_without_a_gpu_gets_float16_recorded_in_the_config():
    """The policy is chosen by probing the backend's devices (none here), recorded where the run's config
    will show it, and a policy the config names is kept."""
    experiment = Experiment(train=TrainConfig(task="regress", mixed_precision=True))
    assert gpu_capability() is None
    chosen = with_precision_policy(experiment)
    assert chosen.train.precision_policy == "mixed_float16"
    assert 'precision_policy = "mixed_float16"' in to_toml(chosen)
    named = Experiment(train=TrainConfig(task="regress", mixed_precision=True, precision_policy="mixed_bfloat16"))
    assert with_precision_policy(named).train.precision_policy == "mixed_bfloat16"
    assert with_precision_policy(Experiment(train=TrainConfig(task="regress"))).train.precision_policy is None
    with pytest.raises(CxrAgeError, match="unknown precision policy"):
        build_model(REGRESS.head, "densenet121", 32, options=NetworkOptions(policy="float8"))


@pytest.mark.long
def test_a_mixed_precision_run_records_its_policy(tmp_path):
    """`cxr-age-train --mixed-precision` on this CPU: trained under mixed_float16, said in the run's config."""
    csv = write_bar_images(tmp_path / "images", 24, size=32)
    run_dir = tmp_path / "run"
    result = run_cli("train", "regress", "--csv", str(csv), "--view", "all", "--backbone", "densenet121",
                     "--image-size", "32", "--epochs", "1", "--batch-size", "8", "--mixed-precision",
                     "--out", str(run_dir))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "mixed precision: mixed_float16" in result.stdout
    assert 'precision_policy = "mixed_float16"' in (run_dir / "config.toml").read_text()
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    assert (conv.compute_dtype, model.get_layer("age").compute_dtype) == ("float16", "float32")


@pytest.mark.parametrize("flag, expected", [(None, "auto"), (True, True), (False, False)])
def test_jit_compile_flag_reaches_keras(flag, expected):
    model = build_model(REGRESS.head, "densenet121", 32)
    REGRESS.compile(model, TrainConfig(task="regress", backbone="densenet121", loss="mse", jit_compile=flag))
    assert model.jit_compile is (expected if expected != "auto" else False)  # auto: no XLA on a CPU-only machine


@pytest.mark.xla
def test_an_xla_training_step_runs_on_the_cpu():
    """Compiles DenseNet121's training step with XLA (about 80 s on 2 cores): run with `pytest -m xla`."""
    model = build_model(REGRESS.head, "densenet121", 32)
    REGRESS.compile(model, TrainConfig(task="regress", backbone="densenet121", loss="mse", jit_compile=True))
    assert np.isfinite(model.train_on_batch(*_tiny_batch())[0])


def test_batch_norm_momentum_is_set_and_saved(tmp_path):
    model = build_model(REGRESS.head, "densenet121", 64, options=NetworkOptions(bn_momentum=0.9))
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.momentum == 0.9 for layer in norms)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert all(layer.momentum == 0.9 for layer in loaded.layers if isinstance(layer, keras.layers.BatchNormalization))
