"""The client commands' arguments (argparse only, so `imagegen local` does not load the client's libraries)."""

from __future__ import annotations

import argparse
import re
from typing import Any

EXIT_CODES = """exit codes (client commands):
  0    done (the job or every batch item succeeded)
  1    a job failed or was canceled (a batch: any item did not succeed)
  2    usage: bad arguments, unreadable batch file, no URL or token configured
  3    the API refused the request (its error code, message and hint are printed)
  4    the API could not be reached, or did not answer in time
  130  interrupted (Ctrl-C)

The API URL and token come from --url/--token, else IMAGEGEN_URL/IMAGEGEN_TOKEN, else the config file
that `imagegen login` writes ($XDG_CONFIG_HOME/imagegen/config.json, or ~/.config/imagegen/config.json)."""

_SIZE = re.compile(r"^(\d{2,4})[xX](\d{2,4})$")


def size(value: str) -> tuple[int, int]:
    match = _SIZE.fullmatch(value.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 768x512, got {value!r}")
    return int(match.group(1)), int(match.group(2))


def limit(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 1 to 100, got {value!r}") from None
    if not 1 <= number <= 100:
        raise argparse.ArgumentTypeError(f"expected a number from 1 to 100, got {number}")
    return number


def _connection() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument("--url", help="API base URL, e.g. http://127.0.0.1:3000 or https://….execute-api…/prod")
    group.add_argument("--token", help="API token (prefer IMAGEGEN_TOKEN or `imagegen login`: flags show in ps)")
    return parent


def _request_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=size, help="WIDTHxHEIGHT, e.g. 768x512 (default: the API's, 1024x1024)")
    parser.add_argument(
        "--provider",
        action="append",
        metavar="NAME",
        help="a provider to use, in order; repeat for a chain (default: the deployment's chain)",
    )


def add_commands(commands: Any) -> None:
    """Adds the client commands to the `imagegen` subparsers; each sets `client` to its command's name."""
    connection = _connection()

    def add(name: str, into: Any = commands, **kwargs: Any) -> argparse.ArgumentParser:
        # --url/--token on the leaf commands only: argparse lets a subcommand's defaults overwrite its parent's values.
        parser: argparse.ArgumentParser = into.add_parser(
            name.split()[-1],
            parents=[connection],
            epilog=EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            **kwargs,
        )
        parser.set_defaults(client=name)
        return parser

    generate = add("generate", help="make an image; with -o or --wait, wait for it and save it")
    generate.add_argument("prompt", help="what to draw")
    generate.add_argument("-o", "--output", help="file (or directory) to write the image to; implies --wait")
    generate.add_argument("--wait", action="store_true", help="wait for the job and save the image")
    _request_options(generate)
    generate.add_argument("--json", action="store_true", help="print the job as JSON")

    _video_command(add)

    batch = add(
        "batch",
        help="make many images at once, with a progress bar per item",
        description='The file is the body of POST /v1/batches ({"defaults": {...}, "items": [{"prompt": ...}]}; '
        'an item may add "name", the output file name), a JSON list of prompts, or a text file with one prompt a line.',
    )
    batch.add_argument("file", help="batch file: .json, or text with one prompt a line")
    batch.add_argument("-o", "--output", default=".", help="directory the images are written to (default: .)")
    _request_options(batch)

    get = add("get", help="show a job; with -o or --wait, wait for it and save the image (or video)")
    get.add_argument("job_id", help="the job's id (img_… or vid_…)")
    get.add_argument("-o", "--output", help="file (or directory) to write the image or video to; implies --wait")
    get.add_argument("--wait", action="store_true", help="wait for the job to end")
    get.add_argument("--json", action="store_true", help="print the job as JSON")

    cancel = add("cancel", help="cancel a job")
    cancel.add_argument("job_id", help="the job's id (img_… or vid_…)")

    jobs = add("jobs", help="your recent jobs, newest first")
    jobs.add_argument("--limit", type=limit, default=20, help="how many (1-100, default 20)")
    jobs.add_argument("--videos", action="store_true", help="your video jobs instead of your image jobs")
    jobs.add_argument("--json", action="store_true", help="print the page of jobs as JSON")

    _account_commands(commands, add)


def _video_command(add: Any) -> None:
    """imagegen video: a video job, text-to-video or from a first frame."""
    video = add(
        "video",
        help="make a video (text-to-video, or image-to-video with --image); with -o or --wait, wait and save it",
        description="Video jobs take minutes: the provider is checked now and then, and the video is saved when done.",
    )
    video.add_argument("prompt", help="what to film")
    video.add_argument(
        "--image",
        metavar="FILE_OR_URL",
        help="the first frame: an https URL, or a PNG/JPEG/WebP file of at most about 44 KB (sent inline)",
    )
    video.add_argument("-o", "--output", help="file (or directory) to write the video to; implies --wait")
    video.add_argument("--wait", action="store_true", help="wait for the job and save the video")
    video.add_argument("--size", type=size, help="WIDTHxHEIGHT; the provider makes its closest (default 1280x720)")
    video.add_argument(
        "--provider", action="append", metavar="NAME", help="a video provider to use, in order; repeat for a chain"
    )
    video.add_argument("--json", action="store_true", help="print the job as JSON")


def _account_commands(commands: Any, add: Any) -> None:
    """keys, providers and login: the caller's account rather than its jobs."""
    keys = commands.add_parser("keys", help="your own provider keys (stored encrypted, never shown again)")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    key_set = add("keys set", key_commands, help="store your key for a provider (asked for without echo)")
    key_set.add_argument("provider", help="a provider that takes keys (see imagegen providers), or tavily")
    key_set.add_argument("--key-stdin", action="store_true", help="read the key from standard input")
    key_list = add("keys list", key_commands, help="your keys: provider, last 4 characters, health")
    key_list.add_argument("--json", action="store_true", help="print the keys as JSON")
    key_delete = add("keys delete", key_commands, help="remove your key for a provider")
    key_delete.add_argument("provider", help="the provider whose key to remove")

    providers = add("providers", help="the provider chain as you would get it: keys, health, breakers")
    providers.add_argument("--json", action="store_true", help="print the chain as JSON")

    login = add("login", help="check a URL and token and save them in the config file (mode 600)")
    login.add_argument("--token-stdin", action="store_true", help="read the token from standard input")
