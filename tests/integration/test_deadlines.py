"""Total deadlines hold while the answer's headers arrive: a server dripping header bytes cannot hold a fetch
or a webhook delivery past its budget (issue 12, defect 3)."""

from __future__ import annotations

import pytest
from imagegen.adapters.webhook_http import WebhookHttpSender
from imagegen.errors import UpstreamTimeout
from imagegen.media.fetch import FetchPolicy, SafeFetcher
from imagegen.webhooks.delivery import DeliveryFailed

from tests.doubles.drip import HEAD, DrippingServer

pytestmark = pytest.mark.integration


def test_given_a_server_dripping_header_bytes_when_fetched_with_a_1s_deadline_then_timeout_while_it_still_drips():
    # Given a server that sends one header byte every 0.2 s (each well inside the 5 s read timeout)
    policy = FetchPolicy(allow_private_networks=True, connect_timeout=5, read_timeout=5, total_timeout=1.0)
    with DrippingServer(byte_every=0.2) as server:
        # When a fetch with a total deadline of 1 s reads it
        with pytest.raises(UpstreamTimeout):
            SafeFetcher(policy).fetch_bytes(f"{server.url}/slow.png")
        # Then it gave up while the header was still arriving: far fewer bytes than the header holds were sent
        sent_when_refused = server.sent
    assert sent_when_refused < len(HEAD) // 4
    assert not server.finished


def test_given_a_receiver_dripping_header_bytes_when_a_webhook_is_posted_then_the_attempt_fails_within_its_budget():
    # Given a webhook receiver that drips its answer's header
    sender = WebhookHttpSender(allow_private=True, total_seconds=1.0)
    with DrippingServer(byte_every=0.2) as server:
        # When a delivery is attempted with a 1 s budget
        with pytest.raises(DeliveryFailed, match="did not answer in time"):
            sender.post(f"{server.url}/hook", b"{}", {"content-type": "application/json"})
        sent_when_refused = server.sent
    # Then the attempt ended while the receiver was still dripping
    assert sent_when_refused < len(HEAD) // 4
    assert not server.finished
