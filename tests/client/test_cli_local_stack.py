"""The `imagegen` client commands, run as a user runs them (a subprocess), against the local stack over HTTP."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import stat
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from imagegen.local import LocalStack
from PIL import Image

from tests.doubles.keycheck import KeyCheckDouble
from tests.doubles.pollinations import PollinationsDouble

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.doubles.local_stack"]

USERS = ("gen", "batch", "jobs", "keys", "login", "stop", "stoptty")
SF_KEY = "sk-CliTestKey0000000001"
# Anything a terminal would act on; plain output may hold only text, tabs and newlines.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
JOB_ID = re.compile(r"img_[0-9A-Z]{26}")
# What tests.doubles.local_stack's local_stack_factory gives (not imported: pytest_plugins loads that module).
StartStack = Callable[..., LocalStack]
NO_KEY_HINT = "hint: Set SILICONFLOW_API_KEY, or add a keyless provider"


@dataclass(frozen=True)
class Doubles:
    keycheck: KeyCheckDouble
    pollinations: PollinationsDouble


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def doubles() -> Iterator[Doubles]:
    with KeyCheckDouble() as keycheck, PollinationsDouble() as pollinations:
        yield Doubles(keycheck, pollinations)
        # A held request must not keep a worker waiting while the stack stops.
        pollinations.server.release()


@pytest.fixture
def stack(local_stack_factory: StartStack, doubles: Doubles) -> LocalStack:
    """Placeholder by default, key checks on their double, and Pollinations on a double that a test can hold to
    keep a job running. Users by test role keep their jobs and keys apart."""
    return local_stack_factory(
        run_schedules=False,
        env_overrides={
            "IMAGEGEN_PROVIDERS": "placeholder",
            "IMAGEGEN_LOCAL_TOKENS": ",".join(f"{user}:igk_cli-test-{user}-0000000000" for user in USERS),
            "IMAGEGEN_LOCAL_WORKER_CONCURRENCY": "3",
            "SILICONFLOW_API_KEY": "",
            "KEYCHECK_TIMEOUT_SECONDS": "2",
            "POLLINATIONS_BASE_URL": doubles.pollinations.base_url,
            **doubles.keycheck.env,
        },
    )


def _environ(home: Path, stack: LocalStack | None, user: str | None, **extra: str) -> dict[str, str]:
    environ = {"PATH": os.environ["PATH"], "HOME": str(home), "XDG_CONFIG_HOME": str(home / "xdg"), "LANG": "C.UTF-8"}
    if stack is not None and user is not None:
        environ.update(IMAGEGEN_URL=stack.url, IMAGEGEN_TOKEN=stack.tokens[user])
    environ.update(extra)
    return environ


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "imagegen.cli", *args]


def _default_sigint() -> None:
    # The CLI must get SIGINT as from a terminal even when the test runner was started with it ignored.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(
    home: Path, *args: str, stack: LocalStack | None = None, user: str | None = None, stdin: str = "", **extra: str
) -> Run:
    completed = subprocess.run(  # noqa: S603 - our own CLI
        _command(*args),
        input=stdin,
        capture_output=True,
        text=True,
        env=_environ(home, stack, user, **extra),
        cwd=home,
        timeout=90,
        check=False,
    )
    return Run(completed.returncode, completed.stdout, completed.stderr)


def api(stack: LocalStack, user: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.url, headers={"Authorization": f"Bearer {stack.tokens[user]}"}, timeout=httpx.Timeout(30.0)
    )


def _read_until(fd: int, needle: bytes, seen: bytes = b"", timeout: float = 30.0) -> bytes:
    """Reads a pipe or pty until `needle` shows up (a guard against a hung CLI, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    data = seen
    while needle not in data:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(remaining, 0))
        if not ready:
            raise AssertionError(f"{needle!r} did not appear; got {data[-2000:]!r}")
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # a pty whose other side closed
            chunk = b""
        if not chunk:
            raise AssertionError(f"output ended before {needle!r}; got {data[-2000:]!r}")
        data += chunk
    return data


def _plain(text: str) -> None:
    assert not CONTROL.search(text), f"control characters in {text!r}"


# generate, get, cancel


