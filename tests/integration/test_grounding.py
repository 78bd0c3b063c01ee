"""Web grounding with tavily-python against a Tavily double on loopback: ok, 401, 432, 5xx, timeout, no key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from imagegen import wiring
from imagegen.adapters.tavily_search import TavilySearch
from imagegen.generation import ChainOutcome, RunContext
from imagegen.grounding import MAX_ADDED_CHARS, ground
from imagegen.models import ImageRequest
from imagegen.settings import WorkerSettings

from tests.conftest import Aws
from tests.doubles.generators import PlaceholderGenerator
from tests.doubles.tavily import TavilyDouble

pytestmark = pytest.mark.integration

KEY = "tvly-test-0123456789"
PROMPT = "the Eiffel Tower at night, watercolor"
WEB = ImageRequest(prompt=PROMPT, grounding="web", width=64, height=64)


@pytest.fixture
def tavily() -> Iterator[TavilyDouble]:
    with TavilyDouble() as double:
        yield double


def _search(double: TavilyDouble, timeout: float = 5.0) -> TavilySearch:
    return TavilySearch(KEY, double.url, timeout_seconds=timeout)


def test_given_tavily_answers_when_grounded_then_fact_appended_and_query_text_sources_recorded(tavily):
    result = ground(WEB, _search(tavily))

    assert result.warnings == []
    assert result.prompt == PROMPT + ". " + tavily.answer
    assert result.info == {
        "mode": "web",
        "query": "the Eiffel Tower at night",
        "added": tavily.answer,
        "sources": [
            "https://en.wikipedia.org/wiki/Eiffel_Tower",
            "https://www.toureiffel.paris/en/the-monument/history",
        ],
        "status": "ok",
    }
    [seen] = tavily.seen
    assert (seen.path, seen.body["query"], seen.body["max_results"]) == ("/search", "the Eiffel Tower at night", 3)
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert "x-tavily-access-mode" not in seen.headers


def test_given_long_answer_when_grounded_then_added_text_is_capped(tavily):
    tavily.answer = "word " * 200

    result = ground(WEB, _search(tavily))

    assert result.info is not None
    assert 0 < len(result.info["added"]) <= MAX_ADDED_CHARS
    assert len(result.prompt) <= len(PROMPT) + 2 + MAX_ADDED_CHARS


def test_given_no_answer_when_grounded_then_best_result_text_is_used(tavily):
    tavily.answer = None

    result = ground(WEB, _search(tavily))

    assert result.info is not None
    assert result.info["added"].startswith("The Eiffel Tower is a wrought-iron lattice tower")


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (401, "API key (401)"),
        (429, "rate limit reached (429)"),
        (432, "plan usage limit exceeded (432)"),
        (433, "pay-as-you-go limit exceeded (433)"),
        (500, "Tavily answered 500"),
    ],
)
def test_given_tavily_refuses_when_grounded_then_warning_and_plain_prompt(tavily, status, words):
    tavily.mode = status

    result = ground(WEB, _search(tavily))

    assert result.prompt == PROMPT
    [warning] = result.warnings
    assert words in warning
    assert "plain prompt" in warning
    assert KEY not in warning
    assert result.info is not None
    assert (result.info["status"], result.info["added"], result.info.get("status_code")) == (
        "search_failed",
        None,
        status,
    )


def test_given_tavily_hangs_when_grounded_then_timeout_warning_and_plain_prompt(tavily):
    tavily.mode = "hang"

    result = ground(WEB, _search(tavily, timeout=0.5))

    assert result.prompt == PROMPT
    assert result.warnings == [
        "web grounding skipped (Tavily did not answer within 0.5 s); the image was generated from the plain prompt"
    ]


def test_given_no_key_when_grounded_then_warning_and_no_request_is_sent(tavily, aws: Aws, monkeypatch):
    monkeypatch.setenv("TAVILY_BASE_URL", tavily.url)
    monkeypatch.delenv("TAVILY_API_KEY", raising=False)
    settings = WorkerSettings.from_env({"TABLE_NAME": "t", "BUCKET_NAME": "b", "QUEUE_URL": "q"})

    search = wiring.web_search(settings)
    result = ground(WEB, search)

    assert search is None
    assert result.prompt == PROMPT
    assert result.warnings == [
        "web grounding skipped (no Tavily API key is configured); the image was generated from the plain prompt"
    ]
    assert tavily.seen == []


def test_given_grounding_none_when_grounded_then_nothing_is_searched(tavily):
    result = ground(WEB.model_copy(update={"grounding": "none"}), _search(tavily))

    assert (result.prompt, result.info, result.warnings) == (PROMPT, None, [])
    assert tavily.seen == []


class RecordingGenerator(PlaceholderGenerator):
    def __init__(self) -> None:
        self.prompts: list[str] = []

    def start(self, request: ImageRequest, ctx: RunContext) -> ChainOutcome:
        self.prompts.append(request.prompt)
        return super().start(request, ctx)


@pytest.fixture
def recording(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> RecordingGenerator:
    generator = RecordingGenerator()
    monkeypatch.setattr(wiring, "generator", lambda settings: generator)
    wiring.reset()
    return generator


@pytest.mark.parametrize("mode", ["ok", 401, "no key"])
def test_given_grounded_job_when_worker_runs_then_job_succeeds_and_records_grounding(
    call_api, run_worker, aws: Aws, tavily, recording, monkeypatch, mode
):
    monkeypatch.setenv("TAVILY_BASE_URL", tavily.url)
    if mode != "no key":
        monkeypatch.setenv("TAVILY_API_KEY", KEY)
        tavily.mode = mode
    wiring.reset()
    created = call_api("POST", "/v1/images", body={"prompt": PROMPT, "grounding": "web", "width": 64, "height": 64})

    run_worker()
    job = call_api("GET", f"/v1/images/{created.body['id']}").body

    assert job["status"] == "succeeded"
    assert job["request"]["prompt"] == PROMPT
    assert job["grounding"]["query"] == "the Eiffel Tower at night"
    if mode == "ok":
        assert recording.prompts == [PROMPT + ". " + tavily.answer]
        assert job["grounding"]["added"] == tavily.answer
        assert job["grounding"]["sources"][0] == "https://en.wikipedia.org/wiki/Eiffel_Tower"
        assert not [w for w in job["warnings"] if "grounding" in w]
    else:
        assert recording.prompts == [PROMPT]
        assert job["grounding"]["added"] is None
        [warning] = [w for w in job["warnings"] if "grounding" in w]
        assert ("401" in warning) if mode == 401 else ("no Tavily API key" in warning)
