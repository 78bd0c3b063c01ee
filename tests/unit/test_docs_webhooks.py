"""The receiver snippet in docs/webhooks.md runs, and accepts what imagegen signs (and nothing else)."""

from __future__ import annotations

import re
import time

from imagegen.webhooks import new_secret, signature_header

from tests.conftest import ROOT


def _snippet() -> dict[str, object]:
    text = (ROOT / "docs" / "webhooks.md").read_text()
    [code] = [block for block in re.findall(r"```python\n(.*?)```", text, re.DOTALL) if "def verify_webhook" in block]
    namespace: dict[str, object] = {}
    exec(compile(code, "docs/webhooks.md", "exec"), namespace)  # noqa: S102 - our own documentation's code
    return namespace


def test_given_signed_delivery_when_doc_snippet_verifies_then_accepted_and_tampering_rejected():
    verify = _snippet()["verify_webhook"]
    old, new = new_secret(), new_secret()
    body = b'{"type":"job.succeeded","data":{"id":"img_1"}}'
    now = int(time.time())
    headers = {
        "webhook-id": "msg_img_1",
        "webhook-timestamp": str(now),
        "webhook-signature": signature_header([new, old], "msg_img_1", now, body),
    }

    assert verify(new, headers, body) is True  # type: ignore[operator]
    assert verify(old, headers, body) is True  # type: ignore[operator]
    assert verify(new_secret(), headers, body) is False  # type: ignore[operator]
    assert verify(new, headers, body.replace(b"succeeded", b"failed")) is False  # type: ignore[operator]
    assert verify(new, {**headers, "webhook-id": "msg_other"}, body) is False  # type: ignore[operator]
    stale = {**headers, "webhook-timestamp": str(now - 600)}
    assert verify(new, stale, body) is False  # type: ignore[operator]