def test_given_the_local_stack_when_generate_writes_a_file_then_it_is_the_png_asked_for_and_progress_is_plain_lines(
    stack: LocalStack, tmp_path: Path
):
    # Given a non-terminal (pipes), as in CI
    target = tmp_path / "fox.png"
    # When
    run = cli(tmp_path, "generate", "a fox in snow", "-o", str(target), "--size", "320x256", stack=stack, user="gen")
    # Then
    assert (run.code, run.err) == (0, "")
    with Image.open(target) as image:
        assert (image.format, image.size) == ("PNG", (320, 256))
    lines = run.out.splitlines()
    job_id = lines[0].split()[0]
    assert lines[0] == f"{job_id} queued"
    assert set(lines[1:-2]) <= {f"{job_id} running"}
    assert lines[-2:] == [f"{job_id} succeeded: placeholder, 1 attempt, 320x256", f"saved {target}"]
    _plain(run.out)
    with api(stack, "gen") as client:
        job = client.get(f"/v1/images/{job_id}").json()
    assert (job["status"], job["provider"], job["request"]["prompt"]) == ("succeeded", "placeholder", "a fox in snow")


def test_given_no_wait_when_generate_runs_then_it_prints_the_queued_job_and_how_to_fetch_it(
    stack: LocalStack, tmp_path: Path
):
    run = cli(tmp_path, "generate", "an owl at night", stack=stack, user="gen")
    as_json = cli(tmp_path, "generate", "a hen", "--json", stack=stack, user="gen")

    assert run.code == 0
    job_id = run.out.split()[0]
    assert run.out == f"{job_id} queued\nwait for it and save it: imagegen get {job_id} -o FILE\n"
    assert as_json.code == 0
    assert json.loads(as_json.out)["request"]["prompt"] == "a hen"
    with api(stack, "gen") as client:
        assert client.get(f"/v1/images/{job_id}").json()["request"]["prompt"] == "an owl at night"


def test_given_a_stage_path_in_the_url_when_get_saves_a_job_then_the_image_comes_through_it(
    stack: LocalStack, tmp_path: Path
):
    # Given a job, and the execute-api style URL of a deployed stack (…/<stage>)
    created = cli(tmp_path, "generate", "a lighthouse", "--size", "256x256", stack=stack, user="gen")
    job_id = created.out.split()[0]
    # When
    run = cli(tmp_path, "get", job_id, "-o", "out/", stack=stack, user="gen", IMAGEGEN_URL=f"{stack.url}/api")
    shown = cli(tmp_path, "get", job_id, stack=stack, user="gen")
    canceled = cli(tmp_path, "cancel", job_id, stack=stack, user="gen")
    # Then
    assert run.code == 0, run.err
    with Image.open(tmp_path / "out" / f"{job_id}.png") as image:
        assert image.size == (256, 256)
    assert run.out.splitlines()[-1] == f"saved out/{job_id}.png"
    assert shown.out == f"{job_id} succeeded: placeholder, 1 attempt, 256x256\n"
    assert (canceled.code, canceled.out) == (3, "")
    assert canceled.err == f"error: job {job_id} is succeeded and can no longer be canceled (conflict, HTTP 409)\n"


def test_given_a_provider_without_a_key_when_generate_waits_then_it_exits_1_with_the_jobs_error_and_hint(
    stack: LocalStack, tmp_path: Path
):
    run = cli(tmp_path, "generate", "a fox", "--provider", "siliconflow", "--wait", stack=stack, user="gen")

    assert run.code == 1
    job_id = run.out.split()[0]
    assert run.out.splitlines()[-1] == f"{job_id} failed"
    error, hint = run.err.splitlines()
    assert error.startswith(f"error: {job_id} no_providers_configured: No provider in the chain has a usable key: ")
    assert "siliconflow/Kwai-Kolors/Kolors: skipped no_key" in error
    assert hint.startswith(NO_KEY_HINT)
    assert not list(tmp_path.glob("*.png"))


def test_given_bad_input_when_a_command_runs_then_the_api_error_is_one_line_and_the_exit_code_says_whose(
    stack: LocalStack, tmp_path: Path
):
    too_big = cli(tmp_path, "generate", "a fox", "--size", "4096x512", stack=stack, user="gen")
    bad_size = cli(tmp_path, "generate", "a fox", "--size", "big", stack=stack, user="gen")
    unknown = cli(tmp_path, "get", "img_01ARZ3NDEKTSV4RRFFQ69G5FAV", stack=stack, user="gen")

    assert (too_big.code, too_big.out) == (3, "")
    assert too_big.err == ("error: width: Input should be less than or equal to 2048 (validation_error, HTTP 422)\n")
    assert bad_size.code == 2
    assert "argument --size: expected WIDTHxHEIGHT such as 768x512, got 'big'" in bad_size.err
    assert (unknown.code, unknown.err) == (
        3,
        "error: no image job with id img_01ARZ3NDEKTSV4RRFFQ69G5FAV (not_found, HTTP 404)\n",
    )


