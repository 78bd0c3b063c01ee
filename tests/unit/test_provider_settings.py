"""Provider settings from an environ mapping: names as in DESIGN.md, defaults, secrets that never print."""

from __future__ import annotations

from typing import Any

import pytest
from imagegen.providers.settings import ProvidersSettings
from pydantic import ValidationError


def _four(settings: ProvidersSettings) -> list[Any]:
    return [settings.for_provider(name) for name in ("siliconflow", "huggingface", "horde", "pollinations")]


class TestProvidersSettings:
    def test_given_an_empty_environ_when_built_then_documented_defaults(self) -> None:
        settings = ProvidersSettings.from_environ({})
        sf, hf, horde, poll = (
            settings.for_provider(n) for n in ("siliconflow", "huggingface", "horde", "pollinations")
        )
        assert sf.base_url == "https://api.siliconflow.com/v1"
        assert sf.models == (
            "Kwai-Kolors/Kolors",
            "Tongyi-MAI/Z-Image-Turbo",
            "black-forest-labs/FLUX.1-schnell",
            "black-forest-labs/FLUX.1-dev",
            "Qwen/Qwen-Image",
        )
        assert hf.base_url == "https://router.huggingface.co"
        assert hf.hub_url == "https://huggingface.co"
        assert hf.models == (
            "black-forest-labs/FLUX.1-dev",
            "black-forest-labs/FLUX.1-schnell",
        )
        assert hf.inference_providers == ("fal-ai", "replicate", "wavespeed", "nscale", "together", "hf-inference")
        assert (hf.mapping_refresh_s, hf.mapping_max_age_s, hf.mapping_cache_s) == (3600, 21600, 60)
        assert horde.base_url == "https://aihorde.net/api/v2"
        assert horde.anonymous is True
        assert poll.base_url == "https://image.pollinations.ai"
        fal, replicate = settings.for_provider("fal"), settings.for_provider("replicate")
        assert (fal.base_url, getattr(fal, "api_url", None)) == ("https://queue.fal.run", "https://api.fal.ai")
        assert fal.models == ("fal-ai/flux/dev", "fal-ai/flux/schnell")
        assert replicate.base_url == "https://api.replicate.com/v1"
        assert replicate.models == ("black-forest-labs/flux-dev", "black-forest-labs/flux-schnell")
        assert getattr(replicate, "prefer_wait_s", None) == 1
        default_chain = ("siliconflow", "huggingface", "fal", "replicate", "horde", "pollinations")
        assert settings.chain.default_chain == default_chain
        assert (sf.api_key, hf.api_key, fal.api_key, replicate.api_key, poll.api_key) == (None,) * 5

    def test_given_every_variable_when_built_then_each_lands_and_keys_stay_secret(self) -> None:
        environ = {
            "SILICONFLOW_API_KEY": "sk-cfgSECRET",
            "SILICONFLOW_BASE_URL": "https://api.siliconflow.cn/v1/",
            "SILICONFLOW_MODELS": "Kwai-Kolors/Kolors, Qwen/Qwen-Image",
            "HF_TOKEN": "hf_cfgSECRET",
            "HF_ROUTER_URL": "http://127.0.0.1:9000",
            "HF_ENDPOINT": "http://127.0.0.1:9001",
            "HF_MODELS": "black-forest-labs/FLUX.1-schnell",
            "HF_INFERENCE_PROVIDERS": "together, hf-inference",
            "HF_MAPPING_REFRESH_SECONDS": "600",
            "HORDE_API_KEY": "horde-cfgSECRET",
            "HORDE_BASE_URL": "http://127.0.0.1:9002/api/v2",
            "HORDE_CLIENT_AGENT": "imagegen:0.1.0:ops@example.com",
            "POLLINATIONS_API_KEY": "sk_cfgSECRET",
            "IMAGEGEN_PROVIDERS": "pollinations,horde",
            "IMAGEGEN_HEDGE": "true",
            "IMAGEGEN_HEDGE_DELAY_S": "7.5",
        }
        settings = ProvidersSettings.from_environ(environ)
        sf, hf, horde, poll = _four(settings)
        assert sf.base_url == "https://api.siliconflow.cn/v1"
        assert sf.models == ("Kwai-Kolors/Kolors", "Qwen/Qwen-Image")
        assert hf.hub_url == "http://127.0.0.1:9001"
        assert (hf.inference_providers, hf.mapping_refresh_s) == (("together", "hf-inference"), 600)
        assert horde.anonymous is False
        assert horde.client_agent == "imagegen:0.1.0:ops@example.com"
        assert poll.base_url == "https://gen.pollinations.ai"
        assert settings.chain.default_chain == ("pollinations", "horde")
        assert settings.chain.hedge is True
        assert sf.hedge_delay_s == 7.5
        printed = repr(settings) + str(settings) + str(settings.model_dump()) + settings.model_dump_json()
        assert [k for k in ("sk-cfgSECRET", "hf_cfgSECRET", "horde-cfgSECRET", "sk_cfgSECRET") if k in printed] == []

    @pytest.mark.parametrize(
        "environ",
        [
            {"IMAGEGEN_PROVIDERS": "midjourney"},
            {"SILICONFLOW_BASE_URL": "ftp://x"},
            {"IMAGEGEN_HEDGE": "maybe"},
            {"HF_INFERENCE_PROVIDERS": "fal-ai,midjourney"},
            {"HF_INFERENCE_PROVIDERS": "auto,fal-ai"},
            {"HF_INFERENCE_PROVIDERS": "fal-ai,fal-ai"},
        ],
    )
    def test_given_a_bad_value_when_built_then_it_is_refused_at_cold_start(self, environ: dict[str, str]) -> None:
        with pytest.raises((ValidationError, ValueError)):
            ProvidersSettings.from_environ(environ)
