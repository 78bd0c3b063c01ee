"""Where the client finds the API and its token: flags, then IMAGEGEN_URL/IMAGEGEN_TOKEN, then the config file."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

URL_VARIABLE = "IMAGEGEN_URL"
TOKEN_VARIABLE = "IMAGEGEN_TOKEN"  # noqa: S105 - the variable's name, not a token


class ConfigError(Exception):
    """The client cannot tell which API to call or with what token; the message says how to fix it."""


@dataclass(frozen=True)
class Settings:
    url: str
    token: str
    url_from: str  # "--url", "IMAGEGEN_URL" or the config file's path: named in messages, never the token
    token_from: str


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """imagegen/config.json in the XDG config dir ($XDG_CONFIG_HOME, else ~/.config)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "imagegen" / "config.json"


def normalize_url(url: str) -> str:
    """The base URL as given, without a trailing slash; a stage path (https://x.execute-api…/prod) is kept."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"not an http(s) URL: {url.strip()[:200]!r} (e.g. http://127.0.0.1:3000)")
    if parts.query or parts.fragment:
        raise ConfigError(f"the API URL takes no query or fragment: {url.strip()[:200]!r}")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def read_config(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc.__class__.__name__}; run `imagegen login` to rewrite it") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object; run `imagegen login` to rewrite it")
    return {key: value for key, value in data.items() if isinstance(value, str)}


def write_config(path: Path, url: str, token: str) -> None:
    """Writes the file readable by its owner only (0600), in a directory only the owner can list."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    # Created 0600 from the start (not chmod-ed after), so the token is never readable by others, even briefly.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump({"url": url, "token": token}, handle, indent=2)
        handle.write("\n")
    temporary.chmod(0o600)
    temporary.replace(path)


def resolve(
    url: str | None, token: str | None, environ: Mapping[str, str] | None = None, *, need_token: bool = True
) -> Settings:
    env = os.environ if environ is None else environ
    path = config_path(env)
    stored: dict[str, str] = {}
    if not (url and token):
        stored = read_config(path)
    chosen_url, url_from = _first(("--url", url), (URL_VARIABLE, env.get(URL_VARIABLE)), (str(path), stored.get("url")))
    chosen_token, token_from = _first(
        ("--token", token), (TOKEN_VARIABLE, env.get(TOKEN_VARIABLE)), (str(path), stored.get("token"))
    )
    if not chosen_url:
        raise ConfigError(f"no API URL: pass --url, set {URL_VARIABLE}, or run `imagegen login`")
    if need_token and not chosen_token:
        raise ConfigError(f"no API token: pass --token, set {TOKEN_VARIABLE}, or run `imagegen login`")
    return Settings(normalize_url(chosen_url), (chosen_token or "").strip(), url_from, token_from)


def _first(*candidates: tuple[str, str | None]) -> tuple[str | None, str]:
    for source, value in candidates:
        if value and value.strip():
            return value, source
    return None, ""
