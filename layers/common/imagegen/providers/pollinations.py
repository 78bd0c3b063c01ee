"""Pollinations: GET an image for a URL-encoded prompt; keyless legacy host, or the gen gateway with a key."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import Field, SecretStr, model_validator

from imagegen.keys.types import CheckResult
from imagegen.providers.base import (
    Capabilities,
    FallThrough,
    HttpFailure,
    ImageBytes,
    ModelSpec,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    bearer,
    body_json,
    classify_http_error,
    map_params,
    number,
    request,
)
from imagegen.providers.settings import CsvTuple, ProviderSettings, UrlStr
from imagegen.providers.spec import KeyCheck, KeySpec, ProviderSpec

if TYPE_CHECKING:
    import httpx

    from imagegen.models import ImageRequest

NAME = "pollinations"
LEGACY_URL = "https://image.pollinations.ai"
GEN_URL = "https://gen.pollinations.ai"

# The legacy host documents only model/seed/width/height and switches; negative_prompt appears only
# in the gen gateway's parameter echo (PROVIDERS.md 4.2, UNCONFIRMED), so it is sent in gen mode only.
LEGACY = ModelSpec(name="flux", params={"seed": "seed"}, extras=frozenset({"enhance", "safe", "private"}))
GEN = ModelSpec(
    name="flux",
    params={"seed": "seed", "negative_prompt": "negative_prompt"},
    extras=frozenset({"enhance", "safe", "private", "quality"}),
)

CAPABILITIES = Capabilities(
    models=(
        LEGACY,
        ModelSpec(name="turbo", params=LEGACY.params, extras=LEGACY.extras),
    ),
    size_rule="width/height query parameters as requested",
)


class PollinationsSettings(ProviderSettings):
    # Without an explicit base URL the host follows the key: the gen gateway with one, the legacy host without.
    base_url: str = LEGACY_URL
    explicit_base_url: bool = False
    # The keyed gateway: key checks (account/balance) live there, whatever base_url says.
    gen_url: UrlStr = GEN_URL
    models: CsvTuple = ("flux",)
    timeout_s: float = Field(default=60.0, gt=0)
    # Pollinations' anonymous tier takes one request per 5 s per IP; its secret keys have no limit (set 0).
    rpm: float = Field(default=12.0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _host_follows_key(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "explicit_base_url" in data:
            return data
        if data.get("base_url"):
            return {**data, "explicit_base_url": True}
        if data.get("api_key"):
            return {**data, "base_url": GEN_URL}
        return data

    @property
    def gen_mode(self) -> bool:
        return self.api_key is not None

    def with_key(self, key: SecretStr | None) -> PollinationsSettings:
        update: dict[str, Any] = {"api_key": key}
        if not self.explicit_base_url:
            update["base_url"] = GEN_URL if key is not None else LEGACY_URL
        return self.model_copy(update=update)


def plan(asked: ImageRequest, model: str | None, settings: PollinationsSettings) -> ProviderPlan:
    spec = GEN if settings.api_key is not None else LEGACY
    params, dropped = map_params(asked, spec)
    return ProviderPlan(
        provider=NAME,
        model=model or spec.name,
        prompt=asked.prompt,
        width=asked.width,
        height=asked.height,
        params=params,
        dropped_params=dropped,
    )


def build_request(plan: ProviderPlan, settings: PollinationsSettings) -> httpx.Request:
    keyed = settings.api_key is not None
    query: dict[str, str] = {
        "width": str(plan.width),
        "height": str(plan.height),
        "model": plan.model or LEGACY.name,
        "nologo": "true",
    }
    for key, value in plan.params.items():
        query[key] = str(value).lower() if isinstance(value, bool) else str(value)
    path = "image" if keyed else "prompt"
    headers = {"accept": "image/*", **bearer(settings.api_key)}
    url = f"{settings.base_url}/{path}/{quote(plan.prompt, safe='')}"
    return request("GET", url, params=query, headers=headers)


def parse_response(response: httpx.Response, plan: ProviderPlan) -> ProviderResult | ProviderError:
    if response.status_code != 200:
        return classify_http_error(response, classify)
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type.startswith("image/"):
        return FallThrough("bad_response", f"200 with {content_type or 'no content type'}", status_code=200)
    # A 200 may still be a branded placeholder: imaging.validate_image decides, not the status code.
    return ImageBytes(response.content, content_type)


def classify(failure: HttpFailure) -> ProviderError | None:
    if failure.status != 402:
        return None
    # x402 "Queue full for IP" is a per-IP rate limit, not a billing state of a key we hold.
    if isinstance(failure.body, dict) and "x402Version" in failure.body:
        return FallThrough("rate_limited", failure.message, status_code=402)
    return FallThrough("payment_required", failure.message, status_code=402, scope="provider")


def build_key_check(settings: PollinationsSettings, key: SecretStr) -> httpx.Request:
    return request("GET", f"{settings.gen_url}/account/balance", headers={"accept": "application/json", **bearer(key)})


def parse_key_check(response: httpx.Response) -> CheckResult:
    if response.status_code == 401:
        return CheckResult("invalid", "rejected by Pollinations (HTTP 401)")
    if response.status_code == 402:
        return CheckResult("out_of_credit", "Pollinations: insufficient pollen balance (HTTP 402)")
    if response.status_code == 403:
        # Authenticated but not allowed to read the balance: the key itself is good.
        return CheckResult("ok", "key accepted; it lacks the account:balance permission, so the balance is unknown")
    body = body_json(response)
    balance = number(body.get("balance")) if isinstance(body, dict) else None
    if response.status_code != 200 or balance is None:
        return CheckResult.unexpected(response.status_code)
    if balance <= 0:
        return CheckResult("out_of_credit", f"balance {balance.normalize():f} pollen")
    return CheckResult("ok", f"balance {balance.normalize():f} pollen")


SPEC = ProviderSpec(
    name=NAME,
    env_prefix="POLLINATIONS",
    settings=PollinationsSettings,
    env={
        "api_key": "POLLINATIONS_API_KEY",
        "base_url": "POLLINATIONS_BASE_URL",
        "gen_url": "POLLINATIONS_GEN_URL",
        "models": "POLLINATIONS_MODELS",
        "timeout_s": "POLLINATIONS_TIMEOUT_S",
        "rpm": "POLLINATIONS_RPM",
    },
    key=KeySpec(
        env="POLLINATIONS_API_KEY",
        pattern=r"(sk|pk)_[A-Za-z0-9_-]{8,200}",
        expected="a Pollinations key: sk_ (secret) or pk_ (publishable) followed by 8-200 letters, digits, _ or -",
        header="authorization",
        check=KeyCheck(build=build_key_check, parse=parse_key_check),
    ),
    keyless=True,
    capabilities=CAPABILITIES,
    plan=plan,
    build_request=build_request,
    parse_response=parse_response,
    classify=classify,
    # Pollinations answers with the image itself; its OpenAI-style route answers with a link on its own hosts.
    result_hosts=(".pollinations.ai",),
)
