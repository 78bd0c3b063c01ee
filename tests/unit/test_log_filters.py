"""Signed URLs are capabilities: the HTTP client's request log lines name the host only (issue 12, defect 10)."""

from __future__ import annotations

import logging

import httpx
import imagegen  # noqa: F401 - importing the package installs the filters, as every function does
import pytest

from tests.doubles.server import DoubleServer, Reply

SIGNED = "/images/alice/img_1.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F&X-Amz-Signature=deadbeef42"


def test_given_a_signed_url_when_httpx_logs_the_request_at_info_then_only_scheme_and_host_are_logged(
    caplog: pytest.LogCaptureFixture,
):
    # Given a server that answers a presigned GET
    server = DoubleServer(lambda request: Reply(200, b"png", {"content-type": "image/png"}))
    try:
        # When httpx fetches the signed URL with INFO logging on
        with caplog.at_level(logging.INFO, logger="httpx"):
            answer = httpx.get(f"{server.url}{SIGNED}")
    finally:
        server.close()

    # Then the request line is logged with the host, never the path or the signature
    assert answer.status_code == 200
    [line] = [record.getMessage() for record in caplog.records if record.name == "httpx"]
    assert line == f'HTTP Request: GET {server.url} "HTTP/1.1 200 OK"'
    assert "X-Amz-Signature" not in caplog.text
    assert "deadbeef42" not in caplog.text


def test_given_a_url_inside_an_httpcore_debug_line_when_logged_then_its_path_and_query_are_dropped(
    caplog: pytest.LogCaptureFixture,
):
    # Given a debug line that carries a redirect's Location header (httpcore logs response headers at DEBUG)
    with caplog.at_level(logging.DEBUG, logger="httpcore.http11"):
        logging.getLogger("httpcore.http11").debug(
            "receive_response_headers.complete return_value=%s",
            [(b"Location", b"https://acct.blob.core.windows.net/c/a.png?sv=1&sig=c2lnbmF0dXJl")],
        )

    # Then the URL keeps its scheme and host only
    assert "sig=" not in caplog.text
    assert "https://acct.blob.core.windows.net" in caplog.text
