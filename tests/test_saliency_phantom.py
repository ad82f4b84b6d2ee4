"""Ground truth for the saliency maps: a DenseNet121 trained on phantoms whose age lives in one small patch
must learn the age, its average maps must point at the patch, and its maps must change when its weights are
randomised (Adebayo et al. 2018). Scores: relevance rank accuracy and mass accuracy (Arras et al. 2022)."""

import pandas as pd
import pytest
from phantoms import SIZE, region_mask

from cxr_age.run import Run
from cxr_age.saliency.average import Averaging, average_group
from cxr_age.saliency.methods import MapSettings, SaliencyMaps
from cxr_age.saliency.regions import mass_shares, top_shares
from cxr_age.saliency.sanity import cascading_randomisation
from cxr_age.tasks import REGRESS

# Grad-CAM reads a feature map of 4 x 4 cells at 64 px here (pool4_relu, 1/16 of the input): the default
# last layer is 2 x 2 at this size, coarser than the 16 px region (16 x 16 at the paper configs' 512 px).
GRADCAM_LAYER = "pool4_relu"


@pytest.fixture(scope="module")
def phantom(phantom_run):
    """The trained phantom model, its config, its held-out images and the training result."""
    run_dir, result = phantom_run
    config, model = Run.open(run_dir).experiment, Run(run_dir).network()
    held_out = pd.concat([pd.read_csv(run_dir / f"{split}.csv") for split in ("val", "test")], ignore_index=True)
    return config, model, held_out, result


def test_the_loop_learns_the_phantom_age(phantom):
    test = phantom[3]["splits"]["test"]
    mae, baseline = test["model"]["mae"]["value"], test["baseline"]["mae"]
    print(f"phantom test MAE {mae:.2f} (95% CI {test['model']['mae']['ci95']}) vs median baseline {baseline:.2f}")
    assert mae < 0.4 * baseline, (mae, baseline)


# Measured on this phantom (480 images, 6 epochs; region 6.25% of the image): vanilla saliency puts 84% of
# the region-sized set of most salient pixels in the region and 35% of the mass (5.6 x its area); Grad-CAM
# at 4 x 4 cells, 55% and 11% (1.7 x). Neither reaches 70% of the mass: absolute gradients leave a faint
# haze over the whole image, which dilutes the mass share however well the peak is placed, so the tests
# assert the rank share and a mass share several times the area.
@pytest.mark.parametrize("settings, min_top, min_mass_ratio",
                         [(MapSettings("saliency"), 0.7, 4.0), (MapSettings("gradcam", GRADCAM_LAYER), 0.4, 1.3)],
                         ids=["saliency", "gradcam"])
def test_average_maps_point_at_the_age_patch(phantom, settings, min_top, min_mass_ratio):
    config, model, held_out, _ = phantom
    maps = SaliencyMaps(model, REGRESS, settings)
    average = average_group(maps, model, held_out, config, "all", Averaging(16, 5.0, progress=False)).maps["all"].mean()
    masks = {"patch": region_mask(), "rest": ~region_mask()}
    area = masks["patch"].mean()
    top, mass = top_shares(average, masks)["patch"], mass_shares(average, masks)["patch"]
    print(f"{settings.method}: region area {area:.3f}, top share {top:.3f}, mass share {mass:.3f}")
    assert area < 0.10
    assert top >= min_top, top
    assert mass >= min_mass_ratio * area, mass


def test_randomised_weights_change_the_maps(phantom):
    config, model, held_out, _ = phantom
    sample = held_out.iloc[:8]
    from cxr_age.io.pipeline import make_dataset

    images = next(iter(make_dataset(sample, REGRESS.targets(sample), SIZE, len(sample))))[0].numpy()
    result = cascading_randomisation(model, REGRESS, MapSettings("saliency"), images, sample["group"].to_numpy())
    print(result.table.to_string())
    assert not result.flagged
    assert result.table["spearman"].iloc[-1] < 0.5
    assert (result.table["undefined"] == 0).all()
    random_top = top_shares(result.examples["stem"], {"patch": region_mask()})["patch"]
    trained_top = top_shares(result.examples["trained"], {"patch": region_mask()})["patch"]
    assert random_top < trained_top
