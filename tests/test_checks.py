"""Quality checks on delivered files: size, alpha, brand palette (CIEDE2000) and dHash."""

from __future__ import annotations

import io
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from pipeline import postprocess
from pipeline.checks import (
    Check,
    check_alpha,
    check_dimensions,
    check_palette,
    delta_e_2000,
    dominant_colors,
    hamming,
    near_duplicates,
    perceptual_hash,
    run_checks,
)
from pipeline.colors import hex_to_rgb, rgb_to_lab
from pipeline.postprocess import probe

BRAND = {"ember": "#E4572E", "ash": "#2B2D42", "gold": "#F2C14E", "sky": "#8D99AE"}


def to_bytes(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def solid(hex_color: str, size: tuple[int, int] = (64, 64), fmt: str = "PNG") -> bytes:
    return to_bytes(Image.new("RGB", size, hex_to_rgb(hex_color)), fmt)


def scene(size: int = 256) -> Image.Image:
    """A picture with structure in every 9x8 cell: a gradient under a few shapes."""
    image = Image.new("RGB", (size, size))
    image.putdata([(x, y, (x * y) % 256) for y in range(size) for x in range(size)])
    draw = ImageDraw.Draw(image)
    s = size / 256
    draw.ellipse((30 * s, 40 * s, 120 * s, 150 * s), fill=(240, 230, 20))
    draw.rectangle((150 * s, 20 * s, 230 * s, 90 * s), fill=(10, 10, 80))
    draw.polygon([(60 * s, 250 * s), (200 * s, 160 * s), (250 * s, 240 * s)], fill=(200, 40, 40))
    return image


# Sharma, Wu and Dalal (2005), "The CIEDE2000 color-difference formula: implementation
# notes, supplementary test data, and mathematical observations", Table 1: all 34 pairs.
SHARMA_PAIRS = [
    ((50.0000, 2.6772, -79.7751), (50.0000, 0.0000, -82.7485), 2.0425),
    ((50.0000, 3.1571, -77.2803), (50.0000, 0.0000, -82.7485), 2.8615),
    ((50.0000, 2.8361, -74.0200), (50.0000, 0.0000, -82.7485), 3.4412),
    ((50.0000, -1.3802, -84.2814), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, -1.1848, -84.8006), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, -0.9009, -85.5211), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, 0.0000, 0.0000), (50.0000, -1.0000, 2.0000), 2.3669),
    ((50.0000, -1.0000, 2.0000), (50.0000, 0.0000, 0.0000), 2.3669),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0009), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0010), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0011), 7.2195),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0012), 7.2195),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0009, -2.4900), 4.8045),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0010, -2.4900), 4.8045),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0011, -2.4900), 4.7461),
    ((50.0000, 2.5000, 0.0000), (50.0000, 0.0000, -2.5000), 4.3065),
    ((50.0000, 2.5000, 0.0000), (73.0000, 25.0000, -18.0000), 27.1492),
    ((50.0000, 2.5000, 0.0000), (61.0000, -5.0000, 29.0000), 22.8977),
    ((50.0000, 2.5000, 0.0000), (56.0000, -27.0000, -3.0000), 31.9030),
    ((50.0000, 2.5000, 0.0000), (58.0000, 24.0000, 15.0000), 19.4535),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.1736, 0.5854), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.2972, 0.0000), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 1.8634, 0.5757), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.2592, 0.3350), 1.0000),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
    ((61.2901, 3.7196, -5.3901), (61.4292, 2.2480, -4.9620), 1.8731),
    ((35.0831, -44.1164, 3.7933), (35.0232, -40.0716, 1.5901), 1.8645),
    ((22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
    ((36.4612, 47.8580, 18.3852), (36.2715, 50.5065, 21.2231), 1.4146),
    ((90.8027, -2.0831, 1.4410), (91.1528, -1.6435, 0.0447), 1.4441),
    ((90.9257, -0.5406, -0.9208), (88.6381, -0.8985, -0.7239), 1.5381),
    ((6.7747, -0.2908, -2.4247), (5.8714, -0.0985, -2.2286), 0.6377),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


@pytest.mark.parametrize(("lab1", "lab2", "expected"), SHARMA_PAIRS)
def test_ciede2000_matches_the_published_pairs(lab1, lab2, expected):
    assert round(delta_e_2000(lab1, lab2), 4) == expected
    assert round(delta_e_2000(lab2, lab1), 4) == expected


lab_values = st.tuples(
    st.floats(0, 100, allow_nan=False),
    st.floats(-128, 127, allow_nan=False),
    st.floats(-128, 127, allow_nan=False),
)


@settings(max_examples=500, deadline=None)
@given(lab_values, lab_values)
def test_ciede2000_is_a_symmetric_nonnegative_difference(lab1, lab2):
    forward = delta_e_2000(lab1, lab2)
    assert forward >= 0
    assert forward == pytest.approx(delta_e_2000(lab2, lab1), rel=1e-9, abs=1e-9)
    assert delta_e_2000(lab1, lab1) == 0


def test_check_as_dict_has_fixed_keys():
    check = Check("size", True, "8x8 as asked")
    assert check.as_dict() == {"name": "size", "ok": True, "detail": "8x8 as asked", "value": None}


def test_dimensions_as_asked_or_not():
    data = solid("#E4572E", (1000, 1000))
    assert check_dimensions(data, 1000, 1000) == Check("size", True, "1000x1000 as asked")
    assert check_dimensions(probe(data), 1024, 1024) == Check(
        "size", False, "got 1000x1000, asked 1024x1024"
    )


def test_alpha_present_with_its_share():
    image = Image.new("RGBA", (10, 10), (228, 87, 46, 255))
    image.paste((0, 0, 0, 0), (0, 0, 10, 3))  # 30 pixels fully clear
    image.paste((228, 87, 46, 128), (0, 3, 10, 4))  # 10 half transparent
    check = check_alpha(to_bytes(image))
    assert check == Check("alpha", True, "40.0% of pixels transparent (30.0% fully)", 0.4)


def test_alpha_missing_on_opaque_files():
    assert check_alpha(solid("#E4572E", fmt="JPEG")) == Check(
        "alpha", False, "no transparent pixels (mode RGB)", 0.0
    )
    opaque_rgba = to_bytes(Image.new("RGBA", (8, 8), (1, 2, 3, 255)))
    assert check_alpha(opaque_rgba).ok is False


def test_alpha_share_of_a_single_pixel_is_not_rounded_away():
    image = Image.new("RGBA", (100, 100), (9, 9, 9, 255))
    image.putpixel((5, 5), (9, 9, 9, 254))
    assert check_alpha(to_bytes(image)).detail == "<0.1% of pixels transparent (0.0% fully)"


def test_dominant_colors_shares_ignore_fully_transparent_pixels():
    image = Image.new("RGBA", (100, 100), (0, 255, 0, 0))  # hidden green: never counted
    image.paste((228, 87, 46, 255), (0, 0, 75, 40))  # 3000 ember
    image.paste((43, 45, 66, 255), (0, 40, 25, 80))  # 1000 ash
    colors = dominant_colors(to_bytes(image))
    assert colors == [((228, 87, 46), 0.75), ((43, 45, 66), 0.25)]
    assert dominant_colors(to_bytes(Image.new("RGBA", (9, 9), (0, 0, 0, 0)))) == []


def test_dominant_color_shares_sum_to_one():
    colors = dominant_colors(to_bytes(scene()), k=5)
    assert 1 <= len(colors) <= 5
    assert sum(share for _, share in colors) == pytest.approx(1.0)
    assert [share for _, share in colors] == sorted((share for _, share in colors), reverse=True)


def test_palette_on_a_solid_brand_color_is_zero_and_ok():
    check = check_palette(solid("#E4572E"), BRAND)
    assert check == Check(
        "palette", True, "mean ΔE 0.0 to the brand palette (worst: #E4572E ΔE 0.0 to ember)", 0.0
    )


def test_palette_far_off_color_fails_and_names_it():
    check = check_palette(solid("#00FF00"), BRAND)
    assert check is not None
    assert not check.ok
    expected = min(
        delta_e_2000(rgb_to_lab((0, 255, 0)), rgb_to_lab(hex_to_rgb(v))) for v in BRAND.values()
    )
    assert check.value == pytest.approx(expected)
    assert check.detail == (
        f"mean ΔE {expected:.1f} to the brand palette (worst: #00FF00 ΔE {expected:.1f} to gold)"
    )


def test_palette_weights_by_share_and_skips_small_colors():
    image = Image.new("RGB", (100, 100), hex_to_rgb("#2B2D42"))  # ash: 60%
    image.paste(hex_to_rgb("#F2C14E"), (0, 0, 100, 35))  # gold: 35%
    image.paste((0, 255, 0), (0, 35, 100, 40))  # green: 5%, under the 10% bar
    check = check_palette(to_bytes(image), ["#E4572E", "#2B2D42", "#f2c14e"])
    assert check is not None
    assert check.ok
    assert check.value == pytest.approx(0.0)
    assert check.detail == "mean ΔE 0.0 to the brand palette (worst: #F2C14E ΔE 0.0 to #F2C14E)"


def test_palette_tolerance_decides():
    near = solid("#E85A30")  # a few ΔE from ember
    check = check_palette(near, BRAND, tolerance=0.5)
    assert check is not None
    assert check.value is not None
    assert 0.5 < check.value < 5
    assert not check.ok
    assert check_palette(near, BRAND, tolerance=5) == Check(
        "palette", True, check.detail, check.value
    )


def test_palette_empty_means_no_check():
    assert check_palette(solid("#00FF00"), []) is None
    assert check_palette(solid("#00FF00"), {}) is None


def test_dhash_identical_images_are_zero_apart():
    data = to_bytes(scene())
    assert hamming(perceptual_hash(data), perceptual_hash(to_bytes(scene()))) == 0
    assert perceptual_hash(data) < 1 << 64


def test_dhash_noised_resized_copy_is_close_and_other_picture_is_far():
    original = scene()
    rng = random.Random(7)
    noisy = original.resize((200, 200), Image.Resampling.BILINEAR)
    noise = bytes(max(0, min(255, c + rng.randint(-12, 12))) for c in noisy.tobytes())
    noisy = Image.frombytes("RGB", noisy.size, noise)
    base = perceptual_hash(to_bytes(original))
    assert hamming(base, perceptual_hash(to_bytes(noisy, "JPEG", quality=70))) <= 4
    other = original.transpose(Image.Transpose.ROTATE_90)
    assert hamming(base, perceptual_hash(to_bytes(other))) >= 20


def test_dhash_ignores_colors_hidden_under_transparent_pixels():
    red = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    blue = Image.new("RGBA", (64, 64), (0, 0, 255, 0))
    for image in (red, blue):
        ImageDraw.Draw(image).ellipse((10, 10, 40, 50), fill=(20, 20, 20, 255))
    assert perceptual_hash(to_bytes(red)) == perceptual_hash(to_bytes(blue))


def test_near_duplicates_pairs_sorted():
    hashes = {"c": 0b1111, "a": 0, "b": 0b11, "d": (1 << 64) - 1}
    assert near_duplicates(hashes, threshold=2) == [("a", "b", 2), ("b", "c", 2)]
    assert near_duplicates(hashes, threshold=4) == [("a", "b", 2), ("a", "c", 4), ("b", "c", 2)]
    assert near_duplicates(hashes, threshold=-1) == []
    assert near_duplicates({}, threshold=6) == []


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.text(max_size=3), st.integers(0, (1 << 64) - 1), max_size=12),
    st.integers(0, 70),
    st.data(),
)
def test_near_duplicates_equals_the_full_scan(hashes, threshold, data):
    if hashes:  # plant near copies so the interesting case happens
        key = data.draw(st.sampled_from(sorted(hashes)))
        flips = data.draw(st.lists(st.integers(0, 63), max_size=threshold + 1))
        value = hashes[key]
        for bit in flips:
            value ^= 1 << bit
        hashes[key + "~"] = value
    expected = sorted(
        (a, b, hamming(hashes[a], hashes[b]))
        for a, b in itertools.combinations(sorted(hashes), 2)
        if hamming(hashes[a], hashes[b]) <= threshold
    )
    assert near_duplicates(hashes, threshold) == expected


