"""The paper's networks: a `keras.applications` DenseNet backbone, global average pooling, and a sigmoid
age output (regression) or a softmax over the nine age groups (classification), Karargyris et al. 2019.
Built as one flat functional model so that every convolution is reachable for saliency methods. Only Keras
is used (no TensorFlow call), so the same networks and losses run on Keras's JAX backend."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import keras

from cxr_age.errors import CxrAgeError
from cxr_age.nets.head import Head
from cxr_age.nets.precision import check_policy

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


@dataclass(frozen=True)
class NetworkOptions:
    """How the network is built beyond its shape. `bn_momentum` sets every batch-normalisation layer's
    moving-average momentum (Keras's default 0.99 averages over ~100 steps, so runs of only a few hundred
    steps need less, or inference uses statistics still near their start). `policy` is the Keras dtype
    policy the network is built under: `float32`, or a mixed one (`mixed_float16` or `mixed_bfloat16`,
    `cxr_age.nets.precision`: half-precision computation, float32 variables, the output layer kept in
    float32). `synchronized_bn` makes batch normalisation reduce its batch statistics over all replicas of a
    `tf.distribute` strategy (the global batch, as on one device)."""

    bn_momentum: float = 0.99
    policy: str = "float32"
    synchronized_bn: bool = False


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
                          f"time; fetch {BASE_WEIGHTS_PATH}{_notop_file(backbone)} and pass it as `weights`, or put it "
                          f"at {cached}")
    return str(cached)


def _backbone(name: str, inputs: keras.KerasTensor, weights: str | None) -> keras.Model:
    if name not in BACKBONES:
        raise CxrAgeError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    try:
        return BACKBONES[name](include_top=False, weights=weights, input_tensor=inputs, pooling="avg")
    except Exception as err:  # noqa: BLE001 - a wrong file surfaces as many types
        raise CxrAgeError(f"cannot load weights {weights} into {name}: {str(err).splitlines()[0]}") from None


def build_model(head: Head, backbone: str, image_size: int, weights: str | None = None,
                options: NetworkOptions = NetworkOptions()) -> keras.Model:
    """A DenseNet with `head` (the task's: `Dense(1, sigmoid)` named `age`, or `Dense(9, softmax)` named
    `age_group`) on `[image_size, image_size, 1]` images in [0, 1]. `weights`: None (the paper: from
    scratch), `"imagenet"`, or a path to a local `.h5` file of the backbone without its top.

    Examples:
        >>> from cxr_age.tasks import REGRESS
        >>> build_model(REGRESS.head, "densenet121", 64).output.shape
        (None, 1)
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(check_policy(options.policy))
    try:
        return _build_model(head, backbone, image_size, weights, options)
    finally:
        keras.config.set_dtype_policy(previous)


def _build_model(head: Head, backbone: str, image_size: int, weights: str | None,
                 options: NetworkOptions) -> keras.Model:
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
            layer.momentum = options.bn_momentum
            layer.synchronized = options.synchronized_bn
    outputs = keras.layers.Dense(head.units, activation=head.activation, dtype="float32",
                                 name=head.layer)(base.output)
    return keras.Model(inputs, outputs, name=f"{backbone}_{head.task}")
