"""Key checks that meet an answer they cannot read learn nothing about the key: `unreachable`, never an exception."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
from imagegen.keys import check
from imagegen.keys.check import KeyChecker
from imagegen.providers import REGISTRY, siliconflow
from imagegen.providers.settings import ProvidersSettings
from pydantic import SecretStr

KEY = SecretStr("sk-unitSECRETkeycheck01")
SETTINGS = ProvidersSettings.from_environ({})
USER_INFO = {"code": 20000, "message": "OK", "status": True, "data": {"status": "normal", "totalBalance": "3.5"}}


def checker(handler: httpx.MockTransport) -> KeyChecker:
    return KeyChecker(httpx.Client(transport=handler), SETTINGS)


def test_given_a_broken_gzip_answer_when_checked_then_unreachable() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        # A stream, not content: httpx decodes what it reads from the wire, as from a real server.
        body = httpx.ByteStream(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xff\xfe\xfd this is not deflate data")
        return httpx.Response(200, stream=body, headers={"content-encoding": "gzip"})

    result = checker(httpx.MockTransport(answer)).check("siliconflow", KEY)

    assert result.status == "unreachable" and "could not be decoded" in result.detail


def test_given_a_parser_that_trips_when_checked_then_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(response: httpx.Response) -> None:
        raise KeyError("data")

    key_spec = REGISTRY["siliconflow"].key
    assert key_spec is not None
    monkeypatch.setitem(
        REGISTRY,
        "siliconflow",
        replace(siliconflow.SPEC, key=replace(key_spec, check=replace(key_spec.check, parse=broken))),
    )

    result = check.parse_response("siliconflow", httpx.Response(200, json=USER_INFO))

    assert (result.status, result.detail) == ("unreachable", "unreadable answer from the key-check endpoint (KeyError)")


def test_given_a_working_key_when_checked_then_the_listing_follows_and_a_failed_listing_is_no_listing() -> None:
    listings = [httpx.Response(200, json={"data": [{"id": "Kwai-Kolors/Kolors"}]}), httpx.Response(503, json={})]
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json=USER_INFO) if request.url.path.endswith("/user/info") else listings.pop(0)

    first = checker(httpx.MockTransport(answer)).check("siliconflow", KEY)
    second = checker(httpx.MockTransport(answer)).check("siliconflow", KEY)

    assert (first.status, first.models) == ("ok", ("Kwai-Kolors/Kolors",))
    assert (second.status, second.models) == ("ok", None)
    assert seen == ["/v1/user/info", "/v1/models", "/v1/user/info", "/v1/models"]


def test_given_an_invalid_key_when_checked_then_no_listing_is_asked_for() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(401, json="Invalid token")

    result = checker(httpx.MockTransport(answer)).check("siliconflow", KEY)

    assert (result.status, result.models, seen) == ("invalid", None, ["/v1/user/info"])
