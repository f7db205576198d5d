"""The web client end to end: two people chat through the page in headless Chromium.

Playwright drives Debian's ``/usr/bin/chromium`` (``scripts/setup.sh`` installs
it; ``playwright install`` is never run). Each person has their own browser
context, signs in through the page, and talks to the local gateway and the
WebSocket API exactly as a person at ``make dev`` would.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from local_runtime import LocalPlatform
from local_runtime.openapi import build_document
from tests.stack import Account, register

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # tests run as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
]
TIMEOUT_MS = 15_000  # generous: the machine is shared, and cold starts are slow under load

pytestmark = [pytest.mark.stack, pytest.mark.xdist_group("browser")]

if not CHROMIUM.exists():  # pragma: no cover - scripts/setup.sh installs it
    pytest.skip(
        f"{CHROMIUM} is missing: run scripts/setup.sh (apt-get install chromium)",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright  # noqa: E402

expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def site(local: LocalPlatform) -> str:
    """The page's URL (the platform tells the page where its WebSocket API listens)."""
    return f"{local.endpoints.http_api}/"


@pytest.fixture
def contexts(browser: Browser) -> Iterator[tuple[BrowserContext, BrowserContext]]:
    first, second = browser.new_context(), browser.new_context()
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def _conversation(api: httpx.Client, mentee: Account, mentor: Account) -> str:
    """A direct conversation: the mentee's request, accepted by the mentor."""
    sent = api.post(
        "/chat/requests",
        json={"mentor_id": mentor.id, "text": "Hi, could we talk about interviews?"},
        headers=mentee.auth,
    )
    assert sent.status_code == 201, sent.text
    accepted = api.post(f"/chat/requests/{sent.json()['id']}/accept", headers=mentor.auth)
    assert accepted.status_code == 200, accepted.text
    conversation: str = accepted.json()["conversation"]["id"]
    return conversation


def _sign_in(context: BrowserContext, site: str, who: Account) -> Page:
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(site)
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    page.fill("#sign-in [name=email]", who.email)
    page.fill("#sign-in [name=password]", who.password)
    page.click("#sign-in button[type=submit]")
    expect(page.locator("#chat")).to_be_visible()
    expect(page.locator("#connection")).to_have_attribute("data-state", "online")
    return page


