"""The parts of the saliency analysis that need no trained model: regions, running means, rank correlations,
randomisation stages, and every tf-keras-vis method on real DenseNets."""

from __future__ import annotations

import numpy as np
import pytest

from cxr_age.errors import CxrAgeError
from cxr_age.nets.densenet import build_model
from cxr_age.saliency import METHODS
from cxr_age.saliency.analysis import default_batch_size
from cxr_age.saliency.average import RunningMean
from cxr_age.saliency.methods import MapSettings, SaliencyMaps, expand_cam
from cxr_age.saliency.regions import ELSEWHERE, Region, load_regions, mass_shares, region_masks, top_shares
from cxr_age.saliency.sanity import randomisation_stages, rank_correlations
from cxr_age.tasks import CLASSIFY, REGRESS

REQUIRED_REGIONS = {"aortic arch and upper mediastinum", "heart", "left lung", "right lung",
                    "clavicles and shoulders", "spine"}


def test_default_batches_hold_the_pixels_of_eight_256_px_images_up_to_64_images():
    sizes = (32, 64, 100, 128, 256, 320, 512, 1024)
    assert [default_batch_size(size) for size in sizes] == [64, 64, 32, 32, 8, 8, 8, 8]


def test_shipped_regions_cover_the_image_once():
    regions = load_regions()
    assert REQUIRED_REGIONS <= {region.name for region in regions}
    masks = region_masks(regions, 256)
    stacked = np.stack(list(masks.values()))
    assert (stacked.sum(axis=0) == 1).all()
    areas = {name: mask.mean() for name, mask in masks.items()}
    assert all(area > 0.005 for area in areas.values()), areas
    assert areas["heart"] > areas["aortic arch and upper mediastinum"]
    left, right = masks["left lung"], masks["right lung"]
    assert left[:, :128].sum() == 0 and right[:, 128:].sum() == 0, "the patient's right lung is on the image's left"


def test_first_listed_region_wins_overlaps():
    square = ((0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75))
    masks = region_masks([Region("a", square), Region("b", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)))], 64)
    assert masks["a"].sum() == 32 * 32
    assert masks["b"].sum() == 64 * 64 - 32 * 32
    assert masks[ELSEWHERE].sum() == 0


def test_mass_shares_of_a_map_inside_one_region():
    masks = region_masks(load_regions(), 128)
    saliency = masks["heart"].astype(float) * 3.0
    shares = mass_shares(saliency, masks)
    assert shares["heart"] == pytest.approx(1.0)
    assert sum(shares.values()) == pytest.approx(1.0)
    uniform = mass_shares(np.ones((128, 128)), masks)
    assert uniform["spine"] == pytest.approx(masks["spine"].mean())
    assert np.isnan(mass_shares(np.zeros((128, 128)), masks)["heart"])


def test_top_shares_ignore_a_faint_haze():
    masks = region_masks(load_regions(), 128)
    hazy = masks["heart"] * 1.0 + 0.2
    assert top_shares(hazy, masks)["heart"] == pytest.approx(1.0)
    assert mass_shares(hazy, masks)["heart"] < 0.5
    rng = np.random.default_rng(5)
    noise = top_shares(rng.random((128, 128)), masks)
    assert noise["heart"] == pytest.approx(masks["heart"].mean(), abs=0.05)


def test_expanded_cam_cells_sit_on_their_pixels():
    cam = np.zeros((1, 4, 4), dtype=np.float32)
    cam[0, 1, 2] = 1.0
    expanded = expand_cam(cam, (64, 64))[0]
    assert expanded.max() == pytest.approx(1.0) and expanded.min() == 0.0
    rows, cols = np.indices(expanded.shape)
    centre = (rows * expanded).sum() / expanded.sum(), (cols * expanded).sum() / expanded.sum()
    assert centre == pytest.approx((23.5, 39.5), abs=0.6), "cell (1, 2) covers rows 16-31 and columns 32-47"
    assert (expand_cam(np.zeros((1, 4, 4), np.float32), (64, 64)) == 0).all()


