import cv2
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from helpers import FULL_SIZE, RGBA_IMAGES
from PIL import Image

from cxr_age.config import DataConfig
from cxr_age.errors import CxrAgeError
from cxr_age.io.decode import decode_gray, load_image
from cxr_age.io.feed import Feed
from cxr_age.io.pipeline import make_dataset
from cxr_age.io.selection import select
from cxr_age.tasks import CLASSIFY, REGRESS


def _decode(path):
    return decode_gray(tf.io.read_file(str(path))).numpy()


@pytest.mark.parametrize("name", RGBA_IMAGES)
def test_real_rgba_nih_images_decode_to_their_gray_values(name):
    raw = cv2.imread(str(FULL_SIZE / f"{name}.png"), cv2.IMREAD_UNCHANGED)
    assert raw.shape == (1024, 1024, 4)
    decoded = _decode(FULL_SIZE / f"{name}.png")
    assert decoded.shape == (1024, 1024, 1) and decoded.dtype == np.float32
    np.testing.assert_allclose(decoded[..., 0], raw[..., 0] / 255.0, atol=1e-6)


@pytest.mark.parametrize("name", ["00000075_000", "00000211_000"] + list(RGBA_IMAGES[:1]))
def test_real_nih_images_load_resized_in_unit_range(name):
    image = load_image(tf.constant(str(FULL_SIZE / f"{name}.png")), 64).numpy()
    assert image.shape == (64, 64, 1)
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.05
    reference = cv2.resize(cv2.imread(str(FULL_SIZE / f"{name}.png"), cv2.IMREAD_GRAYSCALE), (64, 64),
                           interpolation=cv2.INTER_AREA) / 255.0
    assert np.abs(image[..., 0] - reference).mean() < 0.01


def test_sixteen_bit_png_keeps_its_range(tmp_path):
    ramp = np.linspace(0, 65535, 128 * 128).reshape(128, 128).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "ramp16.png"), ramp)
    assert cv2.imread(str(tmp_path / "ramp16.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    np.testing.assert_allclose(_decode(tmp_path / "ramp16.png")[..., 0], ramp / 65535.0, atol=1e-6)
    small = load_image(tf.constant(str(tmp_path / "ramp16.png")), 64).numpy()
    assert small.min() < 0.02 and small.max() > 0.98


def test_other_formats_become_one_channel(tmp_path):
    y, x = np.mgrid[:40, :40]
    gray = (255 * (0.5 + 0.4 * np.sin(x / 6.0) * np.cos(y / 9.0))).astype(np.uint8)
    Image.fromarray(gray).convert("LA").save(tmp_path / "gray_alpha.png")
    Image.fromarray(gray).convert("P").save(tmp_path / "palette.png")
    cv2.imwrite(str(tmp_path / "rgb.jpg"), np.dstack([gray] * 3), [cv2.IMWRITE_JPEG_QUALITY, 100])
    cv2.imwrite(str(tmp_path / "jpeg_named.png"), gray)
    (tmp_path / "jpeg_named.png").write_bytes(cv2.imencode(".jpg", gray)[1].tobytes())
    for name, tolerance in (("gray_alpha.png", 1e-6), ("palette.png", 1e-6), ("rgb.jpg", 0.01),
                            ("jpeg_named.png", 0.02)):
        decoded = _decode(tmp_path / name)
        assert decoded.shape == (40, 40, 1), name
        assert np.abs(decoded[..., 0] - gray / 255.0).mean() < tolerance, name


@pytest.mark.parametrize("size", [256, 384, 100])
def test_downscale_is_anti_aliased(tmp_path, size):
    """One-pixel stripes average to flat gray at whole and fractional factors; sampling without averaging
    keeps some stripes and drops others (all white, all black, or moire bands)."""
    stripes = np.zeros((1024, 1024), np.uint8)
    stripes[:, ::2] = 255
    cv2.imwrite(str(tmp_path / "stripes.png"), stripes)
    small = load_image(tf.constant(str(tmp_path / "stripes.png")), size).numpy()
    assert abs(small.mean() - 0.5) < 0.01
    assert small.std() < (0.01 if 1024 % size == 0 else 0.05)  # a faint ripple (+-0.03) at fractional factors
    sampled = tf.image.resize(stripes[..., None].astype(np.float32) / 255, [size, size], method="nearest").numpy()
    assert abs(sampled.mean() - 0.5) > 0.4 or sampled.std() > 0.4  # what the test guards against


@pytest.fixture(scope="module")
def sample():
    return select(DataConfig()).frame.head(10)


def test_regression_batches(sample):
    data = make_dataset(sample, REGRESS.targets(sample), 64, batch_size=4)
    batches = list(data)
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    images, ages = batches[0]
    assert images.shape == (4, 64, 64, 1) and images.dtype == tf.float32
    np.testing.assert_allclose(ages.numpy(), sample["age"].to_numpy()[:4] / 90.0, rtol=1e-6)


def test_classification_batches(sample):
    images, onehot = next(iter(make_dataset(sample, CLASSIFY.targets(sample), 64, batch_size=10)))
    assert onehot.shape == (10, 9)
    assert onehot.numpy().argmax(axis=1).tolist() == sample["group"].tolist()
    assert (onehot.numpy().sum(axis=1) == 1).all()


def test_shuffle_is_seeded_and_covers_everything(sample):
    def order(seed):
        data = make_dataset(sample, REGRESS.targets(sample), 32, 3, Feed(shuffle=True, seed=seed))
        return np.concatenate([y.numpy() for _, y in data])

    assert (order(1) == order(1)).all()
    assert sorted(order(1)) == pytest.approx(sorted(sample["age"] / 90.0))
    assert not (order(1) == sample["age"].to_numpy() / 90.0).all()


def test_augmentation_keeps_shape_and_range(sample):
    plain = next(iter(make_dataset(sample, REGRESS.targets(sample), 64, 10)))[0].numpy()
    jittered = next(iter(make_dataset(sample, REGRESS.targets(sample), 64, 10, Feed(augment=True, seed=3))))[0].numpy()
    assert jittered.shape == plain.shape
    assert jittered.min() >= 0.0 and jittered.max() <= 1.0 + 1e-6
    assert np.abs(jittered - plain).mean() > 0.001


def test_classification_refuses_ages_outside_the_groups():
    frame = pd.DataFrame({"age": [40.0, 95.0], "group": [3, -1]})
    with pytest.raises(CxrAgeError, match="1 images are older than 90"):
        CLASSIFY.targets(frame, 90)
    np.testing.assert_allclose(REGRESS.targets(frame, 100), [0.4, 0.95])
