"""The failure report: one aggregated, secret-free error per failed run, and the scrubbing of keys from text."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from imagegen.chain.links import Link, Run, Skip
from imagegen.generation import ChainFailed
from imagegen.models import Attempt, ErrorInfo
from imagegen.providers.base import short

if TYPE_CHECKING:
    from imagegen.providers.base import ProviderError
    from imagegen.providers.spec import ProviderSpec


# Skips that mean "not yet" rather than "no": the link reopens by itself.
NOT_YET = frozenset({"breaker_open", "rate_limited"})


def describe(attempt: Attempt) -> str:
    name = attempt.provider + (f"/{attempt.model}" if attempt.model else "")
    status = f"{attempt.status_code} " if attempt.status_code else ""
    detail = f" ({attempt.message})" if attempt.message else ""
    return f"{name}: {attempt.outcome} {status}{attempt.error_class or ''}{detail}".strip()


def scrub(run: Run, text: str) -> str:
    return mask_secrets(text, run.secrets)


def mask_secrets(text: str, secrets: tuple[str, ...]) -> str:
    """Every known key in `text` as ***, and any run of 8 or more characters that starts a key too: a provider may
    echo a key cut short ("invalid key sk-abcdefgh..."), and that prefix is as much of a secret as the key."""
    for secret in secrets:
        text = text.replace(secret, "***")
    for secret in secrets:
        if len(secret) >= PREFIX_LEN:
            text = _mask_prefixes(text, secret)
    return text


# The shortest start of a key that is masked on its own: long enough not to hit ordinary words ("sk-" or "hf_"
# alone are not secrets), short enough that what is left of an echoed key says nothing useful.
PREFIX_LEN = 8


def _mask_prefixes(text: str, secret: str) -> str:
    parts: list[str] = []
    start = 0
    while (found := text.find(secret[:PREFIX_LEN], start)) >= 0:
        end = found + PREFIX_LEN
        while end < len(text) and end - found < len(secret) and text[end] == secret[end - found]:
            end += 1
        parts += [text[start:found], "***"]
        start = end
    return "".join(parts) + text[start:]


def scrub_attempt(run: Run, attempt: Attempt) -> Attempt:
    """The attempt as it may be stored: keys masked first, then the message cut to its stored length."""
    if attempt.message:
        return attempt.model_copy(update={"message": short(scrub(run, attempt.message))})
    return attempt


def no_providers(run: Run, registry: Mapping[str, ProviderSpec[Any]]) -> ChainFailed:
    """No provider of the run has a usable key: every link is a skip, and the hint names the keys to set."""
    for link in run.links:
        skip = run.keys[link.provider]
        assert isinstance(skip, Skip)
        run.attempts.append(skip.attempt(link))
    providers = dict.fromkeys(link.provider for link in run.links)
    needed = [spec.key.env for name in providers if (spec := registry[name]).key is not None]
    keyless = [name for name, spec in registry.items() if spec.keyless and spec.generates_images and not spec.offline]
    hint = (f"Set {' or '.join(needed)}" if needed else "Configure a provider key") + (
        f", or add a keyless provider ({', '.join(keyless)}) to IMAGEGEN_PROVIDERS or the request's providers."
    )
    error = ErrorInfo(
        code="no_providers_configured",
        message="No provider in the chain has a usable key: " + "; ".join(describe(a) for a in run.attempts),
        hint=hint,
    )
    return ChainFailed(error=error, attempts=run.attempts)


def content_refused(run: Run, link: Link, error: ProviderError) -> ChainFailed:
    info = ErrorInfo(
        code="content_refused",
        message=f"{link.provider} refused the prompt: {short(scrub(run, error.message))}",
        hint='The chain stops at a content-policy refusal; on_refusal: "fallback" tries the next provider.',
        details={"attempts": [a.model_dump() for a in run.attempts]},
    )
    return ChainFailed(error=info, attempts=run.attempts)


def all_failed(run: Run, *, waited_past: float | None = None) -> ChainFailed:
    """Every link failed or was skipped. `waited_past`: the first "not yet" link reopens only then, after the job's
    deadline (the job could not wait for it)."""
    tried = [a for a in run.attempts if a.outcome in ("failed", "skipped", "canceled")]
    cooling_only = (
        tried
        and all(a.error_class in NOT_YET for a in tried if a.outcome == "skipped")
        and not any(a.outcome == "failed" for a in tried)
    )
    if run.hints:
        # What a provider said the caller can do (a token permission to add) beats the general advice.
        hint = " ".join(run.hints)
    elif waited_past is not None:
        reopens = datetime.fromtimestamp(waited_past, UTC).isoformat(timespec="seconds")
        hint = f"The first provider left reopens at {reopens}, after this job's deadline; retry the job later."
    elif cooling_only:
        hint = "Every provider is cooling down after repeated failures; retry in a minute."
    else:
        hint = "Retry later, add another provider to the chain, or check the keys named above."
    message = f"All {len({a.provider for a in run.attempts})} providers failed: " + "; ".join(
        describe(a) for a in run.attempts if a.outcome != "retried"
    )
    error = ErrorInfo(
        code="all_providers_failed",
        message=scrub(run, message),
        hint=hint,
        details={"attempts": [a.model_dump() for a in run.attempts]},
    )
    return ChainFailed(error=error, attempts=run.attempts)


def bad_state(reason: str) -> ChainFailed:
    error = ErrorInfo(code="bad_chain_state", message=f"the stored chain state is unusable ({reason})")
    return ChainFailed(error=error, attempts=[])
