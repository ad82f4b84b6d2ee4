"""The trainer with real DenseNets at small sizes: builds, losses and metrics against scikit-learn,
and resumption after an interruption (learnability: test_saliency_phantom.py)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error, r2_score, roc_auc_score

from cxr_age.config import DataConfig, ExperimentConfig, TrainConfig
from cxr_age.data.ages import GROUP_LABELS, group_index
from cxr_age.errors import CxrAgeError
from cxr_age.losses import YearsMAE, r2_loss
from cxr_age.metrics import classification_metrics, patient_bootstrap, regression_metrics
from cxr_age.models import build_model
from cxr_age.quiet_tf import keras
from cxr_age.training import class_weights, compile_model, train
from conftest import write_bar_images


@pytest.mark.parametrize("backbone, task", [("densenet121", "regress"), ("densenet169", "regress"),
                                            ("densenet201", "classify")])
def test_each_backbone_builds_and_trains_one_step(backbone, task):
    config = ExperimentConfig(train=TrainConfig(task=task, backbone=backbone,
                                                loss="mse" if task == "regress" else "crossentropy"))
    model = build_model(task, backbone, 64)
    compile_model(model, config, run_eagerly=True)
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
    low, high = patient_bootstrap(patients, lambda rows: values[rows].mean(), draws=200)
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
        assert result["per_group"][label]["auc"] == pytest.approx(roc_auc_score(frame["group"] == g, probabilities[:, g]))
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
    model = build_model("classify", "densenet121", 64, weights=str(tmp_path / "densenet121_notop.weights.h5"))
    np.testing.assert_array_equal(model.get_layer("conv1_conv").get_weights()[0],
                                  backbone.get_layer("conv1_conv").get_weights()[0])
    assert model.input_shape == (None, 64, 64, 1)
    with pytest.raises(CxrAgeError, match="weights file not found"):
        build_model("classify", "densenet121", 64, weights=str(tmp_path / "nope.h5"))


def test_offline_imagenet_names_the_file_to_fetch():
    with pytest.raises(CxrAgeError, match="densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5 and pass --weights"):
        build_model("classify", "densenet121", 64, weights="imagenet")


def _config(csv, epochs, **train):
    return ExperimentConfig(
        name="test",
        data=DataConfig(csv=str(csv), image_dir=str(csv.parent / "images"), image_size=64),
        train=TrainConfig(task="regress", backbone="densenet121", loss="mse", epochs=epochs, batch_size=16,
                          learning_rate=1e-3, patience=50, bn_momentum=0.9, **train),
    )


class StopAfterEpoch(keras.callbacks.Callback):
    """Interrupt training at the end of one epoch, as a killed process would."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_interrupted_run_resumes_to_the_same_epoch_count(tmp_path):
    config = _config(write_bar_images(tmp_path / "images", 40), epochs=3)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(KeyboardInterrupt):
        train(config, run_dir, extra_callbacks=[StopAfterEpoch(0)])
    assert (run_dir / "backup").is_dir()
    assert pd.read_csv(run_dir / "history.csv")["epoch"].tolist() == [0]
    result = train(config, run_dir)
    assert pd.read_csv(run_dir / "history.csv")["epoch"].tolist() == [0, 1, 2]
    assert not (run_dir / "backup").exists()
    for name in ("model.keras", "metrics.json", "predictions_test.csv", "loss_curves.png",
                 "predicted_vs_true_test.png", "error_by_group_test.png", "train.csv", "skipped.csv"):
        assert (run_dir / name).is_file(), name
    assert set(result["splits"]) == {"val", "test"}


def test_batch_norm_momentum_is_set_and_saved(tmp_path):
    model = build_model("regress", "densenet121", 64, bn_momentum=0.9)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.momentum == 0.9 for layer in norms)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert all(layer.momentum == 0.9 for layer in loaded.layers if isinstance(layer, keras.layers.BatchNormalization))
