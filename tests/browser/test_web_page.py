"""The web page at GET /: served with a strict CSP, and driven in Debian's headless Chromium against the local stack."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from imagegen.local import LocalStack

from tests.doubles.keycheck import KeyCheckDouble
from tests.doubles.pollinations import PollinationsDouble

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.doubles.local_stack"]

# What tests.doubles.local_stack's local_stack_factory gives (not imported: pytest_plugins loads that module).
StartStack = Callable[..., LocalStack]
CHROMIUM = Path("/usr/bin/chromium")
# /work/.library/env/machines/python.md: what Chromium needs on a machine with no network but the registries.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SF_KEY = "sk-WebPageTestKey000042"
WAIT_MS = 30_000  # a guard against a page that never gets there, not a timing assertion


@dataclass
class Doubles:
    keycheck: KeyCheckDouble
    pollinations: PollinationsDouble


@pytest.fixture
def doubles() -> Iterator[Doubles]:
    with KeyCheckDouble() as keycheck, PollinationsDouble() as pollinations:
        yield Doubles(keycheck, pollinations)
        pollinations.server.release()


@pytest.fixture
def stack(local_stack_factory: StartStack, doubles: Doubles) -> LocalStack:
    return local_stack_factory(
        run_schedules=False,
        env_overrides={
            "IMAGEGEN_PROVIDERS": "placeholder",
            "IMAGEGEN_LOCAL_WORKER_CONCURRENCY": "3",
            "KEYCHECK_TIMEOUT_SECONDS": "2",
            "POLLINATIONS_BASE_URL": doubles.pollinations.base_url,
            **doubles.keycheck.env,
        },
    )


def _api(stack: LocalStack) -> httpx.Client:
    return httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30.0)


# The page over HTTP


def test_given_no_token_when_the_page_is_fetched_then_it_is_public_html_under_a_strict_policy(stack: LocalStack):
    page = httpx.get(f"{stack.url}/")
    staged = httpx.get(f"{stack.url}/api/")

    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' https: {stack.aws_endpoint}; media-src 'self' https: {stack.aws_endpoint}; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-content-type-options"] == "nosniff"
    # No inline script anywhere: every <script> has a src, no element carries an on* handler.
    assert re.findall(r"<script[^>]*>", page.text) == ['<script src="/assets/app.js" defer>']
    assert not re.search(r"\son[a-z]+=", page.text)
    # Behind a stage, the page's links carry the stage as the API's own Location headers do.
    assert '<meta name="imagegen-base" content="/api">' in staged.text
    assert '<script src="/api/assets/app.js" defer>' in staged.text


@pytest.mark.parametrize(
    ("name", "content_type", "starts"),
    [
        ("app.js", "text/javascript; charset=utf-8", "// imagegen's web page."),
        ("app.css", "text/css; charset=utf-8", "/* imagegen's web page"),
        ("icon.svg", "image/svg+xml", "<svg"),
    ],
)
def test_given_the_page_assets_when_fetched_without_a_token_then_each_has_its_type(
    stack: LocalStack, name: str, content_type: str, starts: str
):
    answer = httpx.get(f"{stack.url}/assets/{name}")

    assert (answer.status_code, answer.headers["content-type"]) == (200, content_type)
    assert answer.text.startswith(starts)


def test_given_an_unknown_asset_when_fetched_then_404_names_it(stack: LocalStack):
    answer = httpx.get(f"{stack.url}/assets/secrets.txt")

    assert answer.status_code == 404
    assert answer.json() == {"error": {"code": "not_found", "message": "no asset named secrets.txt"}}


def test_given_a_finished_job_when_content_is_asked_as_json_then_200_gives_a_url_that_works_without_the_token(
    stack: LocalStack,
):
    # Given
    with _api(stack) as api:
        job = api.post(
            "/v1/images", json={"prompt": "a fox", "width": 128, "height": 96}, headers={"Prefer": "wait=20"}
        )
        job_id = job.json()["id"]
        # When
        as_json = api.get(f"/v1/images/{job_id}/content", headers={"Accept": "application/json"})
        redirect = api.get(f"/v1/images/{job_id}/content")
    # Then
    assert job.json()["status"] == "succeeded"
    assert (as_json.status_code, as_json.headers["cache-control"]) == (200, "private, no-store")
    assert as_json.json()["expires_in"] == 300
    assert (redirect.status_code, redirect.headers["location"][:40]) == (302, as_json.json()["url"][:40])
    image = httpx.get(as_json.json()["url"])
    assert (image.status_code, image.headers["content-type"], image.content[:8]) == (
        200,
        "image/png",
        b"\x89PNG\r\n\x1a\n",
    )


def test_given_a_job_that_failed_when_content_is_asked_as_json_then_409_in_the_error_shape(stack: LocalStack):
    with _api(stack) as api:
        body = {"prompt": "a fox", "providers": ["siliconflow"], "width": 128, "height": 128}
        job = api.post("/v1/images", json=body, headers={"Prefer": "wait=20"}).json()
        answer = api.get(f"/v1/images/{job['id']}/content", headers={"Accept": "application/json"})

    assert job["status"] == "failed"
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "conflict"


# The page in Chromium


@dataclass
class Browser:
    page: Any
    requests: list[Any] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` (run by `make test`) installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_FLAGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        seen = Browser(page)
        page.on("request", lambda request: seen.requests.append(request))
        page.on("console", lambda message: message.type == "error" and seen.console_errors.append(message.text))
        page.on("pageerror", lambda error: seen.console_errors.append(str(error)))
        try:
            yield seen
        finally:
            context.close()


def _sign_in(browser: Browser, stack: LocalStack) -> Any:
    page = browser.page
    page.goto(f"{stack.url}/")
    page.fill("#token-input", stack.token)
    page.click("#token-save")
    page.wait_for_selector("#providers-table tbody tr")
    return page


def _record_job_statuses(page: Any) -> None:
    page.evaluate(
        """() => {
            window.seenStatuses = [];
            const status = document.getElementById("job-status");
            new MutationObserver(() => {
                const last = window.seenStatuses[window.seenStatuses.length - 1];
                const now = status.dataset.status;
                if (now && now !== last) window.seenStatuses.push(now);
            }).observe(status, {attributes: true, attributeFilter: ["data-status"]});
        }"""
    )


def test_given_a_token_when_the_page_makes_an_image_with_the_placeholder_then_the_gallery_shows_it_loaded(
    stack: LocalStack, browser: Browser
):
    # Given the token pasted once
    page = _sign_in(browser, stack)
    # When a job is made with the placeholder provider
    page.fill("#prompt", "a watercolour lighthouse at dusk")
    page.select_option("#size", "256x256")
    page.check("#provider-placeholder")
    page.click("#create-submit")
    page.wait_for_selector('#job-status[data-status="succeeded"]')
    # Then the job says who made it, and the image shows in the job panel and in the gallery, decoded
    job_id = page.text_content("#job-id")
    assert page.text_content("#job-status") == "succeeded · provider placeholder"
    assert page.locator("#job-attempts li").all_text_contents()[0].startswith("placeholder/placeholder: succeeded · ")
    assert page.locator("#job-steps li.reached").all_text_contents() == ["queued", "running", "succeeded"]
    page.wait_for_function("() => document.getElementById('job-image').naturalWidth === 256")
    gallery_image = f'#gallery img[data-job="{job_id}"]'
    page.wait_for_function(f"() => document.querySelector('{gallery_image}')?.naturalWidth === 256")
    assert page.get_attribute(gallery_image, "src").startswith(stack.aws_endpoint + "/")
    assert page.locator("#gallery figcaption span").all_text_contents() == ["a watercolour lighthouse at dusk"]
    _no_token_in_urls(browser, stack)
    # And a batch from the same page, with a bar per item (and the screenshot the README shows)
    prompts = ["a fox finds a lantern in the snow", "an owl watches from a pine", "a hen keeps the eggs warm"]
    page.fill("#batch-prompts", "\n".join(prompts))
    page.click("#batch-submit")
    page.wait_for_selector('#batch-summary[data-status="succeeded"]')
    page.wait_for_function("() => [...document.querySelectorAll('#batch-items img')].every((i) => i.naturalWidth > 0)")
    page.wait_for_function("() => document.querySelectorAll('#gallery img').length === 4")
    page.wait_for_function("() => [...document.querySelectorAll('#gallery img')].every((i) => i.naturalWidth > 0)")
    assert page.locator("#batch-items progress").evaluate_all("bars => bars.map((bar) => bar.value)") == [3, 3, 3]
    assert page.locator("#batch-items .state").all_text_contents() == ["succeeded"] * 3
    assert page.locator("#batch-items .detail").all_text_contents() == ["placeholder"] * 3
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page.png"), full_page=True)
    _no_token_in_urls(browser, stack)
    assert browser.console_errors == []


def test_given_a_provider_that_takes_a_while_when_the_page_follows_the_job_then_it_shows_queued_running_succeeded(
    stack: LocalStack, doubles: Doubles, browser: Browser
):
    # Given the provider holding the job, so that "running" lasts until the test lets it go
    page = _sign_in(browser, stack)
    doubles.pollinations.server.hold()
    _record_job_statuses(page)
    # When
    page.fill("#prompt", "a slow lighthouse")
    page.select_option("#size", "256x256")
    page.check("#provider-pollinations")
    page.click("#create-submit")
    page.wait_for_selector('#job-status[data-status="running"]')
    running_steps = page.locator("#job-steps li.reached").all_text_contents()
    doubles.pollinations.server.release()
    page.wait_for_selector('#job-status[data-status="succeeded"]')
    page.wait_for_function("() => document.getElementById('job-image').naturalWidth === 256")
    # Then
    assert page.evaluate("() => window.seenStatuses") == ["queued", "running", "succeeded"]
    assert running_steps == ["queued", "running"]
    assert page.text_content("#job-status") == "succeeded · provider pollinations (flux)"
    assert page.locator("#job-attempts li").all_text_contents()[0].startswith("pollinations/flux: succeeded · ")
    assert browser.console_errors == []


def _no_token_in_urls(browser: Browser, stack: LocalStack) -> None:
    """The token travels only in the Authorization header of this API's /v1 requests; never in a URL."""
    assert browser.requests
    for request in browser.requests:
        assert stack.token not in request.url
        if "/v1/" in request.url:
            assert request.url.startswith(stack.url + "/v1/")
            assert request.headers["authorization"] == f"Bearer {stack.token}"
        else:
            assert "authorization" not in request.headers


