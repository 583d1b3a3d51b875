"""Photo checks: real images pass with their size and hash, broken or huge ones do not."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from PIL import Image

from tastegraph.ingest.media import PhotoCheck, check_photo, check_photos

MAX_PIXELS = 1_000_000


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """Random pixels, so a JPEG of it is mostly compressed data rather than headers."""
    rng = random.Random(seed)
    return Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))


def save(image: Image.Image, path: Path) -> Path:
    image.save(path)
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check(path: Path, max_pixels: int = MAX_PIXELS) -> PhotoCheck:
    return check_photo(str(path), max_pixels)


def test_valid_jpeg(tmp_path: Path) -> None:
    path = save(noise_image(64, 48), tmp_path / "photo.jpg")
    assert check(path) == PhotoCheck(str(path), sha256_of(path), 64, 48, None)


def test_valid_png(tmp_path: Path) -> None:
    path = save(noise_image(30, 70, seed=1), tmp_path / "photo.png")
    assert check(path) == PhotoCheck(str(path), sha256_of(path), 30, 70, None)


def test_hash_is_of_the_file_bytes_so_different_files_differ(tmp_path: Path) -> None:
    first = check(save(noise_image(16, 16, seed=1), tmp_path / "a.png"))
    second = check(save(noise_image(16, 16, seed=2), tmp_path / "b.png"))
    assert first.content_hash != second.content_hash
    assert len(first.content_hash) == 64


def test_missing_file(tmp_path: Path) -> None:
    result = check(tmp_path / "absent.jpg")
    assert result.error == "image file does not exist"
    assert (result.content_hash, result.width, result.height) == ("", 0, 0)


def test_directory_is_not_a_photo(tmp_path: Path) -> None:
    assert check(tmp_path).error == "image file does not exist"


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_text("this is not a photo\n")
    result = check(path)
    assert result.error is not None
    assert result.error == "image does not decode: not an image format Pillow can read"
    assert result.content_hash == ""


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(b"")
    error = check(path).error
    assert error is not None and error.startswith("image does not decode")


def test_truncated_jpeg(tmp_path: Path) -> None:
    whole = save(noise_image(64, 48), tmp_path / "whole.jpg")
    data = whole.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    error = check(cut).error
    assert error is not None and error.startswith("image does not decode")
    assert "runcated" in error


def test_truncated_png(tmp_path: Path) -> None:
    data = save(noise_image(64, 48), tmp_path / "whole.png").read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    error = check(cut).error
    assert error is not None and error.startswith("image does not decode")


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    # 48 megapixels of one colour compress to a few kilobytes.
    path = save(Image.new("1", (8000, 6000)), tmp_path / "bomb.png")
    assert path.stat().st_size < 100_000
    result = check(path)
    assert result.error is not None
    assert "decompression bomb" in result.error
    assert "8000x6000" in result.error
    assert (result.width, result.height) == (0, 0)


def test_image_exactly_at_the_pixel_limit_passes(tmp_path: Path) -> None:
    path = save(Image.new("L", (1000, 1000)), tmp_path / "limit.png")
    assert check(path, max_pixels=1_000_000).error is None
    assert "decompression bomb" in (check(path, max_pixels=999_999).error or "")


def summary(result: PhotoCheck) -> tuple[str, str, int, int, bool]:
    """A check without its error text, which can name a memory address."""
    return (result.path, result.content_hash, result.width, result.height, result.error is None)


def make_photo_set(tmp_path: Path, count: int) -> list[str]:
    """Good photos of distinct sizes mixed with missing and broken files."""
    sizes = [(8, 8), (9, 7), (12, 5)]
    good = [save(noise_image(w, h, seed=w), tmp_path / f"good{w}.png") for w, h in sizes]
    broken = tmp_path / "broken.jpg"
    broken.write_text("nope")
    kinds = [*good, broken, tmp_path / "missing.jpg"]
    return [str(kinds[k % len(kinds)]) for k in range(count)]


def test_check_photos_in_a_pool_keeps_the_input_order(tmp_path: Path) -> None:
    paths = make_photo_set(tmp_path, 300)  # above the threshold for a process pool
    results = check_photos(paths, MAX_PIXELS, workers=2)
    assert [result.path for result in results] == paths
    assert list(map(summary, results)) == [summary(check_photo(p, MAX_PIXELS)) for p in paths]
    assert [(r.width, r.height) for r in results[:5]] == [(8, 8), (9, 7), (12, 5), (0, 0), (0, 0)]


def test_check_photos_without_a_pool(tmp_path: Path) -> None:
    paths = make_photo_set(tmp_path, 10)
    results = check_photos(paths, MAX_PIXELS, workers=1)
    assert list(map(summary, results)) == [summary(check_photo(p, MAX_PIXELS)) for p in paths]
    assert [result.error is None for result in results[:5]] == [True, True, True, False, False]


def test_check_photos_of_nothing() -> None:
    assert check_photos([], MAX_PIXELS, workers=2) == []
