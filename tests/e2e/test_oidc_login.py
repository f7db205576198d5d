"""End to end: sign in with an external OpenID Connect provider (authorization code + PKCE).

The provider is real: the certified ``oidc-provider`` npm package, run by node on
loopback (``tests/e2e/oidc/provider.mjs``). The browser is httpx with one cookie
jar per person, following redirects one hop at a time so each hop can be checked,
and filling in the provider's development login and consent forms.

This module starts a platform of its own rather than sharing the session one:
the users function reads the provider configuration from a secret and caches it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest

from local_runtime import LocalPlatform
from local_runtime.mailbox import latest_token
from local_runtime.net import free_port
from tests.stack import PASSWORD, boto, running_platform

pytestmark = [pytest.mark.stack, pytest.mark.xdist_group("oidc")]

NODE = shutil.which("node")
if NODE is None:
    pytest.skip(
        "node is not installed: the OpenID provider these tests sign in with "
        "(the npm package oidc-provider) runs on node",
        allow_module_level=True,
    )

PROVIDER_SCRIPT = Path(__file__).parent / "oidc" / "provider.mjs"
PROVIDER = "idp"  # the name the platform knows the provider by, in its URLs
PROVIDER_START_TIMEOUT_S = 15.0
PROBLEM_JSON = "application/problem+json"
MAX_HOPS = 12


# --- the provider and the platform ----------------------------------------------------


@dataclass(frozen=True)
class Idp:
    """The running provider and the platform's URLs for it."""

    issuer: str
    discovery: dict[str, Any]  # the provider's /.well-known/openid-configuration
    client_id: str
    api_url: str
    aws_endpoint: str

    @property
    def authorize_url(self) -> str:
        return f"{self.api_url}/auth/oidc/{PROVIDER}/authorize"

    @property
    def callback_url(self) -> str:
        return f"{self.api_url}/auth/oidc/{PROVIDER}/callback"


@pytest.fixture(scope="module")
def platform() -> Iterator[LocalPlatform]:
    """A platform of this module's own (the provider secret is cached by its sandboxes)."""
    with running_platform() as local:
        yield local


def _discovery(process: subprocess.Popen[bytes], log: IO[bytes], issuer: str) -> dict[str, Any]:
    """The provider's discovery document, once it answers."""
    deadline = time.monotonic() + PROVIDER_START_TIMEOUT_S
    url = f"{issuer}/.well-known/openid-configuration"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            output = log.read().decode(errors="replace")
            raise RuntimeError(f"the OpenID provider exited ({process.returncode}): {output}")
        try:
            response = httpx.get(url, timeout=1, trust_env=False)
            if response.status_code == 200:
                document: dict[str, Any] = response.json()
                return document
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the OpenID provider did not answer at {url}")


@pytest.fixture(scope="module")
def idp(platform: LocalPlatform) -> Iterator[Idp]:
    """The provider running on a free loopback port, configured in the platform's secret."""
    assert NODE is not None
    api_url = platform.endpoints.http_api
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    client_id = f"lwm-{uuid.uuid4().hex[:8]}"
    client_secret = uuid.uuid4().hex
    redirect_uri = f"{api_url}/auth/oidc/{PROVIDER}/callback"
    # Its output goes to a file, not a pipe nobody reads (a full pipe would stall it).
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [NODE, str(PROVIDER_SCRIPT), str(port), client_id, client_secret, redirect_uri],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            discovery = _discovery(process, log, issuer)
            # Before any sign-in: the users function caches the providers it reads.
            boto(platform, "secretsmanager").put_secret_value(
                SecretId=platform.endpoints.resources.secrets["oidc-providers"],
                SecretString=json.dumps(
                    {
                        PROVIDER: {
                            "issuer": issuer,
                            "client_id": client_id,
                            "client_secret": client_secret,
                        }
                    }
                ),
            )
            yield Idp(issuer, discovery, client_id, api_url, platform.endpoints.aws)
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- the browser ------------------------------------------------------------------------


@dataclass
class Page:
    """What the browser needs from a provider page: its first form and its links."""

    action: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page = Page()
        self._forms = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._forms += 1
            if self._forms == 1:
                self.page.action = a.get("action", "")
        elif tag == "input" and self._forms == 1 and a.get("name"):
            self.page.fields[a["name"]] = a.get("value", "")
        elif tag == "a" and a.get("href"):
            self.page.links.append(a["href"])


def _page(response: httpx.Response) -> Page:
    parser = _PageParser()
    parser.feed(response.text)
    assert parser.page.action, f"no form on {response.url}: {response.text[:500]}"
    return parser.page