def test_given_prompts_with_markup_when_the_page_shows_them_then_they_are_text_and_nothing_runs(
    stack: LocalStack, browser: Browser
):
    page = _sign_in(browser, stack)
    evil = '<img src=x onerror="document.body.dataset.pwned=1"><b>bold</b>'

    page.fill("#batch-prompts", f"{evil}\nplain")
    page.select_option("#size", "256x256")
    page.click("#batch-submit")
    page.wait_for_selector('#batch-summary[data-status="succeeded"]')
    page.wait_for_function("() => document.querySelectorAll('#gallery figure').length === 2")

    assert page.locator("#batch-items .prompt").all_text_contents() == [evil, "plain"]
    assert evil in page.locator("#gallery figcaption span").all_text_contents()
    assert (
        page.evaluate("() => document.querySelectorAll('#gallery figcaption img, #gallery b, #batch-items b').length")
        == 0
    )
    assert page.evaluate("() => document.body.dataset.pwned") is None


def test_given_the_keys_panel_when_a_key_is_saved_then_deleted_then_the_list_follows_and_the_key_never_shows(
    stack: LocalStack, doubles: Doubles, browser: Browser
):
    page = _sign_in(browser, stack)
    link = page.locator("#providers-table tbody td").all_text_contents()
    assert [link[0], link[1], link[2], link[4], link[5]] == [
        "placeholder",
        "yes",
        "keyless",
        "closed",
        "offline placeholder image (needs no key)",
    ]

    page.select_option("#key-provider", "siliconflow")
    page.fill("#key-value", "sk-x")
    page.click("#key-save")
    page.wait_for_selector("#keys-error:not(:empty)")
    refused = page.text_content("#keys-error")
    page.fill("#key-value", SF_KEY)
    page.click("#key-save")
    page.wait_for_selector('#keys-table tr[data-provider="siliconflow"]')
    row = page.locator('#keys-table tr[data-provider="siliconflow"] td').all_text_contents()
    saved = page.text_content("#key-result")
    shown = page.content()
    page.click('#keys-table tr[data-provider="siliconflow"] button')
    page.wait_for_selector('#keys-table tr[data-provider="siliconflow"]', state="detached")

    assert refused.startswith("api_key: expected a SiliconFlow API key: sk- followed by 8-200 letters")
    assert row[:3] == ["siliconflow", "…0042", "ok (balance 88.88)"]
    assert saved == "siliconflow key …0042 saved; check: ok"
    assert page.input_value("#key-value") == ""
    assert SF_KEY not in shown
    assert page.text_content("#key-result") == "siliconflow key deleted"
    assert page.is_visible("#keys-empty")
    assert [seen.key for seen in doubles.keycheck.seen] == [SF_KEY]


def test_given_a_saved_token_when_the_page_reloads_then_it_is_kept_until_forget_token_removes_it(
    stack: LocalStack, browser: Browser
):
    page = _sign_in(browser, stack)

    page.reload()
    page.wait_for_selector("#providers-table tbody tr")
    kept = page.evaluate("() => localStorage.getItem('imagegen.token')")
    page.click("#token-forget")
    page.reload()

    assert kept == stack.token
    assert page.evaluate("() => localStorage.getItem('imagegen.token')") is None
    assert page.is_visible("#locked-note")
    assert page.locator("#providers-table tbody tr").count() == 0


def test_given_a_wrong_token_when_pasted_then_the_page_says_it_was_rejected(stack: LocalStack, browser: Browser):
    page = browser.page
    page.goto(f"{stack.url}/")

    page.fill("#token-input", "igk_not-a-real-token")
    page.click("#token-save")
    page.wait_for_selector("#token-state.error")

    assert page.text_content("#token-state") == "token rejected (401): paste another"
    assert (
        page.text_content("#providers-error")
        == "Missing or invalid API token. — Send Authorization: Bearer <api token>."
    )
