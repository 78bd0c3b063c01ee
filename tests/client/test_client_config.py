"""The client's settings (flags, then environment, then config file) and its batch files, without a network."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from imagegen.client import batchfile, config

FILE_URL = "http://file.example:3000/prod/"
ENV_URL = "http://env.example:3000"


FILE_TOKEN = "file-token"


def _write(tmp_path: Path) -> dict[str, str]:
    environ = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    config.write_config(config.config_path(environ), FILE_URL, FILE_TOKEN)
    return environ


def test_given_a_config_file_when_nothing_else_is_set_then_its_url_and_token_are_used(tmp_path: Path):
    # Given
    environ = _write(tmp_path)
    # When
    settings = config.resolve(None, None, environ)
    # Then
    assert (settings.url, settings.token) == ("http://file.example:3000/prod", "file-token")
    assert settings.url_from == settings.token_from == str(tmp_path / "xdg" / "imagegen" / "config.json")


def test_given_file_and_environment_when_resolved_then_the_environment_wins_and_flags_win_over_both(tmp_path: Path):
    environ = {**_write(tmp_path), "IMAGEGEN_URL": ENV_URL, "IMAGEGEN_TOKEN": "env-token"}

    from_env = config.resolve(None, None, environ)
    from_flags = config.resolve("https://flag.example/stage", "flag-token", environ)
    mixed = config.resolve(None, "flag-token", {**environ, "IMAGEGEN_URL": ""})

    assert (from_env.url, from_env.token, from_env.url_from) == (ENV_URL, "env-token", "IMAGEGEN_URL")
    assert (from_flags.url, from_flags.token, from_flags.token_from) == (
        "https://flag.example/stage",
        "flag-token",
        "--token",
    )
    assert (mixed.url, mixed.token) == ("http://file.example:3000/prod", "flag-token")


def test_given_login_writes_the_file_when_it_is_created_then_only_its_owner_can_read_it(tmp_path: Path):
    environ = _write(tmp_path)

    path = config.config_path(environ)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"url": FILE_URL, "token": "file-token"}


def test_given_no_xdg_variable_when_the_path_is_asked_then_it_is_under_home_dot_config(tmp_path: Path):
    assert config.config_path({}) == Path.home() / ".config" / "imagegen" / "config.json"


@pytest.mark.parametrize(
    ("url", "token", "message"),
    [
        (None, "t", "no API URL: pass --url, set IMAGEGEN_URL, or run `imagegen login`"),
        ("http://x", None, "no API token: pass --token, set IMAGEGEN_TOKEN, or run `imagegen login`"),
        ("ftp://x", "t", "not an http(s) URL: 'ftp://x' (e.g. http://127.0.0.1:3000)"),
        ("http://x/?a=1", "t", "the API URL takes no query or fragment: 'http://x/?a=1'"),
    ],
)
def test_given_a_missing_or_bad_setting_when_resolved_then_the_error_says_how_to_fix_it(
    tmp_path: Path, url: str | None, token: str | None, message: str
):
    with pytest.raises(config.ConfigError) as raised:
        config.resolve(url, token, {"XDG_CONFIG_HOME": str(tmp_path)})
    assert str(raised.value) == message


def test_given_a_broken_config_file_when_resolved_then_the_error_names_it_and_login(tmp_path: Path):
    path = tmp_path / "imagegen" / "config.json"
    path.parent.mkdir()
    path.write_text("{not json")

    with pytest.raises(config.ConfigError) as raised:
        config.resolve(None, None, {"XDG_CONFIG_HOME": str(tmp_path)})

    assert str(raised.value) == f"cannot read {path}: JSONDecodeError; run `imagegen login` to rewrite it"


def test_given_the_api_body_with_names_when_loaded_then_names_are_removed_and_flags_override_defaults(tmp_path: Path):
    path = tmp_path / "story.json"
    path.write_text(
        json.dumps(
            {
                "defaults": {"width": 512, "height": 512, "seed": 7},
                "items": [{"prompt": "A fox, in snow!", "seed": 8}, {"prompt": "an owl", "name": "owl.png"}, "a hen"],
            }
        )
    )

    plan = batchfile.load(path, {"width": 768, "height": 512})

    assert plan.body == {
        "defaults": {"width": 768, "height": 512, "seed": 7},
        "items": [{"prompt": "A fox, in snow!", "seed": 8}, {"prompt": "an owl"}, {"prompt": "a hen"}],
    }
    assert plan.names == ["01-a-fox-in-snow", "owl", "03-a-hen"]


def test_given_a_text_file_when_loaded_then_each_line_but_comments_and_blanks_is_a_prompt(tmp_path: Path):
    path = tmp_path / "prompts.txt"
    path.write_text("# chapter one\na fox\n\n  an owl  \n")

    plan = batchfile.load(path)

    assert plan.body == {"items": [{"prompt": "a fox"}, {"prompt": "an owl"}]}
    assert plan.names == ["01-a-fox", "02-an-owl"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"prompts": []}', 'expected {"items": [...]} (the body of POST /v1/batches) or a list of prompts'),
        ("[]", "no prompts in it"),
        ("[1]", "items.0 must be a prompt or an object with a prompt"),
        ('[{"prompt": "a", "name": "x"}, {"prompt": "b", "name": "x"}]', "items.1.name 'x' is used twice"),
        ('[{"prompt": "a", "name": "../.."}]', "items.0.name must be a file name (letters, digits, . _ -)"),
        (json.dumps(["p"] * 51), "51 items; a batch holds at most 50"),
    ],
)
def test_given_a_bad_batch_file_when_loaded_then_the_error_names_the_problem(tmp_path: Path, text: str, problem: str):
    path = tmp_path / "story.json"
    path.write_text(text)

    with pytest.raises(batchfile.BatchFileError) as raised:
        batchfile.load(path)

    assert str(raised.value) == f"{path}: {problem}"