# batch


def test_given_a_batch_with_an_item_that_fails_when_run_then_images_are_written_and_the_failure_explained(
    stack: LocalStack, tmp_path: Path
):
    # Given a story: a named item, an item whose only provider has no key, an unnamed item
    story = tmp_path / "story.json"
    items = [
        {"prompt": "a fox finds a lantern", "name": "fox"},
        {"prompt": "an owl watches", "providers": ["siliconflow"]},
        "a hen",
    ]
    story.write_text(json.dumps({"defaults": {"width": 512, "height": 512}, "items": items}))
    out = tmp_path / "out"
    # When
    run = cli(tmp_path, "batch", str(story), "-o", str(out), "--size", "256x192", stack=stack, user="batch")
    # Then
    assert run.code == 1
    assert sorted(path.name for path in out.iterdir()) == ["03-a-hen.png", "fox.png"]
    for name in ("fox.png", "03-a-hen.png"):
        with Image.open(out / name) as image:
            assert (image.format, image.size) == ("PNG", (256, 192))
    lines = run.out.splitlines()
    batch_id = lines[0].split()[1].rstrip(":")
    assert lines[0] == f"batch {batch_id}: 3 items"
    assert lines[-1] == f"batch {batch_id} partial: 2 of 3 saved to {out}, 1 did not succeed"
    ends = [line for line in lines if "done)" in line]
    assert [line.rsplit("(", 1)[1] for line in ends] == ["1/3 done)", "2/3 done)", "3/3 done)"]
    assert f"[1/3] succeeded placeholder -> {out / 'fox.png'}  (" in run.out
    assert f"[3/3] succeeded placeholder -> {out / '03-a-hen.png'}  (" in run.out
    failed = next(index for index, line in enumerate(lines) if line.startswith("[2/3] failed: "))
    assert lines[failed].startswith("[2/3] failed: no_providers_configured: No provider in the chain has a usable key")
    assert lines[failed + 1].startswith(f"      {NO_KEY_HINT}")
    _plain(run.out)
    with api(stack, "batch") as client:
        batch = client.get(f"/v1/batches/{batch_id}").json()
    assert (batch["status"], batch["progress"]) == ("partial", "3/3")
    assert [item["status"] for item in batch["items"]] == ["succeeded", "failed", "succeeded"]


def test_given_a_text_file_of_prompts_when_batch_runs_then_every_image_is_saved_and_it_exits_0(
    stack: LocalStack, tmp_path: Path
):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# two birds\na crow\na swan\n")

    run = cli(tmp_path, "batch", str(prompts), "--size", "128x128", stack=stack, user="batch")

    assert run.code == 0, run.out + run.err
    assert sorted(path.name for path in tmp_path.glob("*.png")) == ["01-a-crow.png", "02-a-swan.png"]
    assert run.out.splitlines()[-1].endswith("succeeded: 2 of 2 saved to .")


def test_given_an_unreadable_batch_file_when_batch_runs_then_it_exits_2_before_calling_the_api(
    stack: LocalStack, tmp_path: Path
):
    story = tmp_path / "story.json"
    story.write_text('{"items": "a fox"}')

    run = cli(tmp_path, "batch", str(story), stack=stack, user="batch")

    assert run.code == 2
    assert run.err == (
        f'error: {story}: expected {{"items": [...]}} (the body of POST /v1/batches) or a list of prompts\n'
    )


# jobs, providers


