"""The model-parameter randomisation test of Adebayo et al. 2018 ("Sanity checks for saliency maps",
NeurIPS): re-initialise the network's weights stage by stage from the output down (cascading randomisation)
and compare each image's map from the randomised network with its map from the trained one by Spearman rank
correlation. Maps that still resemble the trained ones once every weight is random show the image, not what
the network learned, and the method is flagged."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from cxr_age.saliency.methods import MapSettings, SaliencyMaps
from cxr_age.tasks import Task

# A mean rank correlation at or above this, with every stage randomised, flags the method.
SURVIVAL_THRESHOLD = 0.5
# keras.applications DenseNet layer-name prefixes of each stage, from the output down.
_STAGE_PREFIXES = (
    ("dense block 4", ("conv5_", "bn")),
    ("dense block 3", ("conv4_", "pool4_")),
    ("dense block 2", ("conv3_", "pool3_")),
    ("dense block 1", ("conv2_", "pool2_")),
    ("stem", ("conv1", "pool1")),
)


def randomisation_stages(model: keras.Model) -> list[tuple[str, list[str]]]:
    """The names of the layers with weights in each stage, from the output layer down to the stem."""
    output_names = set(model.output_names)
    weighted = [layer.name for layer in model.layers if layer.weights]
    stages = [("output layer", [name for name in weighted if name in output_names])]
    for label, prefixes in _STAGE_PREFIXES:
        stages.append((label, [name for name in weighted if name.startswith(prefixes) and name not in output_names]))
    return [(label, names) for label, names in stages if names]


def rank_correlations(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Spearman correlation of each pair of maps `[n, h, w]`; NaN where a map is constant."""
    values = []
    for a, b in zip(reference, other):
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            values.append(np.nan)
        else:
            values.append(spearmanr(a.ravel(), b.ravel()).statistic)
    return np.asarray(values, dtype=np.float64)


@dataclass
class SanityResult:
    """Per cumulative stage: the mean rank correlation with its 95% interval over images; the example maps
    (first image) of the trained network and after each stage; and whether the method is flagged."""

    table: pd.DataFrame
    examples: dict[str, np.ndarray]
    flagged: bool


def _summary(stage: str, layers: int, correlations: np.ndarray) -> dict[str, object]:
    defined = correlations[~np.isnan(correlations)]
    mean = float(defined.mean()) if len(defined) else float("nan")
    half = 1.96 * float(defined.std(ddof=1)) / np.sqrt(len(defined)) if len(defined) > 1 else float("nan")
    return {"randomised_through": stage, "layers_randomised": layers, "images": len(correlations),
            "undefined": int(np.isnan(correlations).sum()), "spearman": mean,
            "ci95_low": mean - half, "ci95_high": mean + half}


def cascading_randomisation(model: keras.Model, task: Task, settings: MapSettings, images: np.ndarray,
                            groups: np.ndarray, seed: int = 0) -> SanityResult:
    """Maps of `images` from the trained model and after randomising each stage in turn (cumulatively, from
    the top); fresh weights come from the layers' own initialisers (a clone of the model, seeded)."""
    trained_maps = SaliencyMaps(model, task, settings)(images, groups)
    keras.utils.set_random_seed(seed)
    fresh = keras.models.clone_model(model)
    randomised = keras.models.clone_model(model)
    randomised.set_weights(model.get_weights())
    randomised_maps = SaliencyMaps(randomised, task, settings, clone=False)
    rows, examples, randomised_layers = [], {"trained": trained_maps[0]}, 0
    for stage, names in randomisation_stages(model):
        for name in names:
            randomised.get_layer(name).set_weights(fresh.get_layer(name).get_weights())
        randomised_layers += len(names)
        maps = randomised_maps(images, groups)
        examples[stage] = maps[0]
        rows.append(_summary(stage, randomised_layers, rank_correlations(trained_maps, maps)))
    table = pd.DataFrame(rows)
    final = table["spearman"].iloc[-1]
    return SanityResult(table, examples, bool(np.isfinite(final) and final >= SURVIVAL_THRESHOLD))
