"""The colour signature: the subject's colours, not the backdrop's."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from tastegraph.encoders.colour import HUE_BINS, RGB_BINS, ColourSignature, signature


def photo(subject: tuple[int, int, int], backdrop: tuple[int, int, int]) -> np.ndarray:
    """(96, 64, 3) uint8: a block of one colour in the middle of a plain backdrop."""
    pixels = np.empty((96, 64, 3), np.uint8)
    pixels[:] = backdrop
    pixels[24:72, 16:48] = subject  # a quarter of the photo
    return pixels


def rgb_cell(colour: tuple[int, int, int]) -> int:
    r, g, b = (min(c * RGB_BINS // 256, RGB_BINS - 1) for c in colour)
    return (r * RGB_BINS + g) * RGB_BINS + b


def test_the_signature_holds_the_subject_and_not_the_backdrop() -> None:
    red, grey = (200, 30, 40), (235, 235, 235)
    vector = signature(photo(red, grey))
    assert vector.shape == (ColourSignature.dim,) and vector.dtype == np.float32
    histogram = vector[: RGB_BINS**3]
    assert histogram.sum() == pytest.approx(1.0)
    assert histogram[rgb_cell(red)] == pytest.approx(1.0)  # no backdrop pixel counted
    hues = vector[RGB_BINS**3 : RGB_BINS**3 + HUE_BINS]
    assert int(np.argmax(hues)) in (0, HUE_BINS - 1)  # red sits at hue 0
    assert vector[-1] == pytest.approx(0.25)  # the subject's share of the photo


def test_the_same_garment_on_another_backdrop_signs_alike_and_another_colour_does_not() -> None:
    red, blue = (200, 30, 40), (30, 40, 190)
    on_white = signature(photo(red, (250, 250, 250)))
    on_grey = signature(photo(red, (220, 220, 225)))
    other = signature(photo(blue, (250, 250, 250)))
    assert np.abs(on_white - on_grey).max() < 0.05
    assert np.abs(on_white - other).max() > 0.9


def test_a_photo_without_a_backdrop_is_read_whole() -> None:
    green = np.full((96, 64, 3), (40, 160, 60), np.uint8)
    vector = signature(green)
    assert vector[rgb_cell((40, 160, 60))] == pytest.approx(1.0) and vector[-1] == 0.0


def test_photos_go_through_the_tower_protocol() -> None:
    colour_tower = ColourSignature()
    image = Image.fromarray(photo((200, 30, 40), (235, 235, 235))).resize((192, 288))
    encoded = io.BytesIO()
    image.save(encoded, format="PNG")
    pixels = colour_tower.preprocess(encoded.getvalue())
    assert pixels.shape == (3, 96, 64) and pixels.dtype == torch.uint8
    batch = colour_tower.encode(torch.stack([pixels, pixels]))
    assert batch.shape == (2, ColourSignature.dim)
    assert batch[0][rgb_cell((200, 30, 40))] > 0.8  # resizing blurs only the edges
    assert batch[0][-1] == pytest.approx(0.25, abs=0.03)
    with pytest.raises(ValueError, match="uint8"):
        colour_tower.encode(torch.zeros((1, 3, 96, 64)))
