import subprocess
import sys

import numpy as np
import pytest

from vla_edge.encoders import (
    CachedTextEncoder,
    EncodingError,
    HashedTextEncoder,
    ImagePreprocessor,
    encoder_for,
    lidar_sector_ranges,
    to_rgb,
    vision_features,
)
from vla_edge.spec import FEATURE_DIM, PolicySpec


def _spec(**kw) -> PolicySpec:
    base = dict(name="n", version="1", sha256="a" * 64, form="image_language", image_size=(32, 48),
                image_mean=(0.0,) * 3, image_std=(1.0,) * 3, language_dim=32, language_encoder="hash",
                lidar_sectors=0, chunk_length=1, action_names=(), action_low=(), action_high=())
    base.update(kw)
    return PolicySpec(**base)


def test_hashed_encoder_is_deterministic_across_processes():
    enc = HashedTextEncoder(FEATURE_DIM)
    here = enc.encode("go to the red cube")
    code = ("from vla_edge.encoders import HashedTextEncoder; import sys; "
            "sys.stdout.write(HashedTextEncoder(512).encode('go to the red cube').tobytes().hex())")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "12345", **__import__("os").environ}).stdout
    assert np.array_equal(here, np.frombuffer(bytes.fromhex(there), dtype=np.float32))
    assert np.linalg.norm(here) == pytest.approx(1.0)
    assert not np.allclose(here, enc.encode("go to the blue ball"))


def test_cache_encodes_once_and_is_bounded():
    enc = CachedTextEncoder(HashedTextEncoder(16), capacity=2)
    a = enc.encode("a")
    assert enc.encode("a") is a and enc.hits == 1
    enc.encode("b")
    enc.encode("c")
    assert enc.encode("a") is not a and enc.misses == 4


def test_rgb_and_bgr_give_the_same_model_image():
    rgb = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    pre = ImagePreprocessor(_spec())
    a = pre(to_rgb(rgb, "rgb8"))
    b = pre(to_rgb(np.ascontiguousarray(rgb[:, :, ::-1]), "bgr8"))
    assert a.shape == (3, 32, 48) and a.dtype == np.float32
    assert np.allclose(a, b) and a.min() >= 0.0 and a.max() <= 1.0


def test_normalisation_from_sidecar():
    pre = ImagePreprocessor(_spec(image_size=(2, 2), image_mean=(0.5,) * 3, image_std=(0.5,) * 3))
    out = pre(np.full((2, 2, 3), 255, dtype=np.uint8))
    assert np.allclose(out, 1.0)


@pytest.mark.parametrize("encoding,array", [
    ("mono8", np.zeros((4, 4, 3), np.uint8)), ("16UC1", np.zeros((4, 4, 3), np.uint8)),
    ("rgb8", np.zeros((4, 4), np.uint8)), ("rgb8", np.zeros((4, 4, 3), np.float32)),
])
def test_bad_frames_raise_encoding_error(encoding, array):
    with pytest.raises(EncodingError):
        to_rgb(array, encoding)


def test_lidar_sectors_nearest_range():
    pts = np.array([[2.0, 0.0, 0.0], [1.0, 0.0, 0.1], [-3.0, -0.01, 0.0], [np.nan, 1.0, 0.0]], np.float32)
    out = lidar_sector_ranges(pts, 4, 10.0)
    assert out.shape == (4,)
    assert out[2] == pytest.approx(0.1)  # straight ahead: sector 2 of 4 (from -pi)
    assert out[0] == pytest.approx(0.3, abs=1e-4)  # straight behind
    assert out[1] == 1.0 and out[3] == 1.0
    assert np.all(lidar_sector_ranges(np.zeros((0, 3), np.float32), 8, 5.0) == 1.0)


def test_vision_features_shape():
    rgb = np.zeros((96, 96, 3), np.uint8)
    assert vision_features(rgb).shape == (FEATURE_DIM,)
    with_lidar = vision_features(rgb, np.full(16, 0.5, np.float32))
    assert with_lidar[192:208].tolist() == [0.5] * 16 and with_lidar.shape == (FEATURE_DIM,)


def test_hot_swap_keeps_the_running_encoder_when_the_policy_names_it():
    current = encoder_for(_spec(language_dim=32, language_encoder="hash"), capacity=4)
    assert isinstance(current, CachedTextEncoder) and current.dim == 32 and current.capacity == 4
    assert encoder_for(_spec(language_dim=32, language_encoder="hash"), current=current) is current
    other_dim = encoder_for(_spec(language_dim=64, language_encoder="hash"), current=current)
    assert other_dim is not current and other_dim.dim == 64
    with pytest.raises(ValueError, match="not available offline"):
        encoder_for(_spec(language_encoder="word2vec"), current=current)