@pytest.mark.parametrize("text, fragment", [
    ("[[region]]\npolygon = [[0, 0], [1, 0], [1, 1]]\n", "needs a name"),
    ('[[region]]\nname = "a"\npolygon = [[0, 0], [1, 0]]\n', "at least 3 points"),
    ('[[region]]\nname = "a"\npolygon = [[0, 0], [1.5, 0], [1, 1]]\n', "must lie in [0, 1]"),
    ('[[region]]\nname = "a"\npolygon = "square"\n', "list of [x, y] pairs"),
    ('[[region]]\nname = "a"\npolygon = [[0, 0], [1, 0], [1, 1]]\n' * 2, "unique"),
    ('[[region]]\nname = "elsewhere"\npolygon = [[0, 0], [1, 0], [1, 1]]\n', "unique"),
    ("name = 'x'\n", "no [[region]]"),
    ("[[region]\n", "not a valid TOML"),
])
def test_bad_region_files_are_refused(tmp_path, text, fragment):
    path = tmp_path / "regions.toml"
    path.write_text(text)
    with pytest.raises(CxrAgeError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        load_regions(path)


def test_missing_region_file(tmp_path):
    with pytest.raises(CxrAgeError, match="regions file not found"):
        load_regions(tmp_path / "none.toml")


def test_running_mean_equals_the_mean_of_all_batches():
    rng = np.random.default_rng(0)
    batches = [rng.random((n, 8, 8)) for n in (3, 0, 5, 1)]
    running = RunningMean()
    assert running.mean() is None
    for batch in batches:
        running.add(batch)
    assert running.count == 9
    assert running.total.shape == (8, 8)
    np.testing.assert_allclose(running.mean(), np.concatenate(batches).mean(axis=0), rtol=1e-6)


def test_rank_correlations():
    rng = np.random.default_rng(1)
    maps = rng.random((3, 16, 16))
    other = maps.copy()
    other[1] = -maps[1]
    other[2] = 0.0
    result = rank_correlations(maps, other)
    assert result[0] == pytest.approx(1.0)
    assert result[1] == pytest.approx(-1.0)
    assert np.isnan(result[2])


@pytest.fixture(scope="module")
def classifier():
    return build_model(CLASSIFY.head, "densenet121", 64)


def test_randomisation_stages_cover_every_weighted_layer_once(classifier):
    stages = randomisation_stages(classifier)
    assert [label for label, _ in stages] == ["output layer", "dense block 4", "dense block 3", "dense block 2",
                                              "dense block 1", "stem"]
    assert stages[0][1] == ["age_group"]
    names = [name for _, layer_names in stages for name in layer_names]
    assert sorted(names) == sorted(layer.name for layer in classifier.layers if layer.weights)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_normalised_maps_for_a_classifier(classifier, method):
    rng = np.random.default_rng(2)
    images = rng.random((2, 64, 64, 1)).astype(np.float32)
    maps = SaliencyMaps(classifier, CLASSIFY, MapSettings(method, smooth_samples=2))
    result = maps(images, np.array([3, 7]))
    assert result.shape == (2, 64, 64) and result.dtype == np.float32
    assert np.isfinite(result).all() and result.min() >= 0 and result.max() <= 1 + 1e-6
    assert classifier.get_layer("age_group").activation.__name__ == "softmax", "the trained model is untouched"


def test_the_classifier_score_is_the_linearised_softmax(classifier):
    import keras

    images = np.random.default_rng(3).random((2, 64, 64, 1)).astype(np.float32)
    maps = SaliencyMaps(classifier, CLASSIFY, MapSettings("saliency"))
    logits = maps.visualizer.model(images)
    np.testing.assert_allclose(keras.ops.softmax(logits).numpy(), classifier(images).numpy(), atol=1e-5)


def test_scorecam_scores_the_regressor_by_its_age():
    import keras

    regressor = build_model(REGRESS.head, "densenet121", 64)
    images = np.random.default_rng(4).random((2, 64, 64, 1)).astype(np.float32)
    maps = SaliencyMaps(regressor, REGRESS, MapSettings("scorecam"))
    two_logits = maps.visualizer.model(images)
    np.testing.assert_allclose(keras.ops.softmax(two_logits).numpy()[:, 1], regressor(images).numpy()[:, 0], atol=1e-5)


@pytest.mark.parametrize("method, layer, fragment", [
    ("saliency", "relu", "`layer` applies to the CAM methods"),
    ("deconvnet", None, "unknown method"),
])
def test_bad_map_settings(method, layer, fragment):
    with pytest.raises(CxrAgeError, match=fragment):
        MapSettings(method, layer)


@pytest.mark.parametrize("layer, fragment", [("nope", "has no layer 'nope'"), ("avg_pool", "no spatial feature map")])
def test_bad_feature_layers(classifier, layer, fragment):
    with pytest.raises(CxrAgeError, match=fragment):
        SaliencyMaps(classifier, CLASSIFY, MapSettings("gradcam", layer))
