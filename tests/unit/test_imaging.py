"""Image validation: decodes, format, size tolerance, blank/uniform, known placeholders."""

from __future__ import annotations

import io

import pytest
from imagegen.media.imaging import InvalidImage, dhash_bytes, fit_to_size, validate_image
from PIL import Image

from tests.doubles.images import blank, branded_placeholder, picture


class TestValidateImage:
    @pytest.mark.parametrize(
        ("fmt", "content_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
    )
    def test_given_a_real_picture_when_validated_then_size_and_type_are_returned(
        self, fmt: str, content_type: str
    ) -> None:
        check = validate_image(picture(640, 480, "x", fmt=fmt), expected_width=640, expected_height=480)
        assert (check.width, check.height, check.content_type) == (640, 480, content_type)

    def test_given_a_gif_when_validated_then_unsupported_format(self) -> None:
        buffer = io.BytesIO()
        Image.open(io.BytesIO(picture(64, 64, "x"))).save(buffer, format="GIF")
        with pytest.raises(InvalidImage, match="unsupported image format GIF"):
            validate_image(buffer.getvalue())

    def test_given_html_bytes_when_validated_then_does_not_decode(self) -> None:
        with pytest.raises(InvalidImage, match="does not decode"):
            validate_image(b"<html>rate limited</html>")

    def test_given_empty_bytes_when_validated_then_empty(self) -> None:
        with pytest.raises(InvalidImage, match="empty body"):
            validate_image(b"")

    @pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (120, 30, 200)])
    def test_given_a_uniform_image_when_validated_then_blank(self, colour: tuple[int, int, int]) -> None:
        with pytest.raises(InvalidImage, match="blank or uniform"):
            validate_image(blank(256, 256, colour))

    def test_given_a_size_within_tolerance_when_validated_then_accepted(self) -> None:
        check = validate_image(picture(1024, 960, "x"), expected_width=1000, expected_height=1000)
        assert (check.width, check.height) == (1024, 960)

    def test_given_a_size_beyond_tolerance_when_validated_then_rejected(self) -> None:
        with pytest.raises(InvalidImage, match="width 512 is too far from the 1024 asked for"):
            validate_image(picture(512, 1024, "x"), expected_width=1024, expected_height=1024)

    def test_given_the_placeholder_sha256_when_validated_then_rejected(self) -> None:
        data = branded_placeholder()
        import hashlib

        with pytest.raises(InvalidImage, match="known placeholder"):
            validate_image(data, known_placeholders=[hashlib.sha256(data).hexdigest()])

    def test_given_a_reencoded_placeholder_when_validated_against_its_dhash_then_rejected(self) -> None:
        reencoded = io.BytesIO()
        Image.open(io.BytesIO(branded_placeholder())).save(reencoded, format="PNG")
        with pytest.raises(InvalidImage, match="known placeholder"):
            validate_image(reencoded.getvalue(), known_placeholders=[dhash_bytes(branded_placeholder())])

    def test_given_a_real_picture_when_checked_against_the_placeholder_dhash_then_accepted(self) -> None:
        check = validate_image(picture(1024, 1024, "fox"), known_placeholders=[dhash_bytes(branded_placeholder())])
        assert check.width == 1024


def _banded(width: int, height: int, fmt: str = "PNG") -> bytes:
    """Green in the middle, a red band along the top and left edges, blue along the bottom and right ones."""
    image = Image.new("RGB", (width, height), (0, 200, 0))
    band_w, band_h = width // 8, height // 8
    image.paste((255, 0, 0), (0, 0, width, band_h))
    image.paste((255, 0, 0), (0, 0, band_w, height))
    image.paste((0, 0, 255), (0, height - band_h, width, height))
    image.paste((0, 0, 255), (width - band_w, 0, width, height))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


class TestFitToSize:
    def test_given_the_size_asked_for_when_fitted_then_the_bytes_are_kept_as_they_came(self) -> None:
        data = picture(768, 512, "same", fmt="JPEG")

        fitted = fit_to_size(data, 768, 512)

        assert fitted.data is data
        assert (fitted.width, fitted.height, fitted.source_width, fitted.source_height) == (768, 512, 768, 512)
        assert fitted.content_type == "image/jpeg"

    def test_given_a_square_when_fitted_to_3_2_then_the_centre_is_kept_and_the_size_is_exact(self) -> None:
        # Given a 1024x1024 image whose top and bottom eighths are bands (the 3:2 crop removes 1/6 of each side)
        data = _banded(1024, 1024)

        # When it is fitted to 768x512
        fitted = fit_to_size(data, 768, 512)

        # Then it is exactly 768x512, the horizontal bands are cropped away and the vertical ones kept
        with Image.open(io.BytesIO(fitted.data)) as image:
            assert (image.format, image.size) == ("PNG", (768, 512))
            rgb = image.convert("RGB")
            top, bottom = rgb.getpixel((384, 1)), rgb.getpixel((384, 510))
            left, right = rgb.getpixel((1, 256)), rgb.getpixel((766, 256))
        assert top[1] > 150 and bottom[1] > 150  # green: the centre, not the red or blue band
        assert left[0] > 200 and right[2] > 200
        assert (fitted.source_width, fitted.source_height, fitted.content_type) == (1024, 1024, "image/png")

    @pytest.mark.parametrize(("fmt", "content_type"), [("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
    def test_given_a_lossy_format_when_resized_then_it_stays_in_its_format(self, fmt: str, content_type: str) -> None:
        fitted = fit_to_size(picture(1024, 704, "lossy", fmt=fmt), 1000, 700)

        with Image.open(io.BytesIO(fitted.data)) as image:
            assert (image.format, image.size) == (fmt, (1000, 700))
        assert fitted.content_type == content_type

    def test_given_a_palette_png_with_transparency_when_resized_then_it_keeps_its_alpha(self) -> None:
        image = Image.new("P", (200, 100), 0)
        image.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
        image.paste(1, (50, 0, 150, 100))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", transparency=0)

        fitted = fit_to_size(buffer.getvalue(), 64, 64)

        with Image.open(io.BytesIO(fitted.data)) as out:
            assert (out.mode, out.size) == ("RGBA", (64, 64))

    def test_given_bytes_that_are_no_image_when_fitted_then_invalid_image(self) -> None:
        with pytest.raises(InvalidImage, match="does not decode"):
            fit_to_size(b"<html>oops</html>", 64, 64)
