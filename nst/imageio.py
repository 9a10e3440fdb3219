"""Decoding, normalising, resizing and encoding images (Pillow), and tensor conversion."""

from __future__ import annotations

import functools
import io
import math
import os
import warnings
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .errors import ImageError

if TYPE_CHECKING:  # decoding and encoding need no torch: the jobs API checks images without it
    import torch

DEFAULT_MAX_PIXELS = 50_000_000  # decoded pixels allowed for one input image
# The input formats we document and decode; Pillow's other decoders (EPS runs Ghostscript,
# several raise arbitrary exceptions on crafted headers) are never tried.
INPUT_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
SOURCE_SIZE = "nst_source_size"  # info key: (size decoded, size of the picture as stored)
EXIF_ORIENTATION = 0x0112
FORMATS = {
    "png": ("PNG", "image/png"),
    "jpeg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
}


def decode_image(
    data: bytes | os.PathLike | str,
    *,
    field: str = "image",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    manage_colours: bool = True,
    needed_side: int | None = None,
) -> Image.Image:
    """Decode bytes or a path to an RGB image.

    Only :data:`INPUT_FORMATS` are recognised; anything else, and any failure of their
    decoders, raises :class:`ImageError`. The declared size is checked against
    ``max_pixels`` *before* pixels are decoded (decompression-bomb guard). EXIF orientation
    is applied. Colours are converted to sRGB from an embedded ICC profile (Adobe RGB,
    Display P3, CMYK...), as browsers show them, unless ``manage_colours`` is False (masks,
    whose exact colours name regions). With ``needed_side`` (the longest side the image
    will be resized to, at most), a JPEG is decoded at the smallest of 1/2, 1/4 and 1/8
    scale that keeps both of its sides at least that long: several times faster for large
    photos, with the memory to match. Animated images give their first frame. Modes are
    converted to RGB: 16-bit, 32-bit and float greyscale are scaled to 8 bits (floats in 0..1
    or 0..255, NaN as black); CMYK goes through Pillow's conversion; transparency (RGBA, LA,
    PA, P with a transparent colour) is composited on white, so transparent areas become
    white.
    """
    source = io.BytesIO(bytes(data)) if isinstance(data, bytes | bytearray) else data
    if isinstance(source, io.BytesIO) and not source.getbuffer().nbytes:
        raise ImageError(f"{field} is empty", field=field, code="missing_image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(source, formats=INPUT_FORMATS)
            stored = image.size
            if needed_side and image.format == "JPEG":
                image.draft(None, (needed_side, needed_side))
            _check_pixels(image, stored, field, max_pixels, _holds_whole_image(image, source))
            image.load()
            return _upright_rgb(image, stored, manage_colours)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            f"{field} is too large: {exc}", field=field, code="image_too_large"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(
            f"{field} is not an image in a supported format (PNG, JPEG, WebP, GIF, BMP, TIFF)",
            field=field,
            code="not_an_image",
        ) from None
    except MemoryError:
        raise ImageError(
            f"{field} needs too much memory to decode", field=field, code="image_too_large"
        ) from None
    except Exception as exc:
        raise ImageError(
            f"{field} is corrupt or truncated ({type(exc).__name__})",
            field=field,
            code="corrupt_image",
        ) from None


def _holds_whole_image(image: Image.Image, source: io.BytesIO | os.PathLike | str) -> bool:
    """True for a JPEG whose decoder keeps a buffer of every stored pixel's coefficients
    whatever the scale it decodes at: progressive (and arithmetic progressive) files, and
    sequential files split into several scans. Pillow marks the first; the second are told
    by counting the file's scans (an EXIF thumbnail's own scan does not count)."""
    if image.format != "JPEG":
        return False
    if image.info.get("progressive") or image.info.get("progression"):
        return True
    if isinstance(source, io.BytesIO):
        return jpeg_scans(source.getbuffer().tobytes()) > 1
    with open(source, "rb") as file:
        return jpeg_scans(file.read()) > 1


def jpeg_scans(data: bytes, stop_at: int = 2) -> int:
    """Start-of-scan markers of a JPEG's own stream, counted up to ``stop_at``: segments are
    skipped by their length (so APPn payloads such as EXIF thumbnails are never looked into)
    and entropy-coded data up to the next marker (0xFF00 is a stuffed byte, 0xFFD0-D7 a
    restart marker)."""
    scans, i, end = 0, 2, len(data)
    while i + 4 <= end and scans < stop_at:
        if data[i] != 0xFF or data[i + 1] == 0xFF:  # not a marker yet, or a fill byte
            i += 1
            continue
        marker = data[i + 1]
        if marker == 0xD9:  # end of image
            break
        if 0xD0 <= marker <= 0xD7 or marker in (0x00, 0x01):
            i += 2
            continue
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == 0xDA:
            scans += 1
            i = _after_entropy_data(data, i)
    return scans


def _after_entropy_data(data: bytes, i: int) -> int:
    """Index of the first marker at or after ``i`` that ends a scan's entropy-coded data."""
    while True:
        i = data.find(b"\xff", i)
        if i < 0 or i + 1 >= len(data):
            return len(data)
        follower = data[i + 1]
        if follower == 0x00 or 0xD0 <= follower <= 0xD7 or follower == 0xFF:
            i += 1 if follower == 0xFF else 2
            continue
        return i


def _check_pixels(
    image: Image.Image,
    stored: tuple[int, int],
    field: str,
    max_pixels: int,
    holds_whole: bool = False,
) -> None:
    """Refuse, from the header, an image with no pixels or more to decode than
    ``max_pixels`` (``image.size`` is what will be decoded, ``stored`` its stored size; with
    ``holds_whole`` the decoder holds every stored pixel whatever ``image.size`` says)."""
    width, height = stored
    if width < 1 or height < 1:
        raise ImageError(f"{field} has no pixels", field=field, code="invalid_image")
    if holds_whole and math.prod(stored) > max_pixels:
        raise ImageError(
            f"{field} is a progressive or multi-scan JPEG of {width}x{height} = "
            f"{math.prod(stored)} pixels, which its decoder holds in full at any output size; "
            f"the limit is {max_pixels} (send a smaller or a baseline JPEG)",
            field=field,
            code="image_too_large",
        )
    decoded = math.prod(image.size)
    if decoded > max_pixels:
        at = "" if image.size == stored else " (decoded at {}x{})".format(*image.size)
        raise ImageError(
            f"{field} is {width}x{height}{at} = {decoded} pixels; the limit is {max_pixels}",
            field=field,
            code="image_too_large",
        )


def _upright_rgb(image: Image.Image, stored: tuple[int, int], manage_colours: bool) -> Image.Image:
    """The loaded ``image`` in sRGB, turned upright and as 8-bit RGB, with its size and its
    stored size (upright too) under :data:`SOURCE_SIZE`."""
    managed = to_srgb(image, image.info.get("icc_profile")) if manage_colours else image
    rgb = to_rgb(ImageOps.exif_transpose(managed))
    turned = image.getexif().get(EXIF_ORIENTATION) in (5, 6, 7, 8)
    rgb.info[SOURCE_SIZE] = (rgb.size, (stored[1], stored[0]) if turned else stored)
    return rgb


def to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """``image`` with its colours converted from the ICC profile ``icc`` to sRGB. Without a
    profile, with an sRGB one, or one that cannot be read or does not fit the image's mode,
    the image is returned as it is (taken as sRGB: a profile is never a reason to refuse)."""
    if not icc or image.mode not in _PROFILE_MODES:
        return image
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        space = profile.profile.xcolor_space.strip()
        if space != _PROFILE_MODES[image.mode]:
            return image
        if ImageCms.getProfileDescription(profile).strip().lower().startswith("srgb"):
            return image
        out_mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(image, profile, _srgb(), outputMode=out_mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image
    if converted is None:
        return image
    converted.info = {k: v for k, v in image.info.items() if k != "icc_profile"}
    return converted


_PROFILE_MODES = {"RGB": "RGB", "RGBA": "RGB", "CMYK": "CMYK", "L": "GRAY"}  # mode: ICC space


@functools.cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB (see :func:`decode_image`)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # Pillow's convert("L") clips 16-bit values instead of scaling them.
        array = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0)
        image = Image.fromarray(_to_8_bits(array, _grey_peak(image.mode, array)))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image if image.mode == "RGB" else image.convert("RGB")


def _grey_peak(mode: str, array: np.ndarray) -> float:
    """White level of a 16-bit, 32-bit or float greyscale image: 65535 for 16-bit files;
    for the others the usual range their values fit (floats in 0..1, else 0..255 or 0..65535).
    """
    top = float(array.max(initial=0.0))
    if mode.startswith("I;16") or top > 255:
        return 65535.0
    return 1.0 if mode == "F" and top <= 1.0 else 255.0


def _to_8_bits(array: np.ndarray, peak: float) -> np.ndarray:
    return np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)


