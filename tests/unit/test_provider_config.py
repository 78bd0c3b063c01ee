"""Provider settings from an environ mapping: names as in DESIGN.md, defaults, secrets that never print."""

from __future__ import annotations

import pytest
from imagegen.providers.config import ProvidersSettings
from pydantic import ValidationError


class TestProvidersSettings:
    def test_given_an_empty_environ_when_built_then_documented_defaults(self) -> None:
        settings = ProvidersSettings.from_environ({})
        assert settings.siliconflow.base_url == "https://api.siliconflow.com/v1"
        assert settings.siliconflow.models == (
            "Kwai-Kolors/Kolors",
            "black-forest-labs/FLUX.1-schnell",
            "Qwen/Qwen-Image",
        )
        assert settings.huggingface.base_url == "https://router.huggingface.co"
        assert settings.huggingface.hub_url == "https://huggingface.co"
        assert settings.huggingface.models == ("black-forest-labs/FLUX.1-dev", "black-forest-labs/FLUX.1-schnell")
        assert settings.huggingface.router_provider("black-forest-labs/FLUX.1-dev") == "hf-inference"
        assert settings.horde.base_url == "https://aihorde.net/api/v2"
        assert settings.horde.anonymous is True
        assert settings.pollinations.base_url == "https://image.pollinations.ai"
        assert settings.chain.default_chain == ("siliconflow", "huggingface", "horde", "pollinations")
        assert (settings.siliconflow.api_key, settings.huggingface.api_key, settings.pollinations.api_key) == (
            None,
            None,
            None,
        )

    def test_given_every_variable_when_built_then_each_lands_and_keys_stay_secret(self) -> None:
        environ = {
            "SILICONFLOW_API_KEY": "sk-cfgSECRET",
            "SILICONFLOW_BASE_URL": "https://api.siliconflow.cn/v1/",
            "SILICONFLOW_MODELS": "Kwai-Kolors/Kolors, Qwen/Qwen-Image",
            "HF_TOKEN": "hf_cfgSECRET",
            "HF_ROUTER_URL": "http://127.0.0.1:9000",
            "HF_ENDPOINT": "http://127.0.0.1:9001",
            "HF_MODELS": "black-forest-labs/FLUX.1-schnell",
            "HF_ROUTER_PROVIDERS": "black-forest-labs/FLUX.1-schnell=hf-inference",
            "HORDE_API_KEY": "horde-cfgSECRET",
            "HORDE_BASE_URL": "http://127.0.0.1:9002/api/v2",
            "HORDE_CLIENT_AGENT": "imagegen:0.1.0:ops@example.com",
            "POLLINATIONS_API_KEY": "sk_cfgSECRET",
            "IMAGEGEN_PROVIDERS": "pollinations,horde",
            "IMAGEGEN_HEDGE": "true",
            "IMAGEGEN_HEDGE_DELAY_S": "7.5",
        }
        settings = ProvidersSettings.from_environ(environ)
        assert settings.siliconflow.base_url == "https://api.siliconflow.cn/v1"
        assert settings.siliconflow.models == ("Kwai-Kolors/Kolors", "Qwen/Qwen-Image")
        assert settings.huggingface.hub_url == "http://127.0.0.1:9001"
        assert settings.horde.anonymous is False
        assert settings.horde.client_agent == "imagegen:0.1.0:ops@example.com"
        assert settings.pollinations.base_url == "https://gen.pollinations.ai"
        assert settings.chain.default_chain == ("pollinations", "horde")
        assert settings.chain.hedge is True
        assert settings.siliconflow.hedge_delay_s == 7.5
        printed = repr(settings) + str(settings) + str(settings.model_dump()) + settings.model_dump_json()
        assert [k for k in ("sk-cfgSECRET", "hf_cfgSECRET", "horde-cfgSECRET", "sk_cfgSECRET") if k in printed] == []

    @pytest.mark.parametrize(
        "environ",
        [
            {"IMAGEGEN_PROVIDERS": "midjourney"},
            {"SILICONFLOW_BASE_URL": "ftp://x"},
            {"IMAGEGEN_HEDGE": "maybe"},
            {"HF_ROUTER_PROVIDER": "fal-ai"},
        ],
    )
    def test_given_a_bad_value_when_built_then_it_is_refused_at_cold_start(self, environ: dict[str, str]) -> None:
        with pytest.raises((ValidationError, ValueError)):
            ProvidersSettings.from_environ(environ)
