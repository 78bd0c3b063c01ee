"""Image validation: decodes, format, size tolerance, blank/uniform, known placeholders."""

from __future__ import annotations

import io

import pytest
from imagegen.media.imaging import InvalidImage, dhash_bytes, validate_image
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