def source_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of the picture ``image`` was decoded from, upright: a JPEG decoded at
    a reduced scale keeps its stored shape here, so output sizes do not depend on the scale
    it was decoded at. An image resized or cropped since has its own size."""
    decoded, stored = image.info.get(SOURCE_SIZE, (None, None))
    return stored if decoded == image.size else image.size


def longest_side_size(size: tuple[int, int], side: int) -> tuple[int, int]:
    """(width, height) of an image of ``size`` scaled so its longer side is ``side``."""
    width, height = size
    scale = side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_longest(image: Image.Image, size: int) -> Image.Image:
    """Resize so the longer side is ``size`` pixels, keeping the aspect ratio."""
    new = longest_side_size(image.size, size)
    return image if new == image.size else image.resize(new, Image.Resampling.LANCZOS)


def encode_image(image: Image.Image, fmt: str = "png", quality: int = 92) -> bytes:
    """Encode to ``png`` (default), ``jpeg`` or ``webp`` bytes."""
    pil_format, _ = FORMATS[fmt]
    buffer = io.BytesIO()
    options = {"optimize": False} if fmt == "png" else {"quality": quality}
    image.save(buffer, format=pil_format, **options)
    return buffer.getvalue()


def content_type(fmt: str) -> str:
    """MIME type of an output format name."""
    return FORMATS[fmt][1]


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB image -> float tensor (1, 3, H, W) in [0, 1]."""
    import torch

    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """Tensor (3, H, W) or (1, 3, H, W) in [0, 1] -> RGB image (rounded to 8 bits)."""
    pixels = tensor.detach().float().reshape(-1, *tensor.shape[-2:]).clamp(0, 1)
    array = (pixels.permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(array)
