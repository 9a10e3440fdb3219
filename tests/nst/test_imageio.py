import io

import numpy as np
import pytest
from PIL import Image

from nst.errors import ImageError
from nst.imageio import decode_image, encode_image, image_to_tensor, resize_longest, tensor_to_image
from tests.conftest import adobe_rgb_profile


def png(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_greyscale_becomes_rgb():
    out = decode_image(png(Image.new("L", (4, 3), 100)))
    assert out.mode == "RGB" and out.size == (4, 3) and out.getpixel((0, 0)) == (100, 100, 100)


def test_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (2, 2), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    out = decode_image(png(rgba))
    assert out.getpixel((0, 0)) == (255, 0, 0) and out.getpixel((1, 1)) == (255, 255, 255)
    la = Image.new("LA", (2, 2), (0, 0))
    assert decode_image(png(la)).getpixel((0, 0)) == (255, 255, 255)


def test_palette_with_and_without_transparency():
    p = Image.new("RGB", (2, 2), (0, 128, 255)).convert("P", palette=Image.Palette.ADAPTIVE)
    assert decode_image(png(p)).getpixel((1, 1)) == (0, 128, 255)
    p.info["transparency"] = p.getpixel((0, 0))
    assert decode_image(png(p, transparency=p.getpixel((0, 0)))).getpixel((0, 0)) == (255, 255, 255)


def test_cmyk_jpeg():
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red
    r, g, b = decode_image(png(cmyk, "JPEG")).getpixel((4, 4))
    assert r > 200 and g < 60 and b < 60


def test_sixteen_bit_is_scaled_not_clipped():
    array = np.full((2, 2), 32768, dtype=np.uint16)
    image = Image.fromarray(array)
    assert decode_image(png(image)).getpixel((0, 0)) == (128, 128, 128)


@pytest.mark.parametrize("white", [1.0, 255.0])
def test_float_tiffs_in_either_usual_range_keep_their_tones(white):
    array = np.array([[0.0, 0.25], [0.5, np.nan]], dtype=np.float32) * white
    out = decode_image(png(Image.fromarray(array), "TIFF"))
    tones = [out.getpixel(xy)[0] for xy in ((0, 0), (1, 0), (0, 1), (1, 1))]
    assert tones == [0, 64, 128, 0]  # NaN as black


def test_colours_are_converted_to_srgb_from_an_embedded_profile():
    tagged = png(Image.new("RGB", (4, 4), (150, 60, 60)), icc_profile=adobe_rgb_profile())
    r, g, b = decode_image(tagged).getpixel((0, 0))
    assert r > 165 and g < 60 and b < 60  # Adobe RGB's red is more saturated than sRGB's
    assert decode_image(tagged, manage_colours=False).getpixel((0, 0)) == (150, 60, 60)
    grey = png(Image.new("RGBA", (4, 4), (128, 128, 128, 255)), icc_profile=adobe_rgb_profile())
    r, g, b = decode_image(grey).getpixel((0, 0))
    assert r == g == b and abs(r - 128) <= 3  # neutrals stay neutral


@pytest.mark.parametrize(
    ("mode", "icc"),
    [
        ("RGB", b"not a profile" * 20),  # unreadable: taken as sRGB, never refused
        ("L", "adobe"),  # an RGB profile on a greyscale image: ignored
        ("RGB", "srgb"),
    ],
)
def test_profiles_that_do_not_apply_leave_the_image_as_it_is(mode, icc):
    from PIL import ImageCms

    if icc == "adobe":
        icc = adobe_rgb_profile()
    elif icc == "srgb":
        icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    colour = 100 if mode == "L" else (150, 60, 60)
    out = decode_image(png(Image.new(mode, (4, 4), colour), icc_profile=icc))
    assert out.getpixel((0, 0)) == ((100,) * 3 if mode == "L" else colour)


def test_large_jpegs_decode_at_a_reduced_scale_that_still_covers_the_needed_side():
    photo = Image.effect_noise((800, 600), 40).convert("RGB")
    data = png(photo, "JPEG")
    assert decode_image(data, needed_side=128).size == (200, 150)  # 1/4: both sides >= 128
    assert decode_image(data, needed_side=300).size == (400, 300)  # 1/2
    assert decode_image(data, needed_side=700).size == (800, 600)  # no reduction left
    assert decode_image(png(photo), needed_side=128).size == (800, 600)  # only JPEGs
    with pytest.raises(ImageError):
        decode_image(data, max_pixels=100_000)
    assert decode_image(data, max_pixels=100_000, needed_side=128).size == (200, 150)


@pytest.mark.parametrize("orientation", [1, 6])
def test_a_reduced_decode_gives_the_same_output_shape_as_the_whole_file(orientation):
    from nst import Job, StyleParams
    from nst.imageio import source_size

    photo = Image.effect_noise((600, 389), 40).convert("RGB")  # decodes at 150x98: 64x41, not 42
    exif = photo.getexif()
    exif[0x0112] = orientation
    data = png(photo, "JPEG", exif=exif)
    whole, reduced = decode_image(data), decode_image(data, needed_side=64)
    assert reduced.size != whole.size and source_size(reduced) == whole.size
    assert source_size(reduced.crop((0, 0, 40, 30))) == (40, 30)  # edited: its own shape
    for size in (64, 50, 33):  # the output and coarse-to-fine levels
        shapes = [
            Job(image, [image], StyleParams(size=size)).output_size() for image in (whole, reduced)
        ]
        assert shapes[0] == shapes[1]


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (4, 2), (0, 0, 0))
    image.putpixel((0, 0), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to display
    out = decode_image(png(image, "JPEG", exif=exif, quality=100))
    assert out.size == (2, 4)
    assert out.getpixel((1, 0))[0] > 200  # top-left moved to top-right


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    r, _, b = decode_image(buf.getvalue()).getpixel((0, 0))
    assert r > 200 and b < 50


@pytest.mark.parametrize(
    "data, code",
    [
        (b"", "missing_image"),
        (b"hello, I am text pretending to be a png", "not_an_image"),
    ],
)
def test_not_images(data, code):
    with pytest.raises(ImageError) as err:
        decode_image(data, field="content")
    assert err.value.code == code and err.value.field == "content"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_is_corrupt(fmt):
    data = png(Image.effect_noise((64, 64), 50).convert("RGB"), fmt)
    with pytest.raises(ImageError) as err:
        decode_image(data[: len(data) // 2], field="style")
    assert err.value.code == "corrupt_image" and err.value.field == "style"


def test_decompression_bomb_is_refused_before_decoding():
    bomb = png(Image.new("L", (20000, 20000)), optimize=True)
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageError) as err:
        decode_image(bomb, field="content", max_pixels=10_000_000)
    assert err.value.code == "image_too_large" and err.value.field == "content"


def test_resize_longest_keeps_aspect():
    assert resize_longest(Image.new("RGB", (400, 200)), 100).size == (100, 50)
    assert resize_longest(Image.new("RGB", (30, 60)), 120).size == (60, 120)


@pytest.mark.parametrize(
    "fmt, magic", [("png", b"\x89PNG"), ("jpeg", b"\xff\xd8"), ("webp", b"RIFF")]
)
def test_encode_formats(fmt, magic):
    data = encode_image(Image.new("RGB", (8, 8), (10, 20, 30)), fmt)
    assert data.startswith(magic)
    assert decode_image(data).size == (8, 8)


def test_tensor_round_trip_is_exact_for_8_bit():
    image = Image.effect_noise((16, 8), 60).convert("RGB")
    assert np.array_equal(np.asarray(tensor_to_image(image_to_tensor(image))), np.asarray(image))


def test_pixel_limit_is_checked_from_the_header():
    data = png(Image.new("L", (3000, 2000)))
    with pytest.raises(ImageError, match="3000x2000 = 6000000 pixels; the limit is 5000000"):
        decode_image(data, max_pixels=5_000_000)


def _jpeg(image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def test_a_progressive_jpeg_counts_its_stored_pixels_and_a_thumbnail_does_not():
    """Decoded at 1/8 a 12 Mpx JPEG makes 0.19 Mpx, but a progressive one holds all 12 Mpx
    of coefficients: refused under a 5 Mpx limit. A baseline one with an EXIF thumbnail (a
    second scan inside APP1) is still one scan, decoded small."""
    from nst.imageio import jpeg_scans

    noise = np.random.default_rng(0).integers(90, 140, (300, 400, 3)).astype(np.uint8)
    big = Image.fromarray(noise).resize((4000, 3000))
    baseline, progressive = _jpeg(big, quality=30), _jpeg(big, quality=30, progressive=True)
    exif = b"Exif\x00\x00" + _jpeg(Image.fromarray(noise[:40, :60]))
    with_thumbnail = (
        baseline[:2] + b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif + baseline[2:]
    )
    assert jpeg_scans(baseline) == 1 and jpeg_scans(with_thumbnail) == 1
    assert jpeg_scans(progressive) == 2  # counted up to two: enough to know
    for data in (baseline, with_thumbnail):
        assert decode_image(data, max_pixels=5_000_000, needed_side=256).size == (500, 375)
    with pytest.raises(ImageError) as error:
        decode_image(progressive, max_pixels=5_000_000, needed_side=256)
    assert error.value.code == "image_too_large" and "progressive" in error.value.message
    assert decode_image(progressive, max_pixels=20_000_000, needed_side=256).size == (500, 375)
