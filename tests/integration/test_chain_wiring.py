"""The chain as the worker would build it: settings from an environ mapping, breaker table on moto's server."""

from __future__ import annotations

import time
from typing import Any

import pytest
from imagegen.adapters.breaker_store import DynamoBreakerStore
from imagegen.chain.wiring import build_chain, provider_client
from imagegen.generation import ChainSucceeded, RunContext
from imagegen.media.fetch import SafeFetcher
from imagegen.models import ImageRequest
from imagegen.providers.settings import ProvidersSettings

from tests.doubles.key_stores import chain_keys

pytest_plugins = ["tests.doubles.fixtures"]
pytestmark = pytest.mark.integration


class TestWiring:
    def test_given_an_environ_when_the_chain_is_built_then_it_serves_and_writes_no_breaker_item_when_healthy(
        self, safe_fetcher: SafeFetcher, dynamodb_client: Any, breaker_table: str
    ) -> None:
        settings = ProvidersSettings.from_environ({"IMAGEGEN_PROVIDERS": "placeholder"})
        chain = build_chain(
            settings,
            keys=chain_keys(settings),
            fetcher=safe_fetcher,
            breaker=DynamoBreakerStore(breaker_table, dynamodb_client),
        )
        ctx = RunContext(job_id="j", user_id="u", deadline=time.monotonic() + 5)
        outcome = chain.start(ImageRequest(prompt="a boat", width=256, height=128), ctx)
        assert isinstance(outcome, ChainSucceeded)
        assert (outcome.image.provider, outcome.image.width, outcome.image.height) == ("placeholder", 256, 128)
        assert dynamodb_client.scan(TableName=breaker_table)["Items"] == []

    def test_given_the_provider_client_then_it_does_not_follow_redirects(self) -> None:
        client = provider_client()
        assert client.follow_redirects is False
        client.close()

    def test_given_an_unknown_provider_in_the_default_chain_then_settings_refuse_it(self) -> None:
        with pytest.raises(ValueError, match="unknown provider"):
            ProvidersSettings.from_environ({"IMAGEGEN_PROVIDERS": "siliconflow,dalle"})
