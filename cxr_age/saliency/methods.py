"""Saliency methods, all through tf-keras-vis (the maintained successor of the keras-vis the paper used).

- `saliency`: vanilla gradients, |d score / d pixel| (Simonyan et al. 2014), the paper's method.
- `smoothgrad`: gradients averaged over noisy copies of the image (Smilkov et al. 2017).
- `gradcam`: gradient-weighted class activation map (Selvaraju et al. 2017).
- `gradcam++`: Grad-CAM with higher-order pixel weights (Chattopadhay et al. 2018).
- `scorecam`: activation maps weighted by the score of the masked image (Wang et al. 2020), in its faster
  variant that keeps the feature channels of highest spatial variance.
- `layercam`: element-wise positive-gradient weighting (Jiang et al. 2021).

The score is the output the map explains. Classifier: the logit of the image's own age group (the softmax
replaced by a linear activation, as tf-keras-vis recommends). Regressor: the age output with its sigmoid
linearised. Every map is normalised to [0, 1] per image, as keras-vis did before the paper averaged them.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from tf_keras_vis.gradcam import Gradcam
from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
from tf_keras_vis.layercam import Layercam
from tf_keras_vis.saliency import Saliency
from tf_keras_vis.scorecam import Scorecam
from tf_keras_vis.utils import normalize
from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
from tf_keras_vis.utils.scores import CategoricalScore

from cxr_age.errors import CxrAgeError
from cxr_age.nets.densenet import FEATURE_LAYER
from cxr_age.saliency import CAM_METHODS, METHODS
from cxr_age.tasks import Task

_VISUALIZERS = {"saliency": Saliency, "smoothgrad": Saliency, "gradcam": Gradcam, "gradcam++": GradcamPlusPlus,
                "scorecam": Scorecam, "layercam": Layercam}
# Faster Score-CAM: the number of highest-variance feature channels whose masks are scored.
SCORECAM_CHANNELS = 32


@dataclass(frozen=True)
class MapSettings:
    """How maps are made: the method, the feature layer CAM methods read (default: the backbone's last),
    and SmoothGrad's number of noisy copies and noise level (a fraction of the image's value range)."""

    method: str = "saliency"
    layer: str | None = None
    smooth_samples: int = 20
    smooth_noise: float = 0.2

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise CxrAgeError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.layer and self.method not in CAM_METHODS:
            raise CxrAgeError(f"`layer` applies to the CAM methods ({', '.join(CAM_METHODS)}), not {self.method}")

    def describe(self) -> dict[str, object]:
        """The settings that shape the maps, for the run's JSON."""
        details: dict[str, object] = {"method": self.method}
        if self.method in CAM_METHODS:
            details["layer"] = self.layer or FEATURE_LAYER
        if self.method == "smoothgrad":
            details.update(smooth_samples=self.smooth_samples, smooth_noise=self.smooth_noise)
        if self.method == "scorecam":
            details["scorecam_channels"] = SCORECAM_CHANNELS
        return details


def _two_logits(model: keras.Model) -> keras.Model:
    """A one-output regressor as a two-logit model `[0, z]`. Score-CAM applies a softmax to the outputs of
    the masked images before scoring them; softmax([0, z])[1] = sigmoid(z) is then exactly the predicted
    age, where the softmax of the single logit would be 1 for every mask and weight all masks equally."""
    logit = model.outputs[0]
    return keras.Model(model.inputs, keras.layers.Concatenate(name="age_logits")([keras.ops.zeros_like(logit), logit]))


def _check_layer(model: keras.Model, name: str) -> None:
    try:
        layer = model.get_layer(name)
    except ValueError:
        raise CxrAgeError(f"the model has no layer {name!r} "
                          f"(the backbone's last feature map is {FEATURE_LAYER!r})") from None
    if len(layer.output.shape) != 4:
        raise CxrAgeError(f"layer {name!r} has no spatial feature map (output shape {tuple(layer.output.shape)})")


class SaliencyMaps:
    """Per-image maps of one model by one method: `maps(images, groups)` takes a float32 batch
    `[n, h, w, 1]` and, for a classifier, each image's age-group index to explain (a regressor's maps
    explain its age output), and returns `[n, h, w]` maps in [0, 1]."""

    def __init__(self, model: keras.Model, task: Task, settings: MapSettings, clone: bool = True) -> None:
        """`clone=False` linearises `model` itself instead of a copy: for a private copy whose weights the
        caller goes on changing (the sanity check), so that one visualiser follows every change."""
        self.single_output = task.head.units == 1
        self.settings = settings
        self.layer = settings.layer or FEATURE_LAYER
        if settings.method in CAM_METHODS:
            _check_layer(model, self.layer)
        modifiers: list[Callable] = [ReplaceToLinear()]
        if self.single_output and settings.method == "scorecam":
            modifiers.append(_two_logits)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.visualizer = _VISUALIZERS[settings.method](model, model_modifier=modifiers, clone=clone)

    def _score(self, groups: np.ndarray | None) -> Callable:
        if not self.single_output:
            if groups is None:
                raise CxrAgeError("a classifier's maps need the age group of each image to explain")
            return CategoricalScore([int(g) for g in groups])
        if self.settings.method == "scorecam":
            return lambda output: output[:, 1]
        return lambda output: output[:, 0]

    def _options(self) -> dict[str, object]:
        method = self.settings.method
        if method == "smoothgrad":
            return {"smooth_samples": self.settings.smooth_samples, "smooth_noise": self.settings.smooth_noise}
        if method == "saliency":
            return {}
        options = {"penultimate_layer": self.layer, "seek_penultimate_conv_layer": False, "expand_cam": False}
        if method == "scorecam":
            options["max_N"] = SCORECAM_CHANNELS
        return options

    def __call__(self, images: np.ndarray | tf.Tensor, groups: np.ndarray | None = None) -> np.ndarray:
        images = tf.convert_to_tensor(images, tf.float32)
        # tf-keras-vis passes the input as a one-element list (a Keras 3 structure warning) and Score-CAM
        # calls `model.predict`, whose progress bar would break ours: both are muted here.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            maps = self.visualizer(self._score(groups), images, **self._options())
        maps = np.nan_to_num(np.asarray(maps, dtype=np.float32), nan=0.0)
        if maps.shape[1:] != tuple(images.shape[1:3]):
            maps = expand_cam(maps, images.shape[1:3])
        return maps


def expand_cam(cams: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Class activation maps `[n, h, w]` at feature resolution to `size`, each feature cell centred on the
    block of pixels it summarises (bilinear with half-pixel centres), renormalised to [0, 1] per image.
    tf-keras-vis's own expansion aligns the corner cells with the corner pixels, which shifts every cell of
    an 8x8 map by up to half a cell (16 px at 256 px) towards the image's edges."""
    return normalize(tf.image.resize(cams[..., None], size, method="bilinear")[..., 0].numpy()).astype(np.float32)
