"""Losses and metrics of the paper's regressor: 1 - R² over the batch (round 2) and MAE in years."""

from __future__ import annotations

from cxr_age.quiet_tf import keras

ops = keras.ops
EPSILON = 1e-7


@keras.saving.register_keras_serializable(package="cxr_age")
def r2_loss(y_true, y_pred):
    """1 - R² of the batch: residual sum of squares over total sum of squares (Karargyris et al. 2019,
    round 2, "the coefficient of determination as the loss")."""
    y_true = ops.cast(ops.reshape(y_true, (-1,)), "float32")
    y_pred = ops.cast(ops.reshape(y_pred, (-1,)), "float32")
    residual = ops.sum(ops.square(y_true - y_pred))
    total = ops.sum(ops.square(y_true - ops.mean(y_true)))
    return residual / (total + EPSILON)


@keras.saving.register_keras_serializable(package="cxr_age")
class YearsMAE(keras.metrics.MeanMetricWrapper):
    """Mean absolute error in years of a model whose output is age / `age_scale`."""

    def __init__(self, age_scale: float = 90.0, name: str = "mae_years", **kwargs):
        self.age_scale = float(age_scale)
        super().__init__(fn=self._years, name=name, **kwargs)

    def _years(self, y_true, y_pred):
        y_true = ops.cast(ops.reshape(y_true, (-1,)), "float32")
        return ops.abs(y_true - ops.reshape(y_pred, (-1,))) * self.age_scale

    def get_config(self) -> dict:
        return {"age_scale": self.age_scale, "name": self.name, "dtype": self.dtype}