@dataclass(frozen=True)
class Authorization:
    """How far the browser got: the provider's answer, not yet delivered to the platform."""

    authorize_endpoint: str  # where the platform sent the browser
    authorize_request: dict[str, str]  # and with which query
    prompts: list[str]  # the provider's interactions, in order
    callback: str  # the provider's redirect back to the platform

    @property
    def state(self) -> str:
        return _query(self.callback)["state"]

    def with_state(self, state: str) -> str:
        query = _query(self.callback) | {"state": state}
        return self.callback.split("?", 1)[0] + "?" + urlencode(query)


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def authorize(
    idp: Idp, browser: httpx.Client, login: str, *, cancel: bool = False
) -> Authorization:
    """Start the sign-in at the platform and get through the provider as ``login``
    (or press the provider's Cancel instead of signing in)."""
    start = browser.get(idp.authorize_url)
    assert start.status_code == 302, start.text
    location = start.headers["location"]
    prompts: list[str] = []
    response = browser.get(location)
    for _ in range(MAX_HOPS):
        here = str(response.url)
        if response.is_redirect:
            target = urljoin(here, response.headers["location"])
            if target.startswith(idp.callback_url + "?"):
                endpoint = location.split("?", 1)[0]
                return Authorization(endpoint, _query(location), prompts, target)
            response = browser.get(target)
            continue
        assert response.status_code == 200, response.text
        page = _page(response)
        prompts.append(page.fields["prompt"])
        if cancel:
            (abort,) = (link for link in page.links if link.endswith("/abort"))
            response = browser.get(urljoin(here, abort))
            continue
        if page.fields["prompt"] == "login":
            # The development login takes any name and password.
            page.fields |= {"login": login, "password": "anything"}
        response = browser.post(urljoin(here, page.action), data=page.fields)
    raise AssertionError(f"the provider did not redirect back within {MAX_HOPS} hops")


def new_browser() -> httpx.Client:
    """A fresh browser: its own cookie jar, no proxies, redirects followed by the test."""
    return httpx.Client(timeout=30, trust_env=False, follow_redirects=False)


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    with new_browser() as client:
        yield client


def sign_in(idp: Idp, login: str) -> dict[str, Any]:
    """A whole sign-in in a fresh browser; the platform's token response."""
    with new_browser() as browser:
        auth = authorize(idp, browser, login)
        answer = browser.get(auth.callback)
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


def me(idp: Idp, access_token: str) -> dict[str, Any]:
    response = httpx.get(
        f"{idp.api_url}/me",
        headers={"authorization": f"Bearer {access_token}"},
        timeout=30,
        trust_env=False,
    )
    assert response.status_code == 200, response.text
    account: dict[str, Any] = response.json()
    return account


def register_by_password(api: httpx.Client, email: str, display_name: str) -> str:
    """Register ``email`` by password (``tests.stack.register`` picks its own address); the id."""
    created = api.post(
        "/auth/register",
        json={
            "email": email,
            "password": PASSWORD,
            "display_name": display_name,
            "timezone": "Europe/Berlin",
            "roles": ["mentee"],
        },
    )
    assert created.status_code == 201, created.text
    user_id: str = created.json()["user"]["id"]
    return user_id