def test_run_checks_combines_them():
    image = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    image.paste((228, 87, 46, 255), (0, 0, 32, 16))
    data = to_bytes(image, "WEBP", lossless=True)
    checks = run_checks(data, width=32, height=32, expect_alpha=True, palette=BRAND)
    assert [c.name for c in checks] == ["size", "alpha", "palette"]
    assert all(c.ok for c in checks), checks
    assert checks[1].value == 0.5
    plain = run_checks(data, width=64, height=32, expect_alpha=False, palette=[])
    assert plain == [Check("size", False, "got 32x32, asked 64x32")]


def test_a_sample_gives_the_dominant_colors_of_the_full_image():
    """A 1024x1024 image is sampled at 256 px by a box average, the same first step as
    shrinking it to 128 px directly: the dominant colors are exactly those of the full
    image (converted, shrunk, quantized the way checks did before samples)."""
    image = scene(1024)
    full = image.convert("RGBA")
    full.thumbnail((128, 128), Image.Resampling.BOX)
    quantized = full.convert("RGB").quantize(
        5, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    flat = quantized.getpalette() or []
    expected = sorted(
        (
            ((flat[3 * i], flat[3 * i + 1], flat[3 * i + 2]), n / (128 * 128))
            for n, i in quantized.getcolors() or []
        ),
        key=lambda item: (-item[1], item[0]),
    )
    sample = postprocess.sample(image)
    assert sample.small.size == (256, 256)
    assert dominant_colors(sample) == expected
    assert dominant_colors(to_bytes(image)) == expected


def test_a_sample_reads_alpha_at_full_resolution():
    """One clear pixel in 1024x1024 is averaged away by any shrink; the sample's alpha
    histogram is the full image's, so the alpha check still finds it."""
    image = Image.new("RGBA", (1024, 1024), (200, 30, 30, 255))
    image.putpixel((517, 3), (0, 0, 0, 0))
    sample = postprocess.sample(image)
    assert sample.alpha is not None
    assert (sample.alpha[0], sum(sample.alpha)) == (1, 1024 * 1024)
    assert sample.info.has_alpha
    assert check_alpha(sample) == check_alpha(to_bytes(image))
    assert check_alpha(sample).ok is True


def test_a_jpeg_is_sampled_from_a_shrunk_decode_with_its_full_size():
    """A JPEG is decoded at a DCT scale (Image.draft), yet the sample reports the file's
    own size and format, so the size check judges the file and not the decode."""
    data = to_bytes(scene(1024).resize((1600, 1200)), "JPEG", quality=90)
    sample = postprocess.sample_bytes(data)
    assert (sample.info.width, sample.info.height, sample.info.format) == (1600, 1200, "jpeg")
    assert sample.small.size == (400, 300)  # decoded at 1/4 scale: 1/16 of the pixels
    assert run_checks(sample, width=1600, height=1200, expect_alpha=False, palette=()) == [
        Check("size", True, "1600x1200 as asked")
    ]
    full = perceptual_hash(Image.open(io.BytesIO(data)).convert("RGB"))
    assert hamming(perceptual_hash(sample), full) <= 4


def test_sampling_refuses_what_decoding_refuses():
    """A sample decodes through the same gate as delivery: not an image, or a damaged
    GIF, is a clear error that names no Python object."""
    with pytest.raises(postprocess.ImageDecodeError, match="not a png, webp or jpeg"):
        postprocess.sample_bytes(b"BM" + b"\x00" * 64)
    with pytest.raises(postprocess.ImageDecodeError) as damaged:
        postprocess.sample_bytes(b"GIF89a" + b"\x00" * 64)
    assert str(damaged.value) == "cannot read the GIF (70 bytes): it starts as a GIF but is damaged"
