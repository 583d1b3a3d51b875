"""load_clip on a tiny, randomly initialised CLIP saved to disk: built offline, loads fast."""

from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tokenizers.pre_tokenizers import ByteLevel
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

from tastegraph.encoders import (
    ClipImageTower,
    ClipTextTower,
    ImageTower,
    TextTower,
    load_clip,
    load_image_tower,
    load_text_tower,
)
from tastegraph.encoders.clip import resize_and_centre_crop

IMAGE_SIZE = 32
PROJECTION_DIM = 16
MERGES = ["r e", "d r", "e s", "s s</w>", "re d</w>", "dr es", "dres s</w>"]


def tiny_tokenizer(directory: Path) -> CLIPTokenizer:
    """A CLIP BPE tokenizer over the 256 byte symbols plus a few merges."""
    symbols = sorted(ByteLevel.alphabet())
    tokens = [*symbols, *(s + "</w>" for s in symbols), *(m.replace(" ", "") for m in MERGES)]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    vocab |= {"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1}
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n")
    return CLIPTokenizer(vocab=str(directory / "vocab.json"), merges=str(directory / "merges.txt"))


def tiny_clip(tokenizer: CLIPTokenizer) -> CLIPModel:
    layers = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
    text = {
        **layers,
        "num_attention_heads": 2,
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 24,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {**layers, "num_attention_heads": 2, "image_size": IMAGE_SIZE, "patch_size": 8}
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=PROJECTION_DIM)
    torch.manual_seed(0)
    return CLIPModel(config)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sources = tmp_path_factory.mktemp("tokenizer-sources")
    directory = tmp_path_factory.mktemp("tiny-clip")
    tokenizer = tiny_tokenizer(sources)
    tiny_clip(tokenizer).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def towers(clip_dir: Path) -> tuple[ClipImageTower, ClipTextTower]:
    return load_clip(clip_dir)


def jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (192, 288)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def embed_photos(tower: ImageTower, photos: Sequence[bytes]) -> np.ndarray:
    """What the embedding job does with any image tower."""
    return tower.encode(torch.stack([tower.preprocess(photo) for photo in photos]))


def embed_texts(tower: TextTower, texts: Sequence[str]) -> np.ndarray:
    return tower.encode(texts)


def assert_unit_rows(features: np.ndarray, rows: int) -> None:
    assert features.shape == (rows, PROJECTION_DIM)
    assert features.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)


def test_image_tower_speaks_the_image_interface(
    towers: tuple[ClipImageTower, ClipTextTower],
) -> None:
    image_tower, _ = towers
    photos = [jpeg((200, 30, 30)), jpeg((30, 30, 200), size=(300, 200))]
    assert image_tower.preprocess(photos[0]).shape == (3, IMAGE_SIZE, IMAGE_SIZE)
    features = embed_photos(image_tower, photos)
    assert_unit_rows(features, 2)
    assert image_tower.dim == PROJECTION_DIM
    np.testing.assert_array_equal(features, embed_photos(image_tower, photos))
    assert not np.allclose(features[0], features[1])


def test_text_tower_speaks_the_text_interface(
    towers: tuple[ClipImageTower, ClipTextTower],
) -> None:
    _, text_tower = towers
    texts = ["red dress", "", "dress " * 100]  # the last is truncated to the context
    features = embed_texts(text_tower, texts)
    assert_unit_rows(features, 3)
    assert text_tower.dim == PROJECTION_DIM
    one_by_one = np.concatenate([text_tower.encode([text]) for text in texts])
    np.testing.assert_allclose(features, one_by_one, atol=1e-5)
    assert text_tower.encode([]).shape == (0, PROJECTION_DIM)


def test_names_and_versions_come_from_the_checkpoint(
    clip_dir: Path, towers: tuple[ClipImageTower, ClipTextTower]
) -> None:
    image_tower, text_tower = towers
    assert image_tower.name == text_tower.name == f"clip:{clip_dir.name}"
    assert re.fullmatch(r"[0-9a-f]{12}", image_tower.version)
    assert re.fullmatch(r"[0-9a-f]{12}", text_tower.version)
    again_image, again_text = load_clip(clip_dir)
    assert (again_image.version, again_text.version) == (image_tower.version, text_tower.version)


def test_factories_load_clip_by_name(
    clip_dir: Path, towers: tuple[ClipImageTower, ClipTextTower]
) -> None:
    image_tower = load_image_tower(f"clip:{clip_dir}")
    text_tower = load_text_tower(f"clip:{clip_dir}")
    assert isinstance(image_tower, ClipImageTower)
    assert isinstance(text_tower, ClipTextTower)
    photos = [jpeg((10, 120, 10))]
    expected = embed_photos(towers[0], photos)
    np.testing.assert_array_equal(embed_photos(image_tower, photos), expected)
    np.testing.assert_array_equal(text_tower.encode(["red"]), towers[1].encode(["red"]))


def test_preprocessor_config_sets_mean_and_std(clip_dir: Path, tmp_path: Path) -> None:
    directory = tmp_path / "clip-with-processor"
    shutil.copytree(clip_dir, directory)
    processor = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}
    (directory / "preprocessor_config.json").write_text(json.dumps(processor))
    image_tower, _ = load_clip(directory)
    pixels = image_tower.preprocess(jpeg((255, 255, 255)))
    assert torch.allclose(pixels, torch.full_like(pixels, 2.0), atol=0.02)  # (1 - 0.5) / 0.25
    assert image_tower.version != load_clip(clip_dir)[0].version


def test_resize_keeps_the_centre_square() -> None:
    image = Image.new("RGB", (192, 288), (0, 0, 255))
    image.paste((255, 0, 0), (0, 96, 192, 192))  # a red band across the middle third
    square = resize_and_centre_crop(image, IMAGE_SIZE)
    assert square.size == (IMAGE_SIZE, IMAGE_SIZE)
    centre = np.asarray(square)[IMAGE_SIZE // 2, IMAGE_SIZE // 2]
    assert centre[0] > 200 and centre[2] < 50


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_clip(tmp_path / "nowhere")


def test_a_directory_without_a_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"config\.json is missing"):
        load_clip(tmp_path)


def test_a_checkpoint_without_weights_is_a_clear_error(clip_dir: Path, tmp_path: Path) -> None:
    shutil.copy(clip_dir / "config.json", tmp_path / "config.json")
    with pytest.raises(FileNotFoundError, match="no CLIP weights"):
        load_clip(tmp_path)


def test_a_checkpoint_of_another_model_type_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="'bert' model"):
        load_clip(tmp_path)