def unique_login(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["code"] == code


# --- tests ------------------------------------------------------------------------------


def test_signing_in_with_the_provider_creates_a_verified_account(
    idp: Idp, browser: httpx.Client
) -> None:
    # Given a person with an account at the provider only
    login = unique_login("ada")

    # When they sign in with it through the platform
    auth = authorize(idp, browser, login)
    answer = browser.get(auth.callback)

    # Then the platform sent them to the provider with PKCE (S256) and its own callback,
    assert auth.authorize_endpoint == idp.discovery["authorization_endpoint"]
    request = auth.authorize_request
    assert request["code_challenge"]
    assert request["code_challenge_method"] == "S256"
    assert request["client_id"] == idp.client_id
    assert request["redirect_uri"] == idp.callback_url
    assert request["response_type"] == "code"
    assert request["state"] and request["nonce"]
    assert auth.state == request["state"]
    # the provider asked them to sign in and to consent,
    assert auth.prompts == ["login", "consent"]
    # and the platform answered the provider's redirect with its own tokens
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert tokens["access_token"] and tokens["refresh_token"]
    assert tokens["active_role"] == "mentee"
    account = me(idp, tokens["access_token"])
    assert account["email"] == f"{login}@idp.example"
    assert account["email_verified"] is True
    assert account["roles"] == ["mentee"]
    assert account["display_name"] == f"IdP {login}"


def test_signing_in_again_reuses_the_linked_account(idp: Idp) -> None:
    # Given a person who signed in with the provider once
    login = unique_login("grace")
    first = me(idp, sign_in(idp, login)["access_token"])

    # When they sign in with the same provider account again, from another browser
    second = me(idp, sign_in(idp, login)["access_token"])

    # Then they are the same user
    assert second["id"] == first["id"]
    assert second["email"] == f"{login}@idp.example"


def test_a_password_account_with_the_same_verified_email_is_linked(idp: Idp) -> None:
    # Given an account registered by password, its email verified, at the address the
    # provider asserts for this login
    login = unique_login("linus")
    email = f"{login}@idp.example"
    with httpx.Client(base_url=idp.api_url, timeout=30, trust_env=False) as api:
        user_id = register_by_password(api, email, "Linus")
        token = latest_token(idp.aws_endpoint, email, "confirm")
        assert token, f"no verification mail for {email}"
        verified = api.get("/auth/verify-email", params={"token": token})
        assert verified.status_code == 200, verified.text

    # When they sign in with the provider
    account = me(idp, sign_in(idp, login)["access_token"])

    # Then they are in their existing account, which keeps its profile
    assert account["id"] == user_id
    assert account["email"] == email
    assert account["display_name"] == "Linus"


def test_a_replayed_callback_is_refused(idp: Idp, browser: httpx.Client) -> None:
    # Given a sign-in the platform completed
    auth = authorize(idp, browser, unique_login("eve"))
    assert browser.get(auth.callback).status_code == 200

    # When the same callback (same state and code) is delivered again
    replay = browser.get(auth.callback)

    # Then it is refused
    assert_problem(replay, 400, "oidc_login_failed")


def test_a_tampered_state_is_refused(idp: Idp, browser: httpx.Client) -> None:
    # Given the provider's redirect back, with a valid code
    auth = authorize(idp, browser, unique_login("mallory"))

    # When the state is changed on the way
    tampered = browser.get(auth.with_state(auth.state[:-4] + "AAAA"))

    # Then the platform refuses it, before spending the code: the genuine one still works
    assert_problem(tampered, 400, "oidc_login_failed")
    assert browser.get(auth.callback).status_code == 200


def test_an_answer_naming_another_issuer_is_refused(idp: Idp, browser: httpx.Client) -> None:
    # Given the provider's redirect back, which names its issuer (RFC 9207)
    auth = authorize(idp, browser, unique_login("mixup"))
    assert "iss" in _query(auth.callback)

    # When an attacker's provider name is put in its place
    query = _query(auth.callback) | {"iss": "https://idp.attacker.example"}
    mixed_up = browser.get(auth.callback.split("?", 1)[0] + "?" + urlencode(query))

    # Then the platform refuses it before spending the state: the genuine answer still works
    assert_problem(mixed_up, 400, "oidc_login_failed")
    assert browser.get(auth.callback).status_code == 200


@pytest.mark.parametrize(
    "path", ["authorize", "callback?code=x&state=y"], ids=["authorize", "callback"]
)
def test_an_unknown_provider_is_not_found(idp: Idp, browser: httpx.Client, path: str) -> None:
    # Given only the provider "idp" is configured
    # When a sign-in names another one
    response = browser.get(f"{idp.api_url}/auth/oidc/nosuch/{path}")

    # Then the platform says there is no such provider
    assert_problem(response, 404, "unknown_provider")


# --- account takeover and cancelled sign-ins ---------------------------------------------


def test_an_unverified_password_account_cannot_be_pre_hijacked(idp: Idp) -> None:
    # Given someone registered the address the provider asserts for this login, by
    # password, never proving they own it, and kept a session
    login = unique_login("victim")
    email = f"{login}@idp.example"
    with httpx.Client(base_url=idp.api_url, timeout=30, trust_env=False) as api:
        register_by_password(api, email, "Squatter")
        squatter = api.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert squatter.status_code == 200, squatter.text

        # When the owner of the address signs in with the provider
        account = me(idp, sign_in(idp, login)["access_token"])

        # Then the account is theirs alone: the unproven password and session are gone
        assert account["email_verified"] is True
        password = api.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert password.status_code == 401, password.text
        session = api.post(
            "/auth/refresh", json={"refresh_token": squatter.json()["refresh_token"]}
        )
        assert session.status_code == 401, session.text


def test_cancelling_at_the_provider_is_a_failed_sign_in(idp: Idp, browser: httpx.Client) -> None:
    # Given a person who starts signing in but presses Cancel at the provider
    auth = authorize(idp, browser, unique_login("quitter"), cancel=True)
    assert auth.prompts == ["login"]
    assert _query(auth.callback)["error"] == "access_denied"

    # When the provider's answer reaches the platform
    answer = browser.get(auth.callback)

    # Then it is a failed external sign-in, not a malformed request
    assert_problem(answer, 400, "oidc_login_failed")
