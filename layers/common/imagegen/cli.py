"""The `imagegen` command: the local stack, one-off local invocations, API tokens, and the client commands."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def _parser() -> argparse.ArgumentParser:
    from imagegen.client.parser import EXIT_CODES, add_commands

    parser = argparse.ArgumentParser(
        prog="imagegen",
        description="imagegen command line",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_commands(commands)

    local = commands.add_parser(
        "local",
        help="run the whole service locally on an embedded AWS emulator",
        description="Run the API, the authorizer, the worker and the schedule from template.yaml in one process.",
    )
    local.add_argument("--host", default="127.0.0.1", help="address the API listens on (default 127.0.0.1)")
    local.add_argument("--port", type=int, default=3000, help="port the API listens on (default 3000)")
    local.add_argument("--template", default="template.yaml", help="SAM template (default template.yaml)")
    local.add_argument("--root", default=".", help="project directory the template's paths are relative to")
    local.add_argument("--verbose", action="store_true", help="debug logging from the local stack")
    local_commands = local.add_subparsers(dest="local_command")
    invoke = local_commands.add_parser(
        "invoke",
        help="run one function on one event and print its result, as `sam local invoke` does",
    )
    invoke.add_argument("function", help="logical id (ApiFunction) or code directory (api)")
    invoke.add_argument("-e", "--event", required=True, help="event JSON file, or - for standard input")
    invoke.add_argument("--template", default="template.yaml", help="SAM template (default template.yaml)")
    invoke.add_argument("--root", default=".", help="project directory the template's paths are relative to")

    _add_token_commands(commands)
    return parser


def _add_token_commands(commands: Any) -> None:
    tokens = commands.add_parser(
        "tokens",
        help="manage API tokens",
        description=(
            "Uses the AWS credentials and region of the environment. For a deployed stack pass the stack output "
            "TableName; for a running local stack set AWS_ENDPOINT_URL to the emulator it printed. The API caches a "
            "token's verdict for up to 5 minutes: a revoked or expired token can work that long after."
        ),
    )
    token_commands = tokens.add_subparsers(dest="tokens_command", required=True)
    create = token_commands.add_parser(
        "create", help="issue an API token for a user and print it (only its SHA-256 is stored)"
    )
    create.add_argument("--user", required=True, help="user id the token stands for")
    create.add_argument(
        "--expires-in", default=None, help="lifetime, e.g. 3600s, 90m, 12h or 30d (default: until revoked)"
    )
    listing = token_commands.add_parser("list", help="list tokens: id (a prefix of the hash), user, created, expires")
    listing.add_argument("--user", default=None, help="only this user's tokens")
    revoke = token_commands.add_parser("revoke", help="delete a token by its id, or every token of a user")
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("token_id", nargs="?", help="the id `imagegen tokens list` shows (a unique prefix will do)")
    which.add_argument("--user", default=None, help="revoke every token of this user")
    reindex = token_commands.add_parser(
        "reindex", help="make tokens issued before `tokens list` existed listable (scans the table once)"
    )
    for command in (create, listing, revoke, reindex):
        command.add_argument("--table", default=None, help="table name (default: $TABLE_NAME)")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "client", None):
        return _client(args)
    if args.command == "local" and args.local_command == "invoke":
        return _local_invoke(args)
    if args.command == "local":
        return _local(args)
    return _tokens(args)


def _client(args: argparse.Namespace) -> int:
    try:
        from imagegen.client.commands import run
    except ImportError as exc:  # the client's terminal library is an extra: the Lambda layer does not carry it
        print(f"imagegen {args.client}: {exc}; install the client with: pip install 'imagegen[cli]'", file=sys.stderr)
        return 2
    return run(args)


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from imagegen.local.logs import LOGGER_NAME

    logging.getLogger(LOGGER_NAME).setLevel(logging.DEBUG if verbose else logging.INFO)


def _local(args: argparse.Namespace) -> int:
    from imagegen.local import LocalStack, LocalStackError
    from imagegen.local.cfn import TemplateError

    _configure_logging(args.verbose)
    stopping = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    stack = LocalStack(root=args.root, template=args.template, host=args.host, port=args.port)
    try:
        stack.start()
    except (LocalStackError, TemplateError, OSError) as exc:
        print(f"imagegen local: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"imagegen local stack ready at {stack.url}", flush=True)
        for user, token in stack.tokens.items():
            print(f"token for {user}: {token}", flush=True)
        print(f"AWS emulator at {stack.aws_endpoint} (region {stack.region})", flush=True)
        stopping.wait()
    finally:
        print("imagegen local: stopping", file=sys.stderr, flush=True)
        stack.stop()
    return 0


def _local_invoke(args: argparse.Namespace) -> int:
    from imagegen.local import LocalStack, LocalStackError
    from imagegen.local.cfn import TemplateError

    _configure_logging(verbose=False)
    try:
        text = sys.stdin.read() if args.event == "-" else Path(args.event).read_text(encoding="utf-8")
        event = json.loads(text)
    except (OSError, ValueError) as exc:
        print(f"imagegen local invoke: cannot read the event: {exc}", file=sys.stderr)
        return 1
    stdout = sys.stdout
    stack = LocalStack(
        root=args.root,
        template=args.template,
        serve_http=False,
        run_workers=False,
        run_schedules=False,
    )
    # Handlers log to stdout (Powertools does); keep stdout for the result alone, as `sam local invoke` does.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            stack.start()
        except (LocalStackError, TemplateError, OSError) as exc:
            print(f"imagegen local invoke: {exc}", file=sys.stderr)
            return 1
        try:
            result: Any = stack.invoke(args.function, event)
            status = 0
        except LocalStackError as exc:
            print(f"imagegen local invoke: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:  # noqa: BLE001 - reported, as Lambda reports an invocation error
            # The shape Lambda reports an invocation error in.
            result = {
                "errorMessage": str(exc),
                "errorType": type(exc).__name__,
                "stackTrace": _handler_frames(exc),
            }
            status = 1
        finally:
            stack.stop()
    print(json.dumps(result), file=stdout, flush=True)
    return status


def _handler_frames(exc: BaseException) -> list[str]:
    """The traceback from the handler down, without the local stack's own frames (Lambda shows no runtime frames)."""
    local_package = str(Path(__file__).resolve().parent / "local")
    frames = traceback.extract_tb(exc.__traceback__)
    kept = [frame for frame in frames if not frame.filename.startswith(local_package) and frame.filename != __file__]
    return traceback.format_list(kept)


