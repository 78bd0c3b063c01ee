"""Tavily: web search for grounding. A keyed service, not an image provider: its spec carries the key and its check."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagegen.keys.types import CheckResult
from imagegen.providers.base import bearer, body_json, number, request, short
from imagegen.providers.settings import ServiceSettings
from imagegen.providers.spec import KeyCheck, KeySpec, ProviderSpec

if TYPE_CHECKING:
    import httpx
    from pydantic import SecretStr

NAME = "tavily"


class TavilySettings(ServiceSettings):
    base_url: str = "https://api.tavily.com"


def build_key_check(settings: TavilySettings, key: SecretStr) -> httpx.Request:
    return request("GET", f"{settings.base_url}/usage", headers={"accept": "application/json", **bearer(key)})


def parse_key_check(response: httpx.Response) -> CheckResult:
    if response.status_code in (401, 403):
        return CheckResult("invalid", f"rejected by Tavily (HTTP {response.status_code})")
    if response.status_code == 432:
        return CheckResult("out_of_credit", "Tavily: plan usage limit exceeded (HTTP 432)")
    if response.status_code == 433:
        return CheckResult("out_of_credit", "Tavily: pay-as-you-go limit exceeded (HTTP 433)")
    body = body_json(response)
    if response.status_code != 200 or not isinstance(body, dict):
        return CheckResult.unexpected(response.status_code)
    key, account = body.get("key") or {}, body.get("account") or {}
    key_usage, key_limit = number(key.get("usage")), number(key.get("limit"))
    if key_usage is not None and key_limit is not None and key_usage >= key_limit:
        return CheckResult("out_of_credit", f"key usage {key_usage}/{key_limit} credits")
    plan = account.get("current_plan") or "plan"
    used, limit = number(account.get("plan_usage")), number(account.get("plan_limit"))
    paygo_used, paygo_limit = number(account.get("paygo_usage")), number(account.get("paygo_limit"))
    detail = short(f"{plan}: {used}/{limit} credits used" if used is not None and limit is not None else str(plan))
    plan_spent = used is not None and limit is not None and used >= limit
    paygo_left = paygo_limit is not None and (paygo_used or 0) < paygo_limit
    if plan_spent and not paygo_left:
        return CheckResult("out_of_credit", detail)
    return CheckResult("ok", detail)


SPEC = ProviderSpec(
    name=NAME,
    env_prefix="TAVILY",
    settings=TavilySettings,
    env={"api_key": "TAVILY_API_KEY", "base_url": "TAVILY_BASE_URL"},
    key=KeySpec(
        env="TAVILY_API_KEY",
        pattern=r"tvly-[A-Za-z0-9_-]{8,200}",
        expected="a Tavily API key: tvly- followed by 8-200 letters, digits, _ or -",
        header="authorization",
        check=KeyCheck(build=build_key_check, parse=parse_key_check),
    ),
    generates_images=False,
)