def test_given_two_jobs_when_jobs_lists_them_then_the_newest_comes_first_and_limit_is_kept(
    stack: LocalStack, tmp_path: Path
):
    with api(stack, "jobs") as client:
        first = client.post("/v1/images", json={"prompt": "first", "width": 128, "height": 128}).json()["id"]
        second = client.post("/v1/images", json={"prompt": "second", "width": 128, "height": 128}).json()["id"]

    one = cli(tmp_path, "jobs", "--limit", "1", stack=stack, user="jobs")
    both = cli(tmp_path, "jobs", "--json", stack=stack, user="jobs")

    assert one.code == 0
    rows = one.out.splitlines()
    assert rows[0].split() == ["id", "status", "provider", "size", "created", "prompt"]
    assert len(rows) == 2
    assert rows[1].split()[0] == second
    assert rows[1].split()[-1] == "second"
    assert [job["id"] for job in json.loads(both.out)["items"]] == [second, first]


def test_given_the_placeholder_chain_when_providers_runs_then_it_shows_the_link_and_its_key_source(
    stack: LocalStack, tmp_path: Path
):
    run = cli(tmp_path, "providers", stack=stack, user="gen")
    as_json = cli(tmp_path, "providers", "--json", stack=stack, user="gen")

    assert run.code == 0
    assert run.out.splitlines()[1].split()[:5] == ["placeholder", "yes", "keyless", "-", "closed"]
    assert [link["provider"] for link in json.loads(as_json.out)["items"]] == ["placeholder"]


# keys


def test_given_a_key_on_stdin_when_keys_set_list_delete_run_then_the_key_is_never_shown_and_health_is(
    stack: LocalStack, doubles: Doubles, tmp_path: Path
):
    stored = cli(tmp_path, "keys", "set", "siliconflow", "--key-stdin", stdin=SF_KEY + "\n", stack=stack, user="keys")
    listed = cli(tmp_path, "keys", "list", stack=stack, user="keys")
    deleted = cli(tmp_path, "keys", "delete", "siliconflow", stack=stack, user="keys")
    again = cli(tmp_path, "keys", "delete", "siliconflow", stack=stack, user="keys")
    empty = cli(tmp_path, "keys", "list", stack=stack, user="keys")

    assert stored.code == 0
    assert stored.out.startswith("siliconflow key …0001 stored; check: ok")
    assert listed.out.splitlines()[1].split()[:3] == ["siliconflow", "…0001", "ok"]
    assert (deleted.code, deleted.out) == (0, "siliconflow key deleted\n")
    assert (again.code, again.err) == (
        3,
        "error: you have no siliconflow key (not_found, HTTP 404)\nhint: PUT /v1/keys/siliconflow stores one\n",
    )
    assert empty.out == "no keys stored: imagegen keys set PROVIDER\n"
    for run in (stored, listed, deleted, again, empty):
        assert SF_KEY not in run.out + run.err
    # The key went to the provider's key check (its double) and nowhere else the test can see.
    assert SF_KEY in [seen.key for seen in doubles.keycheck.seen]


def test_given_a_key_in_the_wrong_format_when_keys_set_runs_then_the_422_is_one_line_without_the_key(
    stack: LocalStack, tmp_path: Path
):
    wrong = "hf_not-a-siliconflow-key\n"
    run = cli(tmp_path, "keys", "set", "siliconflow", "--key-stdin", stdin=wrong, stack=stack, user="keys")

    assert (run.code, run.out) == (3, "")
    assert run.err == (
        "error: api_key: expected a SiliconFlow API key: sk- followed by 8-200 letters, digits, _ or - "
        "(validation_error, HTTP 422)\n"
    )


def test_given_stdin_is_not_a_terminal_when_keys_set_has_no_key_stdin_then_it_refuses_to_read_it(
    stack: LocalStack, tmp_path: Path
):
    run = cli(tmp_path, "keys", "set", "siliconflow", stdin=SF_KEY, stack=stack, user="keys")

    assert run.code == 2
    assert run.err == "error: standard input is not a terminal: pass --key-stdin to read the key from it\n"


# login and where settings come from