_DURATION = re.compile(r"^(\d{1,7})([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`3600s`, `90m`, `12h`, `30d` -> a timedelta; ValueError otherwise."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"--expires-in takes a positive number with s, m, h or d (e.g. 30d), not {text!r}")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def _tokens(args: argparse.Namespace) -> int:
    import boto3

    from imagegen.adapters.tokens import TokenNotFound, TokenStore

    name = f"imagegen tokens {args.tokens_command}"
    table = args.table or os.environ.get("TABLE_NAME")
    if not table:
        print(f"{name}: pass --table (the stack output TableName) or set TABLE_NAME", file=sys.stderr)
        return 2
    store = TokenStore(table, boto3.client("dynamodb"))
    try:
        if args.tokens_command == "create":
            expires_in = parse_duration(args.expires_in) if args.expires_in else None
            print(store.issue(args.user, expires_in=expires_in))
        elif args.tokens_command == "list":
            _print_tokens(store.list(args.user))
        elif args.tokens_command == "reindex":
            print(f"indexed {store.reindex()} token(s)")
        elif args.user:
            revoked = store.revoke_user(args.user)
            print(f"revoked {len(revoked)} token(s) of {args.user}")
        else:
            info = store.revoke(args.token_id)
            print(f"revoked {info.id} ({info.user_id})")
    except (ValueError, TokenNotFound) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    return 0


def _print_tokens(tokens: Sequence[Any]) -> None:
    now = datetime.now(UTC)
    print(f"{'ID':<16}  {'USER':<24}  {'CREATED':<25}  EXPIRES")
    for info in tokens:
        expires = info.expires_at.isoformat(timespec="seconds") if info.expires_at else "never"
        if info.expired(now):
            expires += " (expired)"
        print(f"{info.id:<16}  {info.user_id:<24}  {info.created_at.isoformat(timespec='seconds'):<25}  {expires}")


if __name__ == "__main__":
    sys.exit(main())
