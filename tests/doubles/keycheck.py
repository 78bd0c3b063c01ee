"""Key-check endpoints of SiliconFlow, HF, AI Horde, Pollinations and Tavily on loopback, as PROVIDERS.md has them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.doubles.server import HttpDouble, Recorded, Reply

# path under the double's root → provider (PROVIDERS.md 1.7, 2.7, 3.5, 4.2, 5.4)
ROUTES = {
    "/siliconflow/v1/user/info": "siliconflow",
    "/hf/api/whoami-v2": "huggingface",
    "/horde/api/v2/find_user": "horde",
    "/pollinations/account/balance": "pollinations",
    "/tavily/usage": "tavily",
}


def _pollinations_error(status: int, code: str, message: str) -> dict[str, Any]:
    return {
        "status": status,
        "success": False,
        "error": {
            "code": code,
            "message": message,
            "timestamp": "2026-11-22T04:15:00.000Z",
            "details": {},
            "requestId": "req_0001",
            "cause": None,
        },
    }


_SILICONFLOW_USER = {
    "id": "userid-1",
    "name": "",
    "image": "https://cdn.example/avatar.png",
    "email": "dev@example.com",
    "isAdmin": False,
    "balance": "0.88",
    "status": "normal",
    "introduction": "",
    "role": "",
    "chargeBalance": "88.00",
    "totalBalance": "88.88",
}
_TAVILY_KEY = {
    "usage": 150,
    "limit": None,
    "search_usage": 120,
    "extract_usage": 30,
    "crawl_usage": 0,
    "map_usage": 0,
    "research_usage": 0,
}

# provider → outcome → (status, JSON body)
ANSWERS: dict[str, dict[str, tuple[int, Any]]] = {
    "siliconflow": {
        "ok": (200, {"code": 20000, "message": "OK", "status": True, "data": _SILICONFLOW_USER}),
        "zero_balance": (
            200,
            {
                "code": 20000,
                "message": "OK",
                "status": True,
                "data": {**_SILICONFLOW_USER, "balance": "0", "chargeBalance": "0", "totalBalance": "0"},
            },
        ),
        "out_of_credit": (
            200,
            {
                "code": 20000,
                "message": "OK",
                "status": True,
                "data": {**_SILICONFLOW_USER, "balance": "-0.50", "chargeBalance": "0", "totalBalance": "-0.50"},
            },
        ),
        "invalid": (401, "Invalid token"),
        "server_error": (
            503,
            {"code": 50505, "message": "Model service overloaded. Please try again later.", "data": None},
        ),
        "throttled": (
            429,
            {
                "message": "Request was rejected due to rate limiting. If you want more, please contact "
                "contact@siliconflow.cn",
                "data": None,
            },
        ),
    },
    "huggingface": {
        "ok": (
            200,
            {
                "type": "user",
                "id": "64f0c0ffee",
                "name": "alice",
                "fullname": "Alice Example",
                "email": "alice@example.com",
                "emailVerified": True,
                "isPro": False,
                "canPay": False,
                "orgs": [],
                "periodEnd": None,
                "billingMode": "prepaid",
                "auth": {"type": "access_token", "accessToken": {"displayName": "imagegen", "role": "fineGrained"}},
            },
        ),
        "invalid": (401, {"error": "Invalid user token"}),
        "throttled": (429, {"error": "You have been rate-limited; you can retry this action in about 5 minutes."}),
        "server_error": (500, {"error": "Internal Error"}),
    },
    "horde": {
        "ok": (
            200,
            {
                "username": "alice#4711",
                "id": 4711,
                "kudos": 1520.5,
                "concurrency": 30,
                "worker_count": 0,
                "trusted": False,
                "flagged": False,
                "pseudonymous": False,
                "account_age": 86400,
            },
        ),
        "invalid": (404, {"message": "User not found", "rc": "UserNotFound"}),
        "no_key": (
            401,
            {
                "message": "No user matching sent API Key. Have you remembered to register at "
                "https://stablehorde.net/register ?",
                "rc": "InvalidAPIKey",
            },
        ),
        "server_error": (503, {"message": "Horde is in maintenance mode.", "rc": "MaintenanceMode"}),
        "throttled": (429, {"message": "90 per 1 minute", "rc": "TooManyPrompts"}),
    },
    "pollinations": {
        "ok": (200, {"balance": 42.5}),
        "out_of_credit": (200, {"balance": 0}),
        "invalid": (401, _pollinations_error(401, "UNAUTHORIZED", "Authentication required.")),
        "forbidden": (403, _pollinations_error(403, "FORBIDDEN", "API key lacks permission: account:balance")),
        "server_error": (500, _pollinations_error(500, "INTERNAL_ERROR", "Internal server error")),
        "throttled": (429, _pollinations_error(429, "RATE_LIMITED", "Too many requests")),
    },
    "tavily": {
        "ok": (
            200,
            {
                "key": _TAVILY_KEY,
                "account": {
                    "current_plan": "Researcher",
                    "plan_usage": 150,
                    "plan_limit": 1000,
                    "paygo_usage": 0,
                    "paygo_limit": None,
                },
            },
        ),
        "plan_spent": (
            200,
            {
                "key": {**_TAVILY_KEY, "usage": 1000},
                "account": {
                    "current_plan": "Researcher",
                    "plan_usage": 1000,
                    "plan_limit": 1000,
                    "paygo_usage": 0,
                    "paygo_limit": None,
                },
            },
        ),
        "out_of_credit": (
            432,
            {"detail": {"error": "This request exceeds your plan's set usage limit. Please upgrade your plan."}},
        ),
        "invalid": (401, {"detail": {"error": "Your API key is wrong or missing."}}),
        "throttled": (429, {"detail": {"error": "Too Many Requests"}}),
        "server_error": (500, {"detail": {"error": "Internal Server Error"}}),
    },
}


@dataclass(frozen=True)
class Seen:
    provider: str
    path: str
    key: str | None
    client_agent: str | None


class KeyCheckDouble(HttpDouble):
    """One loopback server for all five key checks. Answers per provider, or per key (`respond(..., key=)`);
    "hang" holds the request open until the double closes, so a client's timeout is what ends it."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._default: dict[str, str] = {provider: "ok" for provider in ANSWERS}
        self._by_key: dict[str, str] = {}
        super().__init__()

    @property
    def root(self) -> str:
        return self.url

    @property
    def env(self) -> dict[str, str]:
        return {
            "SILICONFLOW_BASE_URL": f"{self.root}/siliconflow/v1",
            "HF_ENDPOINT": f"{self.root}/hf",
            "HORDE_BASE_URL": f"{self.root}/horde/api/v2",
            "POLLINATIONS_GEN_URL": f"{self.root}/pollinations",
            "TAVILY_BASE_URL": f"{self.root}/tavily",
        }

    def respond(self, outcome: str, *, provider: str | None = None, key: str | None = None) -> None:
        if key is not None:
            self._by_key[key] = outcome
        elif provider is not None:
            self._default[provider] = outcome
        else:
            raise ValueError("name a provider or a key")

    def calls(self, provider: str) -> int:
        return sum(1 for seen in self.seen if seen.provider == provider)

    def _handle(self, request: Recorded) -> Reply:
        provider = ROUTES.get(request.path)
        if provider is None:
            return Reply.json(404, {"message": "no such route on the double"})
        auth = request.headers.get("authorization") or ""
        key = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else request.headers.get("apikey")
        self.seen.append(Seen(provider, request.path, key, request.headers.get("client-agent")))
        outcome = self._by_key.get(key or "", self._default[provider])
        # Longer than any client timeout in the tests; closing the double ends the wait without an answer.
        delay = 10.0 if outcome == "hang" else 0.0
        if outcome == "hang":
            outcome = "ok"
        if key is None and provider == "horde":
            outcome = "no_key"
        status, body = ANSWERS[provider][outcome]
        return Reply.json(status, body, delay=delay)
