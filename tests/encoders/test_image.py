from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tastegraph.encoders import (
    EfficientNetLite0Tower,
    ImageDecodeError,
    load_image_tower,
)
from tastegraph.encoders.image import (
    LITE_MEAN,
    LITE_STD,
    decode_rgb,
    scale_pixels,
    to_normalised_tensor,
)

PHOTO_A = "images/011/0111565001.jpg"
PHOTO_B = "images/011/0110065001.jpg"


@pytest.fixture(scope="module")
def tower() -> EfficientNetLite0Tower:
    return EfficientNetLite0Tower()


@pytest.fixture(scope="module")
def photos(hm_data: Path) -> tuple[bytes, bytes]:
    """Two real product photos of different articles from the H&M sample."""
    paths = [hm_data / PHOTO_A, hm_data / PHOTO_B]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        pytest.fail(f"H&M sample photos missing: {missing}; is TASTEGRAPH_DATA the full sample?")
    return paths[0].read_bytes(), paths[1].read_bytes()


def solid_jpeg(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (192, 288), colour).save(buffer, format="JPEG", quality=100)
    return buffer.getvalue()


def test_preprocess_gives_224_square_uint8_pixels(
    tower: EfficientNetLite0Tower, photos: tuple[bytes, bytes]
) -> None:
    pixels = tower.preprocess(photos[0])
    assert pixels.shape == (3, 224, 224)
    assert pixels.dtype == torch.uint8
    assert pixels.is_contiguous()


def test_resized_pixels_follow_pils_bilinear_filter(
    tower: EfficientNetLite0Tower, photos: tuple[bytes, bytes]
) -> None:
    # The cheaper torch resize keeps PIL's antialiased bilinear: within 2 levels everywhere.
    for photo in photos:
        pil = np.asarray(decode_rgb(photo).resize((224, 224), Image.Resampling.BILINEAR))
        ours = tower.preprocess(photo).permute(1, 2, 0).numpy()
        difference = np.abs(pil.astype(np.int16) - ours.astype(np.int16))
        assert difference.max() <= 2
        assert (difference == 0).mean() > 0.9


def test_a_photo_already_at_the_input_size_is_not_resampled(
    tower: EfficientNetLite0Tower,
) -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (224, 224, 3), np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    pixels = tower.preprocess(buffer.getvalue()).permute(1, 2, 0).numpy()
    assert np.array_equal(pixels, np.asarray(image))


def test_pixels_are_scaled_like_the_tf_lite_training(tower: EfficientNetLite0Tower) -> None:
    # EfficientNet-Lite was trained on (pixel - 127) / 128: white is ~1, black is ~-1.
    white = scale_pixels(tower.preprocess(solid_jpeg((255, 255, 255)))[None])
    black = scale_pixels(tower.preprocess(solid_jpeg((0, 0, 0)))[None])
    assert white.dtype == torch.float32
    assert torch.allclose(white, torch.full_like(white, 128 / 128), atol=0.02)
    assert torch.allclose(black, torch.full_like(black, -127 / 128), atol=0.02)


def test_encode_gives_finite_float32_features(
    tower: EfficientNetLite0Tower, photos: tuple[bytes, bytes]
) -> None:
    features = tower.encode(torch.stack([tower.preprocess(photo) for photo in photos]))
    assert features.shape == (2, tower.dim) == (2, 1280)
    assert features.dtype == np.float32
    assert np.isfinite(features).all()
    assert (np.linalg.norm(features, axis=1) > 0).all()


def test_the_same_photo_gives_the_same_features(
    tower: EfficientNetLite0Tower, photos: tuple[bytes, bytes]
) -> None:
    one = tower.encode(tower.preprocess(photos[0])[None])
    again = tower.encode(tower.preprocess(photos[0])[None])
    in_a_batch = tower.encode(torch.stack([tower.preprocess(photo) for photo in photos]))
    np.testing.assert_array_equal(one, again)
    np.testing.assert_allclose(in_a_batch[:1], one, rtol=1e-4, atol=1e-4)


def test_different_photos_give_different_features(
    tower: EfficientNetLite0Tower, photos: tuple[bytes, bytes]
) -> None:
    features = tower.encode(torch.stack([tower.preprocess(photo) for photo in photos]))
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    assert float(unit[0] @ unit[1]) < 0.99


def test_version_names_the_weights_and_input_size(tower: EfficientNetLite0Tower) -> None:
    assert re.fullmatch(r"[0-9a-f]{12}-224sq-tbl", tower.version)
    assert EfficientNetLite0Tower().version == tower.version
    assert EfficientNetLite0Tower(input_size=(288, 192)).version != tower.version


def test_encode_images_takes_paths_or_bytes_in_order(
    tower: EfficientNetLite0Tower, photos: tuple[bytes, bytes], hm_data: Path
) -> None:
    from_bytes = tower.encode_images([photos[1], photos[0]], batch_size=1)
    from_paths = tower.encode_images([hm_data / PHOTO_B, str(hm_data / PHOTO_A)])
    assert from_bytes.shape == (2, 1280)
    np.testing.assert_allclose(from_paths, from_bytes, rtol=1e-4, atol=1e-4)
    assert tower.encode_images([]).shape == (0, 1280)


@pytest.mark.parametrize("data", [b"", b"not a photo at all", b"\xff\xd8\xff\xe0" + b"\0" * 64])
def test_corrupt_bytes_raise_a_clear_error(tower: EfficientNetLite0Tower, data: bytes) -> None:
    with pytest.raises(ImageDecodeError, match="cannot decode"):
        tower.preprocess(data)


def test_a_truncated_photo_raises_a_clear_error(
    tower: EfficientNetLite0Tower, photos: tuple[bytes, bytes]
) -> None:
    with pytest.raises(ImageDecodeError, match="cannot decode"):
        tower.preprocess(photos[0][: len(photos[0]) // 2])


def test_encode_rejects_a_batch_of_the_wrong_shape_or_type(tower: EfficientNetLite0Tower) -> None:
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        tower.encode(torch.zeros(3, 224, 224, dtype=torch.uint8))
    with pytest.raises(TypeError, match="uint8 pixels"):
        tower.encode(torch.zeros(1, 3, 224, 224))  # floats: scaled already, or not at all


def test_factory_loads_the_default_and_refuses_unknown_names() -> None:
    assert isinstance(load_image_tower(), EfficientNetLite0Tower)
    with pytest.raises(ValueError, match=r"efficientnet-lite0.*clip:"):
        load_image_tower("resnet50")


def test_bytes_scaled_in_encode_give_the_features_of_float_preprocessing(
    tower: EfficientNetLite0Tower, photos: tuple[bytes, bytes]
) -> None:
    # Scaling bytes inside the forward pass gives what scaling them to floats first gave.
    pixels = torch.stack([tower.preprocess(p) for p in photos])
    images = [Image.fromarray(photo.permute(1, 2, 0).numpy()) for photo in pixels]
    floats = torch.stack([to_normalised_tensor(i, LITE_MEAN, LITE_STD) for i in images])
    with torch.inference_mode():
        before = tower.model.extract_features(floats).mean((2, 3)).numpy()
    now = tower.encode(pixels)
    np.testing.assert_allclose(now, before, rtol=1e-4, atol=1e-4)