def test_given_login_when_the_token_is_right_then_the_config_file_is_written_0600_and_used_after_env_and_flags(
    stack: LocalStack, tmp_path: Path
):
    token = stack.tokens["login"]
    path = tmp_path / "xdg" / "imagegen" / "config.json"
    nothing = cli(tmp_path, "jobs")
    refused = cli(tmp_path, "login", "--url", stack.url, "--token-stdin", stdin="igk_wrong\n")
    assert not path.exists()

    logged_in = cli(tmp_path, "login", "--url", stack.url + "/", "--token-stdin", stdin=token + "\n")
    from_file = cli(tmp_path, "jobs")
    env_wins = cli(tmp_path, "jobs", IMAGEGEN_TOKEN="igk_wrong")
    flag_wins = cli(tmp_path, "jobs", "--token", token, IMAGEGEN_TOKEN="igk_wrong")
    closed = cli(tmp_path, "jobs", "--url", "http://127.0.0.1:9")

    assert nothing.code == 2
    assert nothing.err == "error: no API URL: pass --url, set IMAGEGEN_URL, or run `imagegen login`\n"
    assert refused.code == 3
    assert refused.err.startswith("error: Missing or invalid API token. (unauthorized, HTTP 401)\n")
    assert logged_in.code == 0
    assert logged_in.out == f"logged in to {stack.url}; saved to {path} (readable by you only)\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"url": stack.url, "token": token}
    assert token not in logged_in.out + logged_in.err
    assert (from_file.code, from_file.out) == (0, 'no jobs yet: imagegen generate "a prompt" -o image.png\n')
    assert env_wins.code == 3
    assert flag_wins.code == 0
    assert (closed.code, closed.err) == (4, "error: cannot reach http://127.0.0.1:9: Connection refused\n")


# Ctrl-C


def test_given_generate_waits_off_a_terminal_when_it_gets_sigint_then_the_job_keeps_running_and_its_id_is_printed(
    stack: LocalStack, doubles: Doubles, tmp_path: Path
):
    # Given a job held at its provider, so that it is running when the signal comes
    doubles.pollinations.server.hold()
    try:
        process = subprocess.Popen(  # noqa: S603 - our own CLI
            _command("generate", "a slow fox", "--provider", "pollinations", "--size", "256x256", "-o", "fox.png"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_environ(tmp_path, stack, "stop"),
            cwd=tmp_path,
            preexec_fn=_default_sigint,
        )
        assert process.stdout is not None
        assert doubles.pollinations.server.wait_held(1, timeout=30)
        seen = _read_until(process.stdout.fileno(), b" running")
        # When
        process.send_signal(signal.SIGINT)
        rest, err = process.communicate(timeout=30)
        out = (seen + rest).decode()
        job_id = out.split()[0]
        with api(stack, "stop") as client:
            status = client.get(f"/v1/images/{job_id}").json()["status"]
    finally:
        doubles.pollinations.server.release()
    # Then
    assert status == "running"
    assert process.returncode == 130
    assert err.decode() == f"error: interrupted: job {job_id} keeps running on the server (not canceled)\n"
    assert out.splitlines()[-1] == f"job {job_id} keeps running; save it later with: imagegen get {job_id} -o FILE"
    assert not (tmp_path / "fox.png").exists()


def test_given_generate_waits_on_a_terminal_when_it_gets_sigint_and_the_user_says_yes_then_the_job_is_canceled(
    stack: LocalStack, doubles: Doubles, tmp_path: Path
):
    # Given a terminal (a pty), and a job held at its provider
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    doubles.pollinations.server.hold()
    try:
        process = subprocess.Popen(  # noqa: S603 - our own CLI
            _command("generate", "a slow owl", "--provider", "pollinations", "--size", "256x256", "-o", "owl.png"),
            stdin=secondary,
            stdout=secondary,
            stderr=secondary,
            env=_environ(tmp_path, stack, "stoptty", TERM="xterm-256color"),
            cwd=tmp_path,
            preexec_fn=_default_sigint,
        )
        os.close(secondary)
        assert doubles.pollinations.server.wait_held(1, timeout=30)
        seen = _read_until(primary, b"running")
        # When Ctrl-C, then "y" at the prompt
        process.send_signal(signal.SIGINT)
        seen = _read_until(primary, b"[y/N]", seen)
        os.write(primary, b"y\n")
        seen = _read_until(primary, b" canceled", seen)
        assert process.wait(timeout=30) == 130
    finally:
        doubles.pollinations.server.release()
        os.close(primary)
    # Then
    text = seen.decode(errors="replace")
    job_id = JOB_ID.findall(text)[0]
    assert f"Cancel job {job_id}? [y/N]" in text
    assert f"job {job_id} canceled" in text
    with api(stack, "stoptty") as client:
        job: dict[str, Any] = client.get(f"/v1/images/{job_id}").json()
    assert job["status"] == "canceled"
    assert not (tmp_path / "owl.png").exists()