def _say(page: Page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


def _texts(page: Page) -> list[str]:
    """The confirmed messages on screen, top to bottom."""
    texts: list[str] = page.locator("#messages li[data-id] .text").all_inner_texts()
    return texts


def test_two_people_chat_and_nothing_is_lost_offline(
    api: httpx.Client,
    aws_endpoint: str,
    site: str,
    contexts: tuple[BrowserContext, BrowserContext],
) -> None:
    # Given a mentee (A) and a mentor (B) with a conversation, each signed in on their own browser
    a_who = register(api, aws_endpoint, prefix="webmentee")
    b_who = register(api, aws_endpoint, roles=("mentor",), prefix="webmentor")
    conversation = _conversation(api, a_who, b_who)
    a_context, b_context = contexts
    a, b = _sign_in(a_context, site, a_who), _sign_in(b_context, site, b_who)
    a_row = a.locator(f"#conversations li[data-id='{conversation}']")
    b_row = b.locator(f"#conversations li[data-id='{conversation}']")
    expect(a_row).to_be_visible()
    expect(b_row).to_be_visible()

    # When A opens the conversation and sends text that looks like markup
    a_row.click()
    expect(a.locator("#messages li[data-id]")).to_have_count(1)  # the request's text
    _say(a, 'Tuesday at 5? 1 < 2 & &lt;img src=x onerror="window.pwned=1"&gt;')
    # Then A sees it confirmed, shown as the text it is: no element, no script ran
    shown = 'Tuesday at 5? 1 < 2 & <img src=x onerror="window.pwned=1">'
    first = a.locator("#messages li.mine[data-id]").last
    expect(first.locator(".text")).to_have_text(shown)
    expect(first).to_have_attribute("data-status", re.compile("sent|delivered"))
    assert a.locator("#messages img").count() == 0
    assert a.evaluate("window.pwned") is None

    # And B, who has not opened the conversation, sees it as unread and delivered to them
    expect(b_row.locator(".unread")).to_have_text(re.compile(r"[1-9]"))
    expect(b_row.locator(".preview")).to_have_text(shown)
    expect(first).to_have_attribute("data-status", "delivered")

    # When B opens it / Then B reads the same text, and A sees the read receipt
    b_row.click()
    expect(b.locator("#messages li[data-id] .text").last).to_have_text(shown)
    assert b.evaluate("window.pwned") is None
    expect(b_row.locator(".unread")).to_have_count(0)
    expect(first).to_have_attribute("data-status", "read")

    # When B types / Then A sees B typing, and it ends when B stops
    b.locator("#text").press_sequentially("Sounds g", delay=20)
    expect(a.locator("#typing")).to_have_text(re.compile(r"is typing"))
    b.fill("#text", "")
    expect(a.locator("#typing")).to_be_hidden()

    # When B goes offline while A sends three messages and B writes one
    b_context.set_offline(True)
    expect(b.locator("#connection")).not_to_have_attribute("data-state", "online")
    for n in range(1, 4):
        _say(a, f"while you were away {n}")
    expect(a.locator("#messages li.mine[data-id]")).to_have_count(5)  # with the request's text
    _say(b, "I'm on a train")
    expect(b.locator("#messages li.pending")).to_have_attribute("data-status", "sending")
    # (the page shows none of A's messages live: they must come from the catch-up)
    assert "while you were away 1" not in _texts(b)

    # When B comes back
    catch_ups: list[str] = []
    b.on("request", lambda r: catch_ups.append(r.url) if "after=" in r.url else None)
    b_context.set_offline(False)
    expect(b.locator("#connection")).to_have_attribute("data-state", "online")

    # Then B caught up: every message once, in order, and its own was sent from the outbox
    expected = [
        "Hi, could we talk about interviews?",
        shown,
        "while you were away 1",
        "while you were away 2",
        "while you were away 3",
        "I'm on a train",
    ]
    expect(b.locator("#messages li[data-id] .text")).to_have_text(expected)
    expect(b.locator("#messages li.pending")).to_have_count(0)
    assert catch_ups, "B did not catch up over REST after reconnecting"
    # And A got B's offline message exactly once, and sees all of its own as read
    expect(a.locator("#messages li[data-id] .text")).to_have_text(expected)
    expect(a.locator("#messages li.mine[data-id]").last).to_have_attribute("data-status", "read")
    # And the server stored the same six messages (the outbox resend was not a duplicate)
    history = api.get(
        f"/conversations/{conversation}/messages", headers=a_who.auth, params={"limit": 20}
    ).json()
    assert [m["text"] for m in reversed(history["items"])] == [
        "Hi, could we talk about interviews?",
        'Tuesday at 5? 1 &lt; 2 &amp; &lt;img src=x onerror="window.pwned=1"&gt;',
        "while you were away 1",
        "while you were away 2",
        "while you were away 3",
        "I'm on a train",
    ]
    ids_on_b = b.locator("#messages li[data-id]").evaluate_all("els => els.map(e => e.dataset.id)")
    assert ids_on_b == [m["id"] for m in reversed(history["items"])]


def test_a_mentee_asks_through_the_page_and_the_mentor_accepts(
    api: httpx.Client,
    aws_endpoint: str,
    site: str,
    contexts: tuple[BrowserContext, BrowserContext],
) -> None:
    # Given a listed mentor and a mentee, both signed in
    mentor = register(api, aws_endpoint, roles=("mentor",), prefix="weblisted")
    profile = {
        "headline": "Page-tested mentor",
        "skills": ["testing"],
        "languages": ["en"],
        "hourly_rate_minor": 4000,
        "currency": "EUR",
    }
    listed = api.patch("/me", json={"mentor_profile": profile}, headers=mentor.auth)
    assert listed.status_code == 200 and listed.json()["listed_as_mentor"] is True
    mentee = register(api, aws_endpoint, prefix="webasker")
    mentee_context, mentor_context = contexts
    asker, answerer = _sign_in(mentee_context, site, mentee), _sign_in(mentor_context, site, mentor)
    # When the mentee picks the mentor and asks
    asker.click("#ask summary")
    asker.locator("#ask-form select").select_option(mentor.id)
    asker.fill("#ask-form [name=text]", "Could you review my test plan?")
    asker.click("#ask-form button[type=submit]")
    expect(asker.locator("#ask-result")).to_have_text(re.compile("Request sent"))
    # Then the mentor sees the request arrive, and accepts it
    request = answerer.locator("#incoming li")
    expect(request).to_contain_text("Could you review my test plan?")
    request.get_by_role("button", name="Accept").click()
    # And both have the conversation, opened with the request's text
    expect(answerer.locator("#messages li[data-id] .text")).to_have_text(
        ["Could you review my test plan?"]
    )
    expect(answerer.locator("#requests")).to_be_hidden()
    expect(asker.locator("#conversations li")).to_have_count(1)
    expect(asker.locator("#conversations li .preview")).to_have_text(
        "Could you review my test plan?"
    )
    # When the mentee edits that message over REST / Then the mentor's page shows the new text
    conversation = answerer.locator("#conversations li").get_attribute("data-id")
    message = answerer.locator("#messages li[data-id]").get_attribute("data-id")
    edited = api.patch(
        f"/conversations/{conversation}/messages/{message}",
        json={"text": "Could you review my test plan & fixtures?"},
        headers=mentee.auth,
    )
    assert edited.status_code == 200, edited.text
    shown = answerer.locator(f"#messages li[data-id='{message}']")
    expect(shown.locator(".text")).to_have_text("Could you review my test plan & fixtures?")
    expect(shown.locator(".meta")).to_contain_text("edited")
    # When the mentor blocks the mentee / Then the mentee's next message is refused, visibly
    assert api.put(f"/chat/blocks/{mentee.id}", headers=mentor.auth).status_code == 204
    asker.locator("#conversations li").click()
    _say(asker, "Hello?")
    refused = asker.locator("#messages li.pending")
    expect(refused).to_have_attribute("data-status", "failed")
    expect(refused.locator(".meta")).to_contain_text("not sent")
    expect(refused.get_by_role("button", name="Retry")).to_be_visible()


def test_a_wrong_password_is_shown_and_nothing_opens(
    api: httpx.Client, aws_endpoint: str, site: str, browser: Browser
) -> None:
    who = register(api, aws_endpoint, prefix="webwrong")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(site)
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        page.fill("#sign-in [name=email]", who.email)
        page.fill("#sign-in [name=password]", f"not-it-{uuid.uuid4().hex[:6]}")
        page.click("#sign-in button[type=submit]")
        expect(page.locator("#sign-in-error")).to_be_visible()
        expect(page.locator("#sign-in-error")).not_to_be_empty()
        expect(page.locator("#chat")).to_be_hidden()
    finally:
        context.close()


def test_a_refused_access_token_is_renewed_with_the_refresh_token(
    api: httpx.Client, aws_endpoint: str, site: str, browser: Browser
) -> None:
    # Given a signed-in page whose access token the API no longer accepts (signature broken)
    who = register(api, aws_endpoint, prefix="webrefresh")
    context = browser.new_context()
    try:
        page = _sign_in(context, site, who)
        spoiled = page.evaluate(
            r"""() => {
                const saved = JSON.parse(sessionStorage.getItem("lwm.session"));
                saved.access_token = saved.access_token.replace(/\.[^.]+$/, ".bad");
                sessionStorage.setItem("lwm.session", JSON.stringify(saved));
                return saved;
            }"""
        )
        # When the page is loaded again
        page.reload()
        # Then it renewed the pair with POST /auth/refresh and works on
        expect(page.locator("#connection")).to_have_attribute("data-state", "online")
        expect(page.locator("#no-conversations")).to_be_visible()
        renewed = page.evaluate("() => JSON.parse(sessionStorage.getItem('lwm.session'))")
        assert renewed["refresh_token"] != spoiled["refresh_token"]
        assert (
            api.get("/me", headers={"authorization": f"Bearer {renewed['access_token']}"}).json()[
                "id"
            ]
            == who.id
        )
    finally:
        context.close()


def test_the_page_is_served_beside_the_api_and_is_not_part_of_it(
    api: httpx.Client, local: LocalPlatform, site: str
) -> None:
    # The page, its files and where to connect
    page = api.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert api.get("/web/app.js").headers["content-type"].startswith("text/javascript")
    config = api.get("/web/config.json").json()
    assert config == {"api": local.endpoints.http_api, "websocket": local.endpoints.websocket}
    # Anything else is still the gateway's 404, and the API contract does not list the page
    assert api.get("/web/no-such-file.js").status_code == 404
    assert api.post("/").json() == {"message": "Not Found"}
    assert api.get("/index.html").json() == {"message": "Not Found"}
    paths = build_document(local.platform)["paths"]
    assert "/" not in paths and not [p for p in paths if p.startswith("/web")]
