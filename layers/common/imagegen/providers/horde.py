"""AI Horde: async submit, then check until done, then collect once; results are R2 links or base64 WebP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr

from imagegen import __version__
from imagegen.keys.types import CheckResult
from imagegen.providers.base import (
    AsyncStatus,
    AsyncSubmitted,
    Capabilities,
    FallThrough,
    HttpFailure,
    ImageBase64,
    ModelSpec,
    ProviderError,
    ProviderPlan,
    ProviderResult,
    Refused,
    RemoteRequest,
    ResultUrl,
    body_json,
    classify_http_error,
    map_params,
    number,
    request,
    short,
)
from imagegen.providers.settings import ProviderSettings
from imagegen.providers.spec import AsyncSpec, KeyCheck, KeySpec, ProviderSpec

if TYPE_CHECKING:
    import httpx

    from imagegen.models import ImageRequest

NAME = "horde"
# The Horde's anonymous user: works without an account, at the lowest priority. It counts as no key.
ANONYMOUS_KEY = "0000000000"
# Horde blocks some calls from the default unknown agent; a real one costs nothing.
KEYCHECK_CLIENT_AGENT = f"imagegen:{__version__}:keycheck"
MIN_SIDE, MAX_SIDE, STEP = 64, 3072, 64
NEGATIVE_SEPARATOR = "###"

ANY_MODEL = ModelSpec(
    name="*",
    # negative_prompt is not a param: it rides in the prompt after "###" (see plan()).
    params={"steps": "steps", "guidance": "cfg_scale", "seed": "seed"},
    extras=frozenset({"sampler_name", "karras", "clip_skip", "hires_fix", "tiling"}),
)

CAPABILITIES = Capabilities(
    models=(ANY_MODEL,),
    size_rule="each side rounded to the nearest multiple of 64 within 64-3072",
)


class HordeSettings(ProviderSettings):
    base_url: str = "https://aihorde.net/api/v2"
    # The Horde blocks the default "unknown:0:unknown" agent on /generate/check: name:version:contact.
    client_agent: str = f"imagegen:{__version__}:unknown-contact"
    timeout_s: float = Field(default=20.0, gt=0)
    # AI Horde allows 2 submits a second per key, but 90 a minute per IP binds first (its limiter_api.py).
    rpm: float = Field(default=90.0, ge=0)

    @property
    def anonymous(self) -> bool:
        return self.api_key is None or self.api_key.get_secret_value() == ANONYMOUS_KEY


def round_side(value: int) -> int:
    # Half-up to the nearest multiple (round() would round 2.5 steps to 2).
    return min(MAX_SIDE, max(MIN_SIDE, (value + STEP // 2) // STEP * STEP))


def plan(asked: ImageRequest, model: str | None, settings: HordeSettings) -> ProviderPlan:
    params, dropped = map_params(asked, ANY_MODEL)
    if "negative_prompt" in dropped:
        dropped.remove("negative_prompt")
    width, height = round_side(asked.width), round_side(asked.height)
    notes = (
        []
        if (width, height) == (asked.width, asked.height)
        else [f"size {asked.width}x{asked.height} -> {width}x{height}"]
    )
    if "seed" in params:
        params["seed"] = str(params["seed"])  # the Horde takes the seed as a string
    if "cfg_scale" in params:
        params["cfg_scale"] = round(float(params["cfg_scale"]), 2)  # rc BadCFGDecimals otherwise
    prompt = asked.prompt
    if asked.negative_prompt:
        prompt = f"{prompt} {NEGATIVE_SEPARATOR} {asked.negative_prompt}"
    return ProviderPlan(
        provider=NAME,
        model=model if model and model != "*" else None,
        prompt=prompt,
        width=width,
        height=height,
        params=params,
        dropped_params=dropped,
        notes=notes,
    )


def _headers(settings: HordeSettings) -> dict[str, str]:
    key = settings.api_key.get_secret_value() if settings.api_key is not None else ANONYMOUS_KEY
    return {"apikey": key, "client-agent": settings.client_agent, "accept": "application/json"}


def build_request(plan: ProviderPlan, settings: HordeSettings) -> httpx.Request:
    params: dict[str, Any] = {"width": plan.width, "height": plan.height, "n": 1, **plan.params}
    body: dict[str, Any] = {
        "prompt": plan.prompt,
        "params": params,
        "nsfw": False,
        "censor_nsfw": False,
        "r2": True,
        "shared": False,
    }
    if plan.model:
        body["models"] = [plan.model]
    return request("POST", f"{settings.base_url}/generate/async", json=body, headers=_headers(settings))


def parse_response(response: httpx.Response, plan: ProviderPlan) -> ProviderResult | ProviderError:
    if response.status_code not in (200, 202):
        return classify_http_error(response, classify)
    body = body_json(response)
    if not isinstance(body, dict) or not body.get("id"):
        return FallThrough("bad_response", "submit answered without an id", status_code=response.status_code)
    # No wait_time on submit: the first check comes after the settings' minimum delay.
    return AsyncSubmitted(remote_id=str(body["id"]), wait_time=0.0)


def build_check(remote: RemoteRequest, settings: HordeSettings) -> httpx.Request:
    return request("GET", f"{settings.base_url}/generate/check/{remote.id}", headers=_headers(settings))


def parse_check(response: httpx.Response) -> ProviderResult | ProviderError:
    if response.status_code != 200:
        return classify_http_error(response, classify)
    body = body_json(response)
    if not isinstance(body, dict):
        return FallThrough("bad_response", "check answered without JSON", status_code=200)
    if body.get("faulted"):
        return FallThrough("faulted", "the Horde reports the request faulted", status_code=200)
    if body.get("is_possible") is False:
        return FallThrough(
            "model_unavailable", "no Horde worker can serve this request (is_possible=false)", status_code=200
        )
    return AsyncStatus(
        done=bool(body.get("done")),
        wait_time=float(body.get("wait_time") or 0),
        queue_position=body.get("queue_position"),
    )


def build_collect(remote: RemoteRequest, settings: HordeSettings) -> httpx.Request:
    return request("GET", f"{settings.base_url}/generate/status/{remote.id}", headers=_headers(settings))


def _censored(generation: dict[str, Any]) -> bool:
    if generation.get("censored") or generation.get("state") in ("censored", "csam"):
        return True
    for meta in generation.get("gen_metadata") or []:
        if isinstance(meta, dict) and meta.get("type") == "censorship":
            return True
    return False


def parse_collect(response: httpx.Response) -> ProviderResult | ProviderError:
    if response.status_code != 200:
        return classify_http_error(response, classify)
    body = body_json(response)
    if not isinstance(body, dict):
        return FallThrough("bad_response", "status answered without JSON", status_code=200)
    if body.get("faulted"):
        return FallThrough("faulted", "the Horde reports the request faulted", status_code=200)
    generations = body.get("generations") or []
    if not generations or not isinstance(generations[0], dict):
        return FallThrough("bad_response", "status is done but has no generations", status_code=200)
    generation = generations[0]
    if _censored(generation):
        # A censored image is the worker's safety filter firing: a refusal, never a success.
        return Refused("the Horde worker returned a censored image", status_code=200)
    img = str(generation.get("img") or "")
    if img.startswith(("https://", "http://")):
        return ResultUrl(img)
    if img:
        return ImageBase64(img)
    return FallThrough("bad_response", "generation without img", status_code=200)


def build_cancel(remote: RemoteRequest, settings: HordeSettings) -> httpx.Request:
    return request("DELETE", f"{settings.base_url}/generate/status/{remote.id}", headers=_headers(settings))


def classify(failure: HttpFailure) -> ProviderError | None:
    """The Horde names its errors in `rc`; those decide before the status code does."""
    rc, message, status = failure.rc, failure.message, failure.status
    if rc in ("KudosUpfront", "SharedKeyInsufficientKudos"):
        return FallThrough("payment_required", message, status_code=status, scope="provider")
    if rc in ("RequestExpired", "RequestNotFound"):
        return FallThrough("expired", message, status_code=status)
    if rc in ("InvalidAPIKey", "AnonForbidden", "TimeoutIP", "BannedClientAgent"):
        error_class = "unauthorized" if status == 401 else "forbidden"
        return FallThrough(error_class, message, status_code=status, scope="provider")
    if rc == "NoValidWorkers":
        return FallThrough("model_unavailable", message, status_code=status)
    return None


def build_key_check(settings: HordeSettings, key: SecretStr) -> httpx.Request:
    headers = {"apikey": key.get_secret_value(), "client-agent": KEYCHECK_CLIENT_AGENT, "accept": "application/json"}
    return request("GET", f"{settings.base_url}/find_user", headers=headers)


def parse_key_check(response: httpx.Response) -> CheckResult:
    body = body_json(response)
    rc = body.get("rc") if isinstance(body, dict) else None
    if response.status_code in (401, 404) and rc in ("InvalidAPIKey", "UserNotFound", None):
        return CheckResult("invalid", f"AI Horde does not know this key ({rc or response.status_code})")
    if response.status_code != 200 or not isinstance(body, dict):
        return CheckResult.unexpected(response.status_code)
    kudos = number(body.get("kudos"))
    detail = f"user {body.get('username', '?')}" + (f", kudos {kudos.normalize():f}" if kudos is not None else "")
    # Horde serves users without kudos too (at the lowest priority), so kudos never make a key unusable.
    return CheckResult("ok", short(detail))


SPEC = ProviderSpec(
    name=NAME,
    env_prefix="HORDE",
    settings=HordeSettings,
    env={
        "api_key": "HORDE_API_KEY",
        "base_url": "HORDE_BASE_URL",
        "client_agent": "HORDE_CLIENT_AGENT",
        "models": "HORDE_MODELS",
        "timeout_s": "HORDE_TIMEOUT_S",
        "rpm": "HORDE_RPM",
    },
    key=KeySpec(
        env="HORDE_API_KEY",
        pattern=r"[A-Za-z0-9_-]{10,64}",
        expected=f"an AI Horde API key: 10-64 characters of A-Z a-z 0-9 _ - (not the anonymous {ANONYMOUS_KEY})",
        header="apikey",
        check=KeyCheck(build=build_key_check, parse=parse_key_check),
        anonymous=ANONYMOUS_KEY,
    ),
    keyless=True,
    capabilities=CAPABILITIES,
    plan=plan,
    build_request=build_request,
    parse_response=parse_response,
    classify=classify,
    async_=AsyncSpec(
        build_check=build_check,
        parse_check=parse_check,
        build_collect=build_collect,
        parse_collect=parse_collect,
        build_cancel=build_cancel,
        # The Horde caches /check for 1 s and rate-limits /status to 10/min.
        min_check_delay_s=2,
        # A queued request expires at the Horde after 20 minutes.
        max_queue_s=1200.0,
    ),
    result_hosts=(
        # Cloudflare R2 presigned links: the Horde's generations (30 min).
        ".r2.cloudflarestorage.com",
        # The Horde's own host (images normally come from R2; base64 otherwise).
        ".aihorde.net",
    ),
)
