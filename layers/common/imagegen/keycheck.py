"""One cheap key check per provider (PROVIDERS.md key-check endpoints): build the request, read the answer."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from pydantic import SecretStr

from imagegen import __version__
from imagegen.key_health import CheckResult
from imagegen.keys import KeyProvider

# Horde blocks some calls from the default unknown agent; a real one costs nothing.
HORDE_CLIENT_AGENT = f"imagegen:{__version__}:keycheck"
_MAX_DETAIL = 200


@dataclass(frozen=True)
class KeyCheckUrls:
    """Each provider's API base; a key is only ever sent to its own provider's base."""

    siliconflow: str = "https://api.siliconflow.com/v1"
    huggingface: str = "https://huggingface.co"
    horde: str = "https://aihorde.net/api/v2"
    pollinations: str = "https://gen.pollinations.ai"
    tavily: str = "https://api.tavily.com"


def build_request(provider: KeyProvider, key: SecretStr, urls: KeyCheckUrls) -> httpx.Request:
    secret = key.get_secret_value()
    bearer = {"Authorization": f"Bearer {secret}", "Accept": "application/json"}
    if provider == "siliconflow":
        return httpx.Request("GET", f"{urls.siliconflow.rstrip('/')}/user/info", headers=bearer)
    if provider == "huggingface":
        return httpx.Request("GET", f"{urls.huggingface.rstrip('/')}/api/whoami-v2", headers=bearer)
    if provider == "horde":
        headers = {"apikey": secret, "Client-Agent": HORDE_CLIENT_AGENT, "Accept": "application/json"}
        return httpx.Request("GET", f"{urls.horde.rstrip('/')}/find_user", headers=headers)
    if provider == "pollinations":
        return httpx.Request("GET", f"{urls.pollinations.rstrip('/')}/account/balance", headers=bearer)
    return httpx.Request("GET", f"{urls.tavily.rstrip('/')}/usage", headers=bearer)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return None


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _short(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _unexpected(response: httpx.Response) -> CheckResult:
    return CheckResult("unreachable", f"unexpected answer: HTTP {response.status_code}")


def _siliconflow(response: httpx.Response) -> CheckResult:
    if response.status_code in (401, 403):
        return CheckResult("invalid", f"rejected by SiliconFlow (HTTP {response.status_code})")
    body = _json(response)
    data = body.get("data") if isinstance(body, dict) else None
    if response.status_code != 200 or not isinstance(data, dict):
        return _unexpected(response)
    account_status = data.get("status")
    if isinstance(account_status, str) and account_status != "normal":
        return CheckResult("invalid", _short(f"account status {account_status}"))
    balance = _number(data.get("totalBalance", data.get("balance")))
    if balance is None:
        return CheckResult("ok", "key accepted; balance not reported")
    if balance < 0:
        return CheckResult("out_of_credit", f"balance {balance}")
    # A zero balance still runs SiliconFlow's free models, so it is not a reason to skip the key.
    return CheckResult("ok", f"balance {balance}" + (" (free models only)" if balance == 0 else ""))


def _huggingface(response: httpx.Response) -> CheckResult:
    if response.status_code == 401:
        return CheckResult("invalid", "Hugging Face says: invalid user token (HTTP 401)")
    body = _json(response)
    if response.status_code != 200 or not isinstance(body, dict):
        return _unexpected(response)
    token = (body.get("auth") or {}).get("accessToken") or {}
    parts = [f"{body.get('type', 'user')} {body.get('name', '?')}"]
    if token.get("role"):
        parts.append(f"token role {token['role']}")
    if token.get("expiration"):
        parts.append(f"expires {token['expiration']}")
    if body.get("isPro"):
        parts.append("PRO")
    return CheckResult("ok", _short(", ".join(parts)))


def _horde(response: httpx.Response) -> CheckResult:
    body = _json(response)
    rc = body.get("rc") if isinstance(body, dict) else None
    if response.status_code in (401, 404) and rc in ("InvalidAPIKey", "UserNotFound", None):
        return CheckResult("invalid", f"AI Horde does not know this key ({rc or response.status_code})")
    if response.status_code != 200 or not isinstance(body, dict):
        return _unexpected(response)
    kudos = _number(body.get("kudos"))
    detail = f"user {body.get('username', '?')}" + (f", kudos {kudos.normalize():f}" if kudos is not None else "")
    # Horde serves users without kudos too (at the lowest priority), so kudos never make a key unusable.
    return CheckResult("ok", _short(detail))


def _pollinations(response: httpx.Response) -> CheckResult:
    if response.status_code == 401:
        return CheckResult("invalid", "rejected by Pollinations (HTTP 401)")
    if response.status_code == 402:
        return CheckResult("out_of_credit", "Pollinations: insufficient pollen balance (HTTP 402)")
    if response.status_code == 403:
        # Authenticated but not allowed to read the balance: the key itself is good.
        return CheckResult("ok", "key accepted; it lacks the account:balance permission, so the balance is unknown")
    body = _json(response)
    balance = _number(body.get("balance")) if isinstance(body, dict) else None
    if response.status_code != 200 or balance is None:
        return _unexpected(response)
    if balance <= 0:
        return CheckResult("out_of_credit", f"balance {balance.normalize():f} pollen")
    return CheckResult("ok", f"balance {balance.normalize():f} pollen")


def _tavily(response: httpx.Response) -> CheckResult:
    if response.status_code in (401, 403):
        return CheckResult("invalid", f"rejected by Tavily (HTTP {response.status_code})")
    if response.status_code == 432:
        return CheckResult("out_of_credit", "Tavily: plan usage limit exceeded (HTTP 432)")
    if response.status_code == 433:
        return CheckResult("out_of_credit", "Tavily: pay-as-you-go limit exceeded (HTTP 433)")
    body = _json(response)
    if response.status_code != 200 or not isinstance(body, dict):
        return _unexpected(response)
    key, account = body.get("key") or {}, body.get("account") or {}
    key_usage, key_limit = _number(key.get("usage")), _number(key.get("limit"))
    if key_usage is not None and key_limit is not None and key_usage >= key_limit:
        return CheckResult("out_of_credit", f"key usage {key_usage}/{key_limit} credits")
    plan = account.get("current_plan") or "plan"
    used, limit = _number(account.get("plan_usage")), _number(account.get("plan_limit"))
    paygo_used, paygo_limit = _number(account.get("paygo_usage")), _number(account.get("paygo_limit"))
    detail = _short(f"{plan}: {used}/{limit} credits used" if used is not None and limit is not None else str(plan))
    plan_spent = used is not None and limit is not None and used >= limit
    paygo_left = paygo_limit is not None and (paygo_used or 0) < paygo_limit
    if plan_spent and not paygo_left:
        return CheckResult("out_of_credit", detail)
    return CheckResult("ok", detail)


_PARSERS = {
    "siliconflow": _siliconflow,
    "huggingface": _huggingface,
    "horde": _horde,
    "pollinations": _pollinations,
    "tavily": _tavily,
}


def parse_response(provider: KeyProvider, response: httpx.Response) -> CheckResult:
    """ok | invalid | out_of_credit | unreachable, or no verdict (status None) on a 429."""
    if response.status_code == 429:
        # Rate limited: nothing learned about the key (HF whoami-v2 is strict on purpose).
        return CheckResult(None, "rate limited by the key-check endpoint (HTTP 429)")
    if response.status_code >= 500:
        return CheckResult("unreachable", f"provider error: HTTP {response.status_code}")
    return _PARSERS[provider](response)


class KeyChecker:
    """Runs the checks over one httpx client; a timeout or connection error is `unreachable`, never `invalid`."""

    def __init__(self, client: httpx.Client, urls: KeyCheckUrls) -> None:
        self._client = client
        self._urls = urls

    def check(self, provider: KeyProvider, key: SecretStr) -> CheckResult:
        request = build_request(provider, key, self._urls)
        try:
            response = self._client.send(request)
        except httpx.TimeoutException:
            return CheckResult("unreachable", "the key-check endpoint timed out")
        except httpx.TransportError as error:
            return CheckResult("unreachable", f"could not reach the key-check endpoint ({type(error).__name__})")
        return parse_response(provider, response)


def new_client(timeout_seconds: float) -> httpx.Client:
    return httpx.Client(
        timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 3.0)),
        # Never follow a redirect: it could carry the key (Horde's `apikey` header) to another host.
        follow_redirects=False,
        # No proxies from the environment: the key goes to the provider's host and nowhere else.
        trust_env=False,
    )
