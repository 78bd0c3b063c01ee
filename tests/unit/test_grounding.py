"""Grounding's pure parts: the query from a prompt, the capped description, the grounded prompt's length."""

from __future__ import annotations

from imagegen.grounding import (
    MAX_PROMPT_CHARS,
    SearchAnswer,
    SearchHit,
    apply,
    description,
    grounded_prompt,
    subject_query,
)
from imagegen.models import ImageRequest


def test_given_prompt_with_style_words_when_queried_then_first_clause_is_the_subject():
    assert subject_query("Mount Fuji at dawn, ukiyo-e style; muted colours") == "Mount Fuji at dawn"
    assert subject_query("  The   Colosseum  ") == "The Colosseum"
    assert len(subject_query("word " * 100)) <= 200


def test_given_answer_with_newlines_when_described_then_whitespace_collapsed():
    answer = SearchAnswer(answer="  A tower.\n\nIn Paris.  ", results=[])

    assert description(answer) == "A tower. In Paris."
    assert description(SearchAnswer(answer=None, results=[SearchHit("t", "https://x", "  ")])) is None


def test_given_long_prompt_when_grounded_then_total_stays_within_the_prompt_limit():
    prompt = "p" * 1900

    out = grounded_prompt(prompt, "fact " * 60)

    assert len(out) <= MAX_PROMPT_CHARS
    assert out.startswith(prompt + ". fact")
    assert grounded_prompt("q" * 1990, "a long fact") == "q" * 1990


def test_given_recorded_grounding_when_applied_again_then_the_same_prompt():
    request = ImageRequest(prompt="A lighthouse!", grounding="web")

    assert apply(request, {"added": "It is white."}).prompt == "A lighthouse! It is white."
    assert apply(request, {"added": None}).prompt == "A lighthouse!"
    assert apply(request, None) is request
