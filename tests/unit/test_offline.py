"""The placeholder drawing: deterministic, sized as asked, visibly different per prompt."""

from __future__ import annotations

import io

from imagegen.media.offline import render_placeholder
from PIL import Image, ImageStat


def test_given_same_inputs_when_rendered_twice_then_identical_png_of_requested_size():
    first = render_placeholder("a fox", 320, 200, seed=3)

    assert first == render_placeholder("a fox", 320, 200, seed=3)
    image = Image.open(io.BytesIO(first))
    assert (image.format, image.size) == ("PNG", (320, 200))


def test_given_other_prompt_or_seed_when_rendered_then_image_differs_and_is_not_uniform():
    base = render_placeholder("a fox", 128, 128, seed=1)

    assert base != render_placeholder("a hen", 128, 128, seed=1)
    assert base != render_placeholder("a fox", 128, 128, seed=2)
    stddev = ImageStat.Stat(Image.open(io.BytesIO(base)).convert("L")).stddev[0]
    assert stddev > 5
