"""Log filters: a URL in the HTTP client's log lines keeps its scheme and host only.

Signed storage URLs (presigned S3 GETs, Azure SAS links, provider result URLs) are capabilities: whoever reads one
can fetch the image until it expires, and some carry keys in their query. httpx logs every request's full URL at
INFO, and httpcore logs response headers (a redirect's Location) at DEBUG; CloudWatch keeps both for a month.
"""

from __future__ import annotations

import logging
import re

# scheme://host[:port] followed by a path, query or fragment: the part after the host goes.
_URL = re.compile(r"(?P<origin>\bhttps?://[^\s/?#'\"<>]+)[/?#][^\s'\"<>]*", re.IGNORECASE)
# A filter on a logger applies to that logger's own records only, not to its children's: each httpcore module logs
# under its own name.
FILTERED_LOGGERS = ("httpx", "httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy")


def host_only(text: str) -> str:
    return _URL.sub(r"\g<origin>", text)


class UrlHostOnly(logging.Filter):
    """Rewrites the record in place (the message is formatted here, once), so every handler sees the safe text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a malformed record is logging's own problem to report
        safe = host_only(message)
        if safe != message:
            record.msg, record.args = safe, None
        return True


_FILTER = UrlHostOnly()


def install() -> None:
    """Put the filter on the HTTP client loggers (idempotent)."""
    for name in FILTERED_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
