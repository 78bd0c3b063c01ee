"""`imagegen providers` shows what GET /v1/providers says: latencies, a routing provider's routes on rows of their
own, and the video chain (the view itself is tested in tests/integration/keys_and_health/test_providers.py)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from imagegen.client import commands
from imagegen.client.views import Output


class ChainAnswer:
    """What ApiClient.providers() returns: the body of GET /v1/providers."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def providers(self) -> dict[str, Any]:
        return self.body


def test_given_latencies_routes_and_a_video_chain_when_providers_runs_then_each_has_its_row(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a chain with SiliconFlow's latencies known and Hugging Face trying two routes, one of them cooling down
    body = {
        "items": [
            {
                "provider": "siliconflow",
                "key_source": "user",
                "health": {"status": "ok", "checked_at": "2026-12-02T10:00:00Z"},
                "breaker": {"state": "closed"},
                "would_try": True,
                "reason": "your own key",
                "latency": {"p50_ms": 1200, "p95_ms": 3400, "samples": 40},
            },
            {
                "provider": "huggingface",
                "key_source": "deployment",
                "health": None,
                "breaker": {"state": "closed"},
                "would_try": True,
                "reason": "deployment key",
                "latency": None,
                "routes": [
                    {
                        "model": "black-forest-labs/FLUX.1-dev",
                        "route": "fal-ai",
                        "provider_model": "fal-ai/flux/dev",
                        "breaker": {"state": "open", "open_until": "2026-12-02T10:05:00Z"},
                        "reason": "circuit breaker open",
                        "latency": None,
                    },
                    {
                        "model": "black-forest-labs/FLUX.1-dev",
                        "route": "replicate",
                        "provider_model": "black-forest-labs/flux-dev",
                        "breaker": {"state": "closed"},
                        "reason": "would try",
                        "latency": {"p50_ms": 2500, "p95_ms": 6000, "samples": 12},
                    },
                ],
            },
        ],
        "video": [
            {
                "provider": "siliconflow",
                "key_source": "user",
                "health": {"status": "ok", "checked_at": "2026-12-02T10:00:00Z"},
                "breaker": {"state": "closed"},
                "would_try": True,
                "reason": "your own key",
                "latency": None,
            }
        ],
    }

    # When `imagegen providers` prints it off a terminal
    code = commands.providers(argparse.Namespace(json=False), ChainAnswer(body), Output())  # type: ignore[arg-type]

    # Then a row per provider with its p50/p95, and a row per route under Hugging Face with its own breaker
    rows = [row.split() for row in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert rows[0] == ["provider", "tried", "key", "health", "breaker", "p50/p95", "why"]
    assert rows[1][:7] == ["siliconflow", "yes", "user", "ok", "closed", "1.2/3.4", "s"]
    assert rows[2][:6] == ["huggingface", "yes", "deployment", "-", "closed", "-"]
    assert rows[3][:4] == ["via", "fal-ai", "open", "-"]
    assert " ".join(rows[3][4:]) == "black-forest-labs/FLUX.1-dev as fal-ai/flux/dev: circuit breaker open"
    assert rows[4][:5] == ["via", "replicate", "closed", "2.5/6.0", "s"]
    # And the video chain in a table of its own
    assert rows[5] == ["video", "provider", "tried", "key", "health", "breaker", "why"]
    assert rows[6] == ["siliconflow", "yes", "user", "ok", "closed", "your", "own", "key"]
    assert len(rows) == 7
