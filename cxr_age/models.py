"""The paper's networks: a `keras.applications` DenseNet backbone, global average pooling, and a sigmoid
age output (regression) or a softmax over the nine age groups (classification), Karargyris et al. 2019.
Built as one flat functional model so that every convolution is reachable for saliency methods. Only Keras
is used (no TensorFlow call), so the same networks and losses run on Keras's JAX backend."""

from __future__ import annotations

import os
from pathlib import Path

import keras

from cxr_age.config import Experiment
from cxr_age.errors import CxrAgeError
from cxr_age.tasks import get_task

BACKBONES = {
    "densenet121": keras.applications.DenseNet121,
    "densenet169": keras.applications.DenseNet169,
    "densenet201": keras.applications.DenseNet201,
}
# Every keras.applications DenseNet names its last feature map (after the final batch norm) `relu`:
# 1/32 of the input size, the layer class-activation maps read by default.
FEATURE_LAYER = "relu"
# keras.applications.densenet.preprocess_input ("torch" mode) statistics, applied to the gray image
# replicated to three channels when ImageNet weights are used.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _notop_file(backbone: str) -> str:
    return f"{backbone}_weights_tf_dim_ordering_tf_kernels_notop.h5"


def cached_imagenet_file(backbone: str) -> Path:
    """Where Keras keeps downloaded weights (`$KERAS_HOME/models/`, default `~/.keras/models/`)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models" / _notop_file(backbone)


def _local_imagenet(backbone: str) -> str:
    """`imagenet` as the local copy of the weights file: nothing is downloaded at run time."""
    cached = cached_imagenet_file(backbone)
    if not cached.is_file():
        from keras.src.applications.densenet import BASE_WEIGHTS_PATH

        raise CxrAgeError(f"ImageNet weights for {backbone} are not on this machine and are never downloaded at run "
                          f"time; fetch {BASE_WEIGHTS_PATH}{_notop_file(backbone)} and pass --weights PATH, or put it "
                          f"at {cached}")
    return str(cached)


def _backbone(name: str, inputs: keras.KerasTensor, weights: str | None) -> keras.Model:
    if name not in BACKBONES:
        raise CxrAgeError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    try:
        return BACKBONES[name](include_top=False, weights=weights, input_tensor=inputs, pooling="avg")
    except Exception as err:  # noqa: BLE001 - a wrong file surfaces as many types
        raise CxrAgeError(f"cannot load weights {weights} into {name}: {str(err).splitlines()[0]}") from None


def build_model(task: str, backbone: str, image_size: int, weights: str | None = None,
                bn_momentum: float = 0.99, mixed_precision: bool = False, synchronized_bn: bool = False) -> keras.Model:
    """DenseNet regressor (`Dense(1, sigmoid)`, named `age`) or classifier (`Dense(9, softmax)`, named
    `age_group`) on `[image_size, image_size, 1]` images in [0, 1]. `weights`: None (the paper: from scratch),
    `"imagenet"`, or a path to a local `.h5` file of the backbone without its top. `bn_momentum` sets every
    batch-normalisation layer's moving-average momentum (Keras's default 0.99 averages over ~100 steps, so
    runs of only a few hundred steps need less, or inference uses statistics still near their start).
    `mixed_precision` builds under the `mixed_float16` policy (Micikevicius et al. 2018): float16 computation,
    float32 variables, and the output layer kept in float32 for a stable loss. `synchronized_bn` makes batch
    normalisation reduce its batch statistics over all replicas of a `tf.distribute` strategy (the global
    batch, as on one device) instead of over each replica's share."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16" if mixed_precision else "float32")
    try:
        return _build_model(task, backbone, image_size, weights, bn_momentum, synchronized_bn)
    finally:
        keras.config.set_dtype_policy(previous)


def _build_model(task: str, backbone: str, image_size: int, weights: str | None, bn_momentum: float,
                 synchronized_bn: bool) -> keras.Model:
    """The network of `build_model` under the current dtype policy."""
    if weights == "imagenet":
        weights = _local_imagenet(backbone)
    elif weights is not None:
        if not Path(weights).is_file():
            raise CxrAgeError(f"weights file not found: {weights} (expected e.g. {_notop_file(backbone)})")
    inputs = keras.Input((image_size, image_size, 1), name="image")
    features = inputs
    if weights is not None:
        features = keras.layers.Concatenate(name="gray_to_rgb")([inputs, inputs, inputs])
        features = keras.layers.Normalization(
            mean=IMAGENET_MEAN, variance=[s**2 for s in IMAGENET_STD], name="imagenet_normalise"
        )(features)
    base = _backbone(backbone, features, weights)
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = bn_momentum
            layer.synchronized = synchronized_bn
    head = get_task(task)
    outputs = keras.layers.Dense(head.units, activation=head.activation, dtype="float32",
                                 name=head.output_layer)(base.output)
    return keras.Model(inputs, outputs, name=f"{backbone}_{task}")


def compile_model(model: keras.Model, config: Experiment, run_eagerly: bool = False) -> None:
    """Adam, the configured loss, and metrics in the units a reader wants (years; AUC and accuracy).
    `run_eagerly` skips graph tracing: slower steps, but no minute-long trace for a single step."""
    settings = config.train
    task = get_task(settings.task)
    model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate), loss=task.keras_loss(settings.loss),
                  metrics=task.keras_metrics(settings.age_scale), run_eagerly=run_eagerly,
                  jit_compile="auto" if settings.jit_compile is None else settings.jit_compile)
