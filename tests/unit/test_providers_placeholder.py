"""Placeholder provider: deterministic, sized, varied by prompt and seed, offline."""

from __future__ import annotations

from imagegen.media.imaging import validate_image
from imagegen.models import ImageRequest
from imagegen.providers import placeholder
from imagegen.providers.placeholder import PlaceholderSettings

SETTINGS = PlaceholderSettings()


def _render(**kwargs: object) -> bytes:
    request = ImageRequest.model_validate({"prompt": "a quiet harbour at dawn", **kwargs})
    return placeholder.render(placeholder.plan(request, None, SETTINGS)).data


class TestPlaceholder:
    def test_given_the_same_prompt_and_seed_when_rendered_twice_then_the_bytes_are_identical(self) -> None:
        assert _render(seed=1, width=320, height=200) == _render(seed=1, width=320, height=200)

    def test_given_another_seed_when_rendered_then_the_image_differs(self) -> None:
        assert _render(seed=1, width=320, height=200) != _render(seed=2, width=320, height=200)

    def test_given_a_size_when_rendered_then_a_valid_png_of_that_size(self) -> None:
        check = validate_image(_render(width=320, height=200), expected_width=320, expected_height=200)
        assert (check.width, check.height, check.content_type) == (320, 200, "image/png")
