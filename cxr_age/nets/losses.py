"""Losses and metrics of the paper's regressor: 1 - R² over the batch (round 2) and MAE in years. Written in
`keras.ops` alone, so that the same loss runs on the JAX backend (`benchmarks/gpu_step.py`)."""

from __future__ import annotations

import keras

ops = keras.ops
EPSILON = 1e-7


def _sum_over_replicas(value):
    """`value` summed over the replicas of the running `tf.distribute` strategy (itself on one device). Other
    Keras backends run one replica per process here, so there the sum is the value."""
    if keras.backend.backend() != "tensorflow":
        return value
    from cxr_age.nets.distribute import sum_over_replicas

    return sum_over_replicas(value)


@keras.saving.register_keras_serializable(package="cxr_age")
def r2_loss(y_true, y_pred):
    """1 - R² of the batch: residual sum of squares over total sum of squares (Karargyris et al. 2019,
    round 2, "the coefficient of determination as the loss").

    R² does not split into a mean over images, so under several replicas each one returns its own residual
    sum over the total sum of squares of the whole global batch (labels only: no gradient passes the
    all-reduce). Keras adds the replicas' gradients, which makes the step the gradient of the global batch's
    1 - R², exactly as on one device."""
    y_true = ops.cast(ops.reshape(y_true, (-1,)), "float32")
    y_pred = ops.cast(ops.reshape(y_pred, (-1,)), "float32")
    count = _sum_over_replicas(ops.cast(ops.shape(y_true)[0], "float32"))
    mean = _sum_over_replicas(ops.sum(y_true)) / ops.maximum(count, 1.0)
    total = _sum_over_replicas(ops.sum(ops.square(y_true - mean)))
    residual = ops.sum(ops.square(y_true - y_pred))
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
