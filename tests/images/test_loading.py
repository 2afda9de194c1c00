"""Tests for saliency_core.images.loading.load_image: every input is generated here, in tmp_path or as bytes."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from saliency_core.images.loading import (
    DEFAULT_MAX_PIXELS,
    ImageLoadError,
    LoadedImage,
    load_image,
)

# --------------------------------------------------------------------------- helpers


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _write(tmp_path: Path, filename: str, data: bytes) -> Path:
    path = tmp_path / filename
    path.write_bytes(data)
    return path


def _gradient_rgb(width: int = 64, height: int = 48) -> Image.Image:
    """A smooth RGB test picture (compresses well, survives JPEG with small error)."""
    x = np.linspace(0, 255, width, dtype=np.float64)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.float64)[:, None].repeat(width, 1)
    arr = np.stack([x, y, np.full_like(x, 128.0)], axis=-1).astype(np.uint8)
    return Image.fromarray(arr, mode="RGB")


def _px(loaded: LoadedImage, xy: tuple[int, int]) -> tuple[int, int, int]:
    return tuple(int(v) for v in loaded.image.getpixel(xy))


def _assert_close(actual, expected, tol: int) -> None:
    assert len(actual) == len(expected)
    diff = max(abs(int(a) - int(e)) for a, e in zip(actual, expected))
    assert diff <= tol, f"{actual} vs {expected} (max diff {diff} > {tol})"


def _assert_one_line_error(exc_info, filename: str) -> str:
    msg = str(exc_info.value)
    assert filename in msg, msg
    assert "\n" not in msg and "\r" not in msg, repr(msg)
    assert msg.strip(), "empty error message"
    return msg


# --------------------------------------------------------------------------- plain images


def test_plain_rgb_jpeg_loads(tmp_path):
    from skimage import data as skdata

    photo = Image.fromarray(skdata.chelsea())  # 451x300 real photo
    path = _write(tmp_path, "cat.jpg", _encode(photo, "JPEG", quality=95))
    loaded = load_image(path)
    assert isinstance(loaded, LoadedImage)
    assert loaded.image.mode == "RGB"
    assert loaded.size == photo.size == (451, 300)
    assert loaded.original_size == (451, 300)
    assert loaded.name == "cat.jpg"
    assert loaded.notes == []
    # Decoded content matches the source photo (JPEG is lossy, so compare on average).
    err = np.abs(np.asarray(loaded.image, dtype=np.int16) - np.asarray(photo, dtype=np.int16)).mean()
    assert err < 4.0


def test_plain_rgb_png_loads_exactly(tmp_path):
    src = _gradient_rgb(64, 48)
    path = _write(tmp_path, "grad.png", _encode(src, "PNG"))
    loaded = load_image(str(path))  # str path also accepted
    assert loaded.image.mode == "RGB"
    assert loaded.size == (64, 48)
    assert loaded.original_size == (64, 48)
    assert loaded.name == "grad.png"
    assert loaded.notes == []
    np.testing.assert_array_equal(np.asarray(loaded.image), np.asarray(src))


def test_explicit_name_overrides_path_name(tmp_path):
    path = _write(tmp_path, "a.png", _encode(_gradient_rgb(16, 16), "PNG"))
    assert load_image(path, name="upload.png").name == "upload.png"


# --------------------------------------------------------------------------- broken inputs


def test_zero_byte_file(tmp_path):
    path = _write(tmp_path, "empty.jpg", b"")
    with pytest.raises(ImageLoadError) as exc_info:
        load_image(path)
    msg = _assert_one_line_error(exc_info, "empty.jpg")
    assert "empty" in msg.split(":", 1)[1]


def test_text_file_renamed_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("This is not a picture.\nJust some text,\nwith several lines.\n")
    with pytest.raises(ImageLoadError) as exc_info:
        load_image(path)
    msg = _assert_one_line_error(exc_info, "notes.jpg")
    assert "not a recognised image" in msg


def test_random_bytes(tmp_path):
    rng = np.random.default_rng(0)
    path = _write(tmp_path, "noise.png", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ImageLoadError) as exc_info:
        load_image(path)
    _assert_one_line_error(exc_info, "noise.png")


def test_truncated_jpeg(tmp_path):
    from skimage import data as skdata

    full = _encode(Image.fromarray(skdata.chelsea()), "JPEG", quality=90)
    path = _write(tmp_path, "half.jpg", full[: len(full) // 2])
    with pytest.raises(ImageLoadError) as exc_info:
        load_image(path)
    msg = _assert_one_line_error(exc_info, "half.jpg")
    assert "truncated" in msg or "corrupt" in msg


def test_truncated_png(tmp_path):
    rng = np.random.default_rng(1)
    noisy = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "RGB")
    full = _encode(noisy, "PNG")
    path = _write(tmp_path, "half.png", full[: len(full) // 2])
    with pytest.raises(ImageLoadError) as exc_info:
        load_image(path)
    _assert_one_line_error(exc_info, "half.png")


def test_missing_path(tmp_path):
    path = tmp_path / "does_not_exist.jpg"
    with pytest.raises(ImageLoadError) as exc_info:
        load_image(path)
    msg = _assert_one_line_error(exc_info, "does_not_exist.jpg")
    assert "not found" in msg


def test_directory(tmp_path):
    folder = tmp_path / "photos.jpg"
    folder.mkdir()
    with pytest.raises(ImageLoadError) as exc_info:
        load_image(folder)
    msg = _assert_one_line_error(exc_info, "photos.jpg")
    assert "folder" in msg


def test_image_load_error_is_value_error():
    assert issubclass(ImageLoadError, ValueError)


def test_errors_from_bytes_use_given_name_or_default():
    with pytest.raises(ImageLoadError) as exc_info:
        load_image(b"", name="upload.jpg")
    _assert_one_line_error(exc_info, "upload.jpg")
    with pytest.raises(ImageLoadError) as exc_info:
        load_image(b"GIF89a garbage")
    _assert_one_line_error(exc_info, "image")


# --------------------------------------------------------------------------- size limits


def test_decompression_bomb_default_limit(tmp_path):
    # 9000x9000 = 81 MP > DEFAULT_MAX_PIXELS (80 MP), but a 1-bit blank PNG is only a few kB.
    assert 9000 * 9000 > DEFAULT_MAX_PIXELS
    data = _encode(Image.new("1", (9000, 9000), 0), "PNG")
    assert len(data) < 200_000
    path = _write(tmp_path, "bomb.png", data)
    with pytest.raises(ImageLoadError) as exc_info:
        load_image(path)
    msg = _assert_one_line_error(exc_info, "bomb.png")
    assert "too large" in msg
    assert "9000x9000" in msg


def test_small_max_pixels_refuses(tmp_path):
    path = _write(tmp_path, "mid.png", _encode(_gradient_rgb(200, 100), "PNG"))
    with pytest.raises(ImageLoadError) as exc_info:
        load_image(path, max_pixels=200 * 100 - 1)
    msg = _assert_one_line_error(exc_info, "mid.png")
    assert "too large" in msg
    # Exactly at the limit is allowed.
    assert load_image(path, max_pixels=200 * 100).size == (200, 100)


def test_large_image_downscaled_to_max_side(tmp_path):
    src = _gradient_rgb(400, 200)
    path = _write(tmp_path, "big.png", _encode(src, "PNG"))
    loaded = load_image(path, max_side=100)
    assert loaded.size == (100, 50)
    assert loaded.original_size == (400, 200)
    assert loaded.image.mode == "RGB"
    assert any("downscaled" in n and "400x200" in n and "100x50" in n for n in loaded.notes), loaded.notes
    # Content preserved: the left edge is dark red-ish, the right edge bright in red.
    arr = np.asarray(loaded.image, dtype=np.int16)
    assert arr[:, 0, 0].mean() < 20 and arr[:, -1, 0].mean() > 235


def test_image_at_max_side_not_downscaled(tmp_path):
    path = _write(tmp_path, "exact.png", _encode(_gradient_rgb(100, 60), "PNG"))
    loaded = load_image(path, max_side=100)
    assert loaded.size == (100, 60)
    assert not any("downscaled" in n for n in loaded.notes)


@pytest.mark.parametrize("size", [(7, 7), (7, 100), (100, 7), (1, 1)])
def test_tiny_images_refused(tmp_path, size):
    path = _write(tmp_path, "tiny.png", _encode(Image.new("RGB", size, (10, 20, 30)), "PNG"))
    with pytest.raises(ImageLoadError) as exc_info:
        load_image(path)
    msg = _assert_one_line_error(exc_info, "tiny.png")
    assert "too small" in msg


@pytest.mark.parametrize("size", [(20000, 50), (50, 20000), (1100, 100)])
def test_elongated_images_refused_for_their_aspect_ratio(tmp_path, size):
    """A 20000x50 strip was refused as 'too small (2048x5)': the size after downscaling, which the user never
    had. It is refused for what is wrong with it, with what is accepted."""
    path = _write(tmp_path, "strip.png", _encode(Image.new("RGB", size, (10, 20, 30)), "PNG"))
    with pytest.raises(ImageLoadError) as exc_info:
        load_image(path)
    msg = _assert_one_line_error(exc_info, "strip.png")
    assert "too elongated" in msg and f"{size[0]}x{size[1]}" in msg and "10:1" in msg, msg
    assert "too small" not in msg


def test_aspect_ratio_at_the_limit_is_accepted(tmp_path):
    path = _write(tmp_path, "pano.png", _encode(Image.new("RGB", (1000, 100), (10, 20, 30)), "PNG"))
    assert load_image(path).size == (1000, 100)


def test_8x8_is_accepted(tmp_path):
    path = _write(tmp_path, "eight.png", _encode(Image.new("RGB", (8, 8), (10, 20, 30)), "PNG"))
    loaded = load_image(path)
    assert loaded.size == (8, 8)
    assert _px(loaded, (3, 3)) == (10, 20, 30)


# --------------------------------------------------------------------------- modes


def test_grayscale_l(tmp_path):
    arr = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (16, 1))  # 64x16 ramp
    path = _write(tmp_path, "gray.png", _encode(Image.fromarray(arr, mode="L"), "PNG"))
    loaded = load_image(path)
    assert loaded.image.mode == "RGB"
    assert loaded.size == (64, 16)
    out = np.asarray(loaded.image)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], arr)
    assert any("grayscale" in n for n in loaded.notes)


def test_one_bit_image(tmp_path):
    img = Image.new("1", (16, 16), 0)
    img.paste(1, (0, 0, 8, 16))
    loaded = load_image(_encode(img, "PNG"))
    assert loaded.image.mode == "RGB"
    assert _px(loaded, (2, 2)) == (255, 255, 255)
    assert _px(loaded, (12, 2)) == (0, 0, 0)


def test_16bit_png_values_scaled_not_clipped(tmp_path):
    arr = np.zeros((16, 16), dtype=np.uint16)
    arr[:, 0:4] = 65535
    arr[:, 4:8] = 32896  # = 128 * 257
    arr[:, 8:12] = 0
    arr[:, 12:16] = 1000  # ~3.9 in 8-bit; clipping would give 255
    src = Image.fromarray(arr)
    assert src.mode == "I;16"
    path = _write(tmp_path, "deep.png", _encode(src, "PNG"))
    assert Image.open(path).mode.startswith("I")  # really stored as 16-bit
    loaded = load_image(path)
    assert loaded.image.mode == "RGB"
    assert loaded.size == (16, 16)
    assert _px(loaded, (1, 1)) == (255, 255, 255)
    _assert_close(_px(loaded, (5, 1)), (128, 128, 128), 1)
    assert _px(loaded, (9, 1)) == (0, 0, 0)
    _assert_close(_px(loaded, (13, 1)), (4, 4, 4), 1)
    assert any("8-bit" in n for n in loaded.notes)


def test_16bit_dark_png_stays_dark():
    # All values <= 255 in a 16-bit file are nearly black, not full-range 8-bit values.
    arr = np.full((16, 16), 200, dtype=np.uint16)
    loaded = load_image(_encode(Image.fromarray(arr), "PNG"))
    assert _px(loaded, (0, 0)) == (0, 0, 0)


def test_32bit_int_and_float_images():
    arr = np.linspace(0, 65535, 16 * 16).reshape(16, 16).astype(np.int32)
    loaded = load_image(_encode(Image.fromarray(arr, mode="I"), "TIFF"))
    assert loaded.image.mode == "RGB"
    assert _px(loaded, (0, 0)) == (0, 0, 0)
    assert _px(loaded, (15, 15)) == (255, 255, 255)

    farr = np.linspace(-1.0, 1.0, 16 * 16, dtype=np.float32).reshape(16, 16)
    loaded = load_image(_encode(Image.fromarray(farr, mode="F"), "TIFF"))
    assert loaded.image.mode == "RGB"
    assert _px(loaded, (0, 0)) == (0, 0, 0)
    assert _px(loaded, (15, 15)) == (255, 255, 255)


def test_cmyk_jpeg(tmp_path):
    img = Image.new("CMYK", (32, 16), (0, 0, 0, 0))  # left half: no ink -> white
    img.paste((255, 0, 0, 0), (16, 0, 32, 16))  # right half: full cyan
    path = _write(tmp_path, "print.jpg", _encode(img, "JPEG", quality=95))
    assert Image.open(path).mode == "CMYK"
    loaded = load_image(path)
    assert loaded.image.mode == "RGB"
    assert loaded.size == (32, 16)
    _assert_close(_px(loaded, (4, 8)), (255, 255, 255), 8)
    _assert_close(_px(loaded, (28, 8)), (0, 255, 255), 8)
    assert any("CMYK" in n for n in loaded.notes)


def test_palette_png(tmp_path):
    img = Image.new("P", (20, 10), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    img.paste(1, (10, 0, 20, 10))
    path = _write(tmp_path, "pal.png", _encode(img, "PNG"))
    assert Image.open(path).mode == "P"
    loaded = load_image(path)
    assert loaded.image.mode == "RGB"
    assert loaded.size == (20, 10)
    assert _px(loaded, (2, 2)) == (255, 0, 0)
    assert _px(loaded, (15, 2)) == (0, 0, 255)


def test_palette_png_with_transparency(tmp_path):
    img = Image.new("P", (20, 10), 0)
    img.putpalette([0, 0, 0, 0, 200, 0] + [0] * (256 * 3 - 6))
    img.paste(1, (10, 0, 20, 10))
    path = _write(tmp_path, "palt.png", _encode(img, "PNG", transparency=0))
    reopened = Image.open(path)
    assert reopened.mode == "P" and "transparency" in reopened.info
    loaded = load_image(path)
    assert loaded.image.mode == "RGB"
    # Index 0 is black but transparent -> white, not black.
    assert _px(loaded, (2, 2)) == (255, 255, 255)
    assert _px(loaded, (15, 2)) == (0, 200, 0)
    assert any("transparent" in n for n in loaded.notes)


def test_rgba_png_flattened_onto_white(tmp_path):
    arr = np.zeros((10, 30, 4), dtype=np.uint8)
    arr[:, 0:10] = (0, 0, 0, 0)  # fully transparent black
    arr[:, 10:20] = (255, 0, 0, 255)  # opaque red
    arr[:, 20:30] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    path = _write(tmp_path, "alpha.png", _encode(Image.fromarray(arr, mode="RGBA"), "PNG"))
    loaded = load_image(path)
    assert loaded.image.mode == "RGB"
    assert loaded.size == (30, 10)
    assert _px(loaded, (5, 5)) == (255, 255, 255)
    assert _px(loaded, (15, 5)) == (255, 0, 0)
    _assert_close(_px(loaded, (25, 5)), (127, 127, 127), 2)
    assert any("flattened onto white" in n for n in loaded.notes)


def test_opaque_rgba_has_no_transparency_note():
    arr = np.zeros((10, 10, 4), dtype=np.uint8)
    arr[...] = (10, 20, 30, 255)
    loaded = load_image(_encode(Image.fromarray(arr, mode="RGBA"), "PNG"))
    assert _px(loaded, (5, 5)) == (10, 20, 30)
    assert not any("transparent" in n for n in loaded.notes)


def test_la_image(tmp_path):
    arr = np.zeros((10, 20, 2), dtype=np.uint8)
    arr[:, 0:10] = (50, 0)  # transparent dark grey -> white
    arr[:, 10:20] = (50, 255)  # opaque dark grey
    path = _write(tmp_path, "la.png", _encode(Image.fromarray(arr, mode="LA"), "PNG"))
    assert Image.open(path).mode == "LA"
    loaded = load_image(path)
    assert loaded.image.mode == "RGB"
    assert _px(loaded, (5, 5)) == (255, 255, 255)
    assert _px(loaded, (15, 5)) == (50, 50, 50)


# --------------------------------------------------------------------------- animation and EXIF


def test_animated_gif_first_frame(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [Image.new("RGB", (16, 16), c) for c in colours]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    path = _write(tmp_path, "anim.gif", buf.getvalue())
    assert Image.open(path).n_frames == 3
    loaded = load_image(path)
    assert loaded.image.mode == "RGB"
    assert loaded.size == (16, 16)
    assert _px(loaded, (8, 8)) == (255, 0, 0)
    assert any("animated" in n and "3 frames" in n for n in loaded.notes), loaded.notes


def test_animated_png_first_frame():
    colours = [(0, 0, 255), (255, 255, 0), (0, 255, 0)]
    frames = [Image.new("RGB", (16, 16), c) for c in colours]
    buf = io.BytesIO()
    frames[0].save(buf, "PNG", save_all=True, append_images=frames[1:], duration=100)
    loaded = load_image(buf.getvalue())
    assert _px(loaded, (8, 8)) == (0, 0, 255)
    assert any("animated" in n for n in loaded.notes)


def _exif_jpeg(orientation: int) -> tuple[bytes, Image.Image]:
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 10, 20))  # red strip on the left (x < 10)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(img, "JPEG", quality=95, exif=exif.tobytes()), img


def test_exif_orientation_rotates(tmp_path):
    data, _ = _exif_jpeg(6)
    path = _write(tmp_path, "phone.jpg", data)
    assert Image.open(path).size == (40, 20)  # stored landscape
    loaded = load_image(path)
    assert loaded.size == (20, 40)
    assert loaded.original_size == (20, 40)
    assert any("EXIF" in n for n in loaded.notes)
    # Orientation 6: displayed image is the stored one rotated 90 deg clockwise,
    # so the red strip (stored on the left) ends up on top.
    _assert_close(_px(loaded, (10, 3)), (255, 0, 0), 40)
    _assert_close(_px(loaded, (10, 36)), (0, 0, 255), 40)


def test_exif_orientation_normal_keeps_size():
    data, _ = _exif_jpeg(1)
    loaded = load_image(data)
    assert loaded.size == (40, 20)
    assert not any("EXIF" in n for n in loaded.notes)
    _assert_close(_px(loaded, (3, 10)), (255, 0, 0), 40)


# --------------------------------------------------------------------------- source types


def test_bytes_source():
    src = _gradient_rgb(32, 24)
    data = _encode(src, "PNG")
    loaded = load_image(data)
    assert loaded.name == "image"
    assert loaded.size == (32, 24)
    np.testing.assert_array_equal(np.asarray(loaded.image), np.asarray(src))
    loaded = load_image(bytearray(data), name="upload.png")
    assert loaded.name == "upload.png"
    assert loaded.size == (32, 24)


def test_file_object_source(tmp_path):
    src = _gradient_rgb(32, 24)
    data = _encode(src, "PNG")
    loaded = load_image(io.BytesIO(data), name="stream.png")
    assert loaded.name == "stream.png"
    np.testing.assert_array_equal(np.asarray(loaded.image), np.asarray(src))

    path = _write(tmp_path, "disk.png", data)
    with open(path, "rb") as fh:
        loaded = load_image(fh)
    assert loaded.size == (32, 24)
    np.testing.assert_array_equal(np.asarray(loaded.image), np.asarray(src))


def test_empty_file_object_refused():
    with pytest.raises(ImageLoadError) as exc_info:
        load_image(io.BytesIO(b""), name="blank.png")
    _assert_one_line_error(exc_info, "blank.png")


# --------------------------------------------------------------------------- robustness


def test_tiff_with_broken_second_ifd(tmp_path):
    """A TIFF whose next-IFD pointer leads to an IFD without dimensions (Pillow raises TypeError)."""
    import struct

    s = bytearray(_encode(Image.new("RGB", (16, 16), (1, 2, 3)), "TIFF"))
    assert s[:4] == b"II*\x00"
    ifd = struct.unpack_from("<I", s, 4)[0]
    n_entries = struct.unpack_from("<H", s, ifd)[0]
    next_ptr = ifd + 2 + 12 * n_entries
    struct.pack_into("<I", s, next_ptr, len(s))
    # One IFD entry (a 3-char ASCII tag, no width/height), then "no further IFD".
    s += struct.pack("<H", 1) + struct.pack("<HHII", 0x0131, 2, 4, 0x00616263) + struct.pack("<I", 0)
    path = _write(tmp_path, "scan.tif", bytes(s))
    with pytest.raises(ImageLoadError) as exc_info:
        load_image(path)
    _assert_one_line_error(exc_info, "scan.tif")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_fuzzed_files_give_rgb_or_one_line_error():
    """Randomly damaged files of many formats: always RGB or a one-line ImageLoadError, never another error."""
    import random

    rng = random.Random(1234)
    base = Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8), "RGB")
    seeds = {fmt: _encode(base, fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "TGA")}
    for i in range(300):
        fmt = rng.choice(sorted(seeds))
        d = bytearray(seeds[fmt])
        op = rng.random()
        if op < 0.35:
            for _ in range(rng.randint(1, 10)):
                d[rng.randrange(len(d))] = rng.randrange(256)
        elif op < 0.6:
            d = d[: rng.randrange(1, len(d))]
        else:  # damage the header, where most parsers trip
            for _ in range(rng.randint(1, 4)):
                d[rng.randrange(min(len(d), 64))] = rng.randrange(256)
        name = f"fuzz{i}.{fmt.lower()}"
        try:
            loaded = load_image(bytes(d), name=name)
        except ImageLoadError as exc:
            msg = str(exc)
            assert msg.startswith(name) and "\n" not in msg, (fmt, msg)
        else:
            assert loaded.image.mode == "RGB" and min(loaded.size) >= 8
