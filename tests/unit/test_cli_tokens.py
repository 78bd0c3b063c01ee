"""`imagegen tokens create --expires-in`: the lifetimes it takes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from imagegen.cli import parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3600s", timedelta(hours=1)),
        ("90m", timedelta(minutes=90)),
        ("12h", timedelta(hours=12)),
        ("30D", timedelta(days=30)),
    ],
)
def test_given_a_lifetime_when_parsed_then_the_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "0d", "30", "1w", "-5m", "1.5h", "d"])
def test_given_a_bad_lifetime_when_parsed_then_refused_naming_the_option(text):
    with pytest.raises(ValueError, match="--expires-in"):
        parse_duration(text)
