"""Pollinations double: keyless legacy GET /prompt/{prompt} and keyed gen GET /image/{prompt}; image bytes back."""

from __future__ import annotations

from tests.doubles.images import branded_placeholder, picture
from tests.doubles.server import HttpDouble, Recorded, Reply


def queue_full(ip: str = "127.0.0.1") -> Reply:
    return Reply.json(
        402,
        {
            "x402Version": 1,
            "error": f"Queue full for IP: {ip} - 1 requests already queued (max: 1). "
            "Get unlimited access at https://enter.pollinations.ai",
            "accepts": [{"scheme": "exact", "network": "base"}],
        },
    )


def placeholder_reply() -> Reply:
    return Reply(200, branded_placeholder(), {"content-type": "image/jpeg"})


class PollinationsDouble(HttpDouble):
    def __init__(self, *, api_key: str | None = None) -> None:
        self.api_key = api_key
        # Image bytes override (e.g. a blank image) for the next successful answers.
        self.image_override: bytes | None = None
        super().__init__()

    def _handle(self, request: Recorded) -> Reply:
        if request.path.startswith("/image/"):
            if self.api_key is None or request.headers.get("authorization") != f"Bearer {self.api_key}":
                return Reply.json(
                    401,
                    {
                        "status": 401,
                        "success": False,
                        "error": {"code": "UNAUTHORIZED", "message": "Authentication required"},
                    },
                )
        elif not request.path.startswith("/prompt/"):
            return Reply.json(404, {"error": "Not found"})
        width, height = int(request.query.get("width", 1024)), int(request.query.get("height", 1024))
        data = self.image_override or picture(width, height, request.path + request.query.get("seed", ""), fmt="JPEG")
        return Reply(200, data, {"content-type": "image/jpeg"})
