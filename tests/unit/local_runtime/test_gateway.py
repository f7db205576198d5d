"""The local HTTP API (``local_runtime.gateway``): route matching, 2.0 events, responses."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model

from blueprint import PLATFORM
from blueprint.model import Function, Route, public, role, user
from local_runtime.authorizer import Grant
from local_runtime.gateway import (
    MalformedResponseError,
    RouteTable,
    build_event,
    is_text,
    new_request_id,
    to_http,
)

USERS = Function("users", "functions.users.handler.handler", "users")
FILES = Function("files", "functions.files.handler.handler", "files")

ROUTES: list[tuple[Route, Function]] = [
    (public("GET", "/mentors"), USERS),
    (public("GET", "/mentors/{mentor_id}"), USERS),
    (public("GET", "/mentors/search"), USERS),
    (user("POST", "/mentors/{mentor_id}/reviews"), USERS),
    (user("GET", "/files/{proxy+}"), FILES),
    (user("GET", "/files/{file_id}"), FILES),
    (user("GET", "/files/shared/{proxy+}"), FILES),
    (user("GET", "/a/{x}/c"), FILES),
    (user("GET", "/a/b/{y}"), FILES),
    (role("GET", "/admin/users", "admin"), USERS),
]


@pytest.fixture(scope="module")
def table() -> RouteTable:
    return RouteTable(ROUTES)


# --- route matching -------------------------------------------------------------------


class TestRouteTable:
    @pytest.mark.parametrize(
        ("method", "path", "route_key", "params"),
        [
            ("GET", "/mentors", "GET /mentors", {}),
            ("GET", "/mentors/search", "GET /mentors/search", {}),  # static beats {param}
            ("GET", "/mentors/01HX", "GET /mentors/{mentor_id}", {"mentor_id": "01HX"}),
            (
                "POST",
                "/mentors/01HX/reviews",
                "POST /mentors/{mentor_id}/reviews",
                {"mentor_id": "01HX"},
            ),
            ("GET", "/files/f1", "GET /files/{file_id}", {"file_id": "f1"}),  # {param} beats {x+}
            ("GET", "/files/a/b/c.txt", "GET /files/{proxy+}", {"proxy": "a/b/c.txt"}),
            ("GET", "/files/shared/x/y", "GET /files/shared/{proxy+}", {"proxy": "x/y"}),
            ("GET", "/files/shared", "GET /files/{file_id}", {"file_id": "shared"}),
            ("GET", "/a/b/c", "GET /a/b/{y}", {"y": "c"}),  # the earlier static segment wins
            ("GET", "/a/z/c", "GET /a/{x}/c", {"x": "z"}),
            ("GET", "/admin/users", "GET /admin/users", {}),
        ],
    )
    def test_the_most_specific_route_wins(
        self,
        table: RouteTable,
        method: str,
        path: str,
        route_key: str,
        params: dict[str, str],
    ) -> None:
        # Given the declared routes
        # When a request is matched
        match = table.match(method, path)
        # Then the most specific route serves it, with its path parameters
        assert match is not None
        assert (match.route.key, match.path_parameters) == (route_key, params)

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("POST", "/mentors"),  # method mismatch on a static route
            ("DELETE", "/mentors/01HX"),  # method mismatch on a {param} route
            ("GET", "/mentors/01HX/reviews"),  # the path exists for POST only
            ("GET", "/mentors/01HX/reviews/extra"),  # trailing segments
            ("GET", "/mentorsx"),
            ("GET", "/files"),  # a greedy variable needs at least one segment
            ("GET", "/files/a//b"),  # empty segments never match
            ("GET", "/mentors/"),
            ("GET", "/"),
            ("GET", ""),
        ],
    )
    def test_anything_else_matches_nothing(self, table: RouteTable, method: str, path: str) -> None:
        # Given the declared routes
        # When a request matches none of them
        # Then there is no match (the gateway answers 404)
        assert table.match(method, path) is None

    def test_every_declared_platform_route_is_reachable(self) -> None:
        # Given the platform's real declaration
        platform_table = RouteTable(PLATFORM.routes())
        for route, fn in PLATFORM.routes():
            # When a request with a value in each path variable is matched
            path = re.sub(r"\{([a-z_]+)\+?\}", r"value-of-\1", route.path)
            match = platform_table.match(route.method, path)
            # Then it reaches that very route (no other route shadows it)
            assert match is not None, route.key
            assert (match.route, match.fn) == (route, fn)
            names = re.findall(r"\{([a-z_]+)\+?\}", route.path)
            assert match.path_parameters == {name: f"value-of-{name}" for name in names}


# --- request events ---------------------------------------------------------------------


def _scope(
    method: str,
    path: str,
    *,
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    raw_path: bytes | None = None,
    client: tuple[str, int] | None = ("203.0.113.7", 51234),
) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode(),
        "query_string": query,
        "headers": [(b"host", b"127.0.0.1:3000"), *(headers or [])],
        "server": ("127.0.0.1", 3000),
    }
    if client is not None:
        scope["client"] = client
    return scope


GRANT = Grant(
    claims={
        "sub": "01HUSER",
        "scope": "admin mentee",
        "roles": "[admin mentee]",
        "email_verified": "true",
        "exp": "1800000000",
    },
    scopes=["admin", "mentee"],
)

# (name, scope, body, grant): each is turned into an event and validated.
REQUESTS: list[tuple[str, dict[str, Any], bytes, Grant | None]] = [
    ("plain GET", _scope("GET", "/mentors"), b"", None),
    (
        "GET with repeated query keys",
        _scope("GET", "/mentors", query=b"skill=python&skill=go&language=en&q=a%20b&empty="),
        b"",
        None,
    ),
    (
        "POST JSON",
        _scope(
            "POST",
            "/mentors/01HX/reviews",
            headers=[
                (b"content-type", b"application/json; charset=utf-8"),
                (b"authorization", b"Bearer eyJ.x.y"),
                (b"user-agent", b"pytest/1"),
            ],
        ),
        json.dumps({"stars": 5, "text": "très bien"}).encode(),
        Grant({"sub": "01HUSER", "scope": "mentee"}, None),
    ),
    (
        "binary body",
        _scope("GET", "/files/a/b.png", headers=[(b"content-type", b"image/png")]),
        b"\x89PNG\r\n\x1a\n\x00\xff",
        Grant({"sub": "01HUSER"}, None),
    ),
    (
        "body without a content type",
        _scope("GET", "/files/f1"),
        b"hello",
        Grant({"sub": "01HUSER"}, None),
    ),
    (
        "cookies and repeated headers",
        _scope(
            "GET",
            "/mentors/01HX",
            headers=[
                (b"cookie", b"session=abc; theme=dark"),
                (b"cookie", b"lang=en"),
                (b"accept", b"text/html"),
                (b"Accept", b"application/json"),
                (b"x-forwarded-for", b"198.51.100.1"),
            ],
        ),
        b"",
        None,
    ),
    (
        "percent-encoded path and greedy parameter",
        _scope("GET", "/files/a b/c", raw_path=b"/files/a%20b/c"),
        b"",
        Grant({"sub": "01HUSER"}, None),
    ),
    ("admin route with scopes", _scope("GET", "/admin/users", query=b"limit=5"), b"", GRANT),
    ("no client address", _scope("GET", "/mentors", client=None), b"", None),
]


def _event(
    table: RouteTable, scope: dict[str, Any], body: bytes, grant: Grant | None
) -> dict[str, Any]:
    match = table.match(scope["method"], scope["path"])
    assert match is not None
    return build_event(scope, match, body, "JKJaXmPLvHcESHA=", grant)


class TestBuildEvent:
    @pytest.mark.parametrize(
        ("scope", "body", "grant"),
        [pytest.param(s, b, g, id=name) for name, s, b, g in REQUESTS],
    )
    def test_every_event_is_a_valid_payload_2_0_event(
        self, table: RouteTable, scope: dict[str, Any], body: bytes, grant: Grant | None
    ) -> None:
        # Given a request to a declared route
        # When the gateway builds its event
        event = _event(table, scope, body, grant)
        # Then Powertools' model of the HTTP API 2.0 event accepts it
        model = APIGatewayProxyEventV2Model.model_validate(event)
        assert model.version == "2.0"
        assert model.routeKey == model.requestContext.routeKey
        assert model.requestContext.stage == "$default"
        assert model.requestContext.http.method == scope["method"]
        # And it is JSON, as it travels to the function
        assert json.loads(json.dumps(event)) == event
        # And the details AWS documents hold
        context = event["requestContext"]
        assert re.fullmatch(r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000", context["time"])
        assert isinstance(context["timeEpoch"], int) and context["timeEpoch"] > 1_600_000_000_000
        assert all(name == name.lower() for name in event["headers"])
        assert "cookie" not in event["headers"]
        assert event["headers"]["x-amzn-trace-id"].startswith("Root=1-")
        if grant is None:
            assert "authorizer" not in context
        else:
            assert context["authorizer"] == {
                "jwt": {"claims": grant.claims, "scopes": grant.scopes}
            }
            assert all(isinstance(v, str) for v in context["authorizer"]["jwt"]["claims"].values())

    def test_query_strings_join_repeated_keys_with_commas(self, table: RouteTable) -> None:
        # Given a query string repeating a key, with escapes and an empty value
        scope = _scope("GET", "/mentors", query=b"skill=python&skill=go&q=a%20b&empty=")
        # When the event is built
        event = _event(table, scope, b"", None)
        # Then the raw string is kept and the parameters are decoded and joined
        assert event["rawQueryString"] == "skill=python&skill=go&q=a%20b&empty="
        assert event["queryStringParameters"] == {"skill": "python,go", "q": "a b", "empty": ""}

    def test_no_query_string_means_no_parameters(self, table: RouteTable) -> None:
        # Given a request without query and path parameters
        event = _event(table, _scope("GET", "/mentors"), b"", None)
        # Then neither member is present and the raw query is empty
        assert event["rawQueryString"] == ""
        assert "queryStringParameters" not in event
        assert "pathParameters" not in event

    def test_a_json_body_is_text(self, table: RouteTable) -> None:
        # Given a UTF-8 JSON body
        body = json.dumps({"text": "très bien"}).encode()
        scope = _scope(
            "POST",
            "/mentors/01HX/reviews",
            headers=[(b"content-type", b"application/json; charset=utf-8")],
        )
        # When the event is built
        event = _event(table, scope, body, Grant({"sub": "u"}, None))
        # Then the body is the text itself, with the path parameter
        assert event["body"] == body.decode()
        assert event["isBase64Encoded"] is False
        assert event["pathParameters"] == {"mentor_id": "01HX"}

    @pytest.mark.parametrize("content_type", [b"image/png", b"application/octet-stream", None])
    def test_a_binary_body_is_base64(self, table: RouteTable, content_type: bytes | None) -> None:
        # Given a body that is not text (or says nothing about its type)
        body = b"\x89PNG\r\n\x1a\n\x00\xff"
        headers = [(b"content-type", content_type)] if content_type else []
        scope = _scope("GET", "/files/x.png", headers=headers)
        # When the event is built
        event = _event(table, scope, body, Grant({"sub": "u"}, None))
        # Then it travels base64-encoded
        assert event["isBase64Encoded"] is True
        assert base64.b64decode(event["body"]) == body

    def test_a_text_type_body_that_is_not_utf8_is_base64(self, table: RouteTable) -> None:
        # Given a body claiming to be JSON that is not UTF-8
        body = b'{"name": "\xe9"}'
        scope = _scope("GET", "/files/f1", headers=[(b"content-type", b"application/json")])
        # When the event is built
        event = _event(table, scope, body, Grant({"sub": "u"}, None))
        # Then it arrives base64-encoded rather than crashing the gateway
        assert event["isBase64Encoded"] is True
        assert base64.b64decode(event["body"]) == body
        APIGatewayProxyEventV2Model.model_validate(event)

    def test_no_body_means_no_body_member(self, table: RouteTable) -> None:
        # Given a request without a body
        event = _event(table, _scope("GET", "/mentors"), b"", None)
        # Then there is no body and it is not base64
        assert "body" not in event
        assert event["isBase64Encoded"] is False

    def test_cookies_and_repeated_headers(self, table: RouteTable) -> None:
        # Given two Cookie headers and a header sent twice in different cases
        scope = _scope(
            "GET",
            "/mentors/01HX",
            headers=[
                (b"cookie", b"session=abc; theme=dark"),
                (b"cookie", b"lang=en"),
                (b"accept", b"text/html"),
                (b"Accept", b"application/json"),
            ],
        )
        # When the event is built
        event = _event(table, scope, b"", None)
        # Then cookies are listed one by one, and repeated headers are joined with commas
        assert event["cookies"] == ["session=abc", "theme=dark", "lang=en"]
        assert event["headers"]["accept"] == "text/html,application/json"

    def test_the_caller_and_the_server_are_described(self, table: RouteTable) -> None:
        # Given a request from a client address, with a user agent
        scope = _scope("GET", "/mentors", headers=[(b"user-agent", b"pytest/1")])
        # When the event is built
        event = _event(table, scope, b"", None)
        # Then the source, forwarding headers and request id are filled in
        http = event["requestContext"]["http"]
        assert http == {
            "method": "GET",
            "path": "/mentors",
            "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.7",
            "userAgent": "pytest/1",
        }
        assert event["headers"]["x-forwarded-for"] == "203.0.113.7"
        assert event["headers"]["x-forwarded-port"] == "3000"
        assert event["headers"]["x-forwarded-proto"] == "http"
        assert event["requestContext"]["requestId"] == "JKJaXmPLvHcESHA="
        assert event["requestContext"]["domainName"] == "127.0.0.1:3000"
        assert event["requestContext"]["accountId"] == "123456789012"

    def test_the_raw_path_keeps_its_escapes(self, table: RouteTable) -> None:
        # Given a percent-encoded path
        scope = _scope("GET", "/files/a b/c", raw_path=b"/files/a%20b/c")
        # When the event is built
        event = _event(table, scope, b"", Grant({"sub": "u"}, None))
        # Then rawPath is as sent, and the greedy parameter is decoded
        assert event["rawPath"] == "/files/a%20b/c"
        assert event["pathParameters"] == {"proxy": "a b/c"}

    def test_request_ids_look_like_api_gateways(self) -> None:
        # Given several new request ids
        ids = {new_request_id() for _ in range(50)}
        # Then each is 16 base64 characters ending in "=", and they differ
        assert len(ids) == 50
        assert all(re.fullmatch(r"[A-Za-z0-9+/]{15}=", i) for i in ids)


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ('Application/JSON; Charset="UTF-8"', True),
        ("text/plain", True),
        ("text/csv; charset=utf-8", True),
        ("application/xml", True),
        ("application/graphql", True),
        ("text/plain; charset=iso-8859-1", False),
        ("application/octet-stream", False),
        ("image/png", False),
        ("", False),
        (None, False),
    ],
)
def test_which_bodies_are_text(content_type: str | None, text: bool) -> None:
    # Given a request content type
    # When the gateway decides how to pass the body
    # Then text types in UTF-8 (or no charset) pass as text, the rest as base64
    assert is_text(content_type) is text


# --- function results -------------------------------------------------------------------


class TestToHttp:
    @pytest.mark.parametrize(
        ("result", "body"),
        [
            ({"message": "hi"}, {"message": "hi"}),
            ([1, 2, 3], [1, 2, 3]),
            (None, None),
            (42, 42),
        ],
    )
    def test_a_result_without_status_code_is_a_200_json_body(
        self, result: object, body: object
    ) -> None:
        # Given a function result without a statusCode
        # When it becomes the HTTP response
        status, headers, payload = to_http(json.dumps(result).encode())
        # Then it is 200 application/json with the result as body
        assert status == 200
        assert headers == [(b"content-type", b"application/json")]
        assert json.loads(payload) == body

    def test_a_string_result_is_the_body_itself(self) -> None:
        # Given a function returning a bare string
        # When it becomes the HTTP response
        status, _, payload = to_http(json.dumps("Hello from Lambda!").encode())
        # Then the string, unquoted, is the body
        assert (status, payload) == (200, b"Hello from Lambda!")

    def test_a_full_response(self) -> None:
        # Given a result with status, headers, cookies and a text body
        result = {
            "statusCode": 201,
            "headers": {"Content-Type": "application/json", "X-Thing": 7, "Content-Length": "999"},
            "cookies": ["session=abc; HttpOnly", "theme=dark"],
            "body": '{"ok":true}',
        }
        # When it becomes the HTTP response
        status, headers, payload = to_http(json.dumps(result).encode())
        # Then names are lower-cased, framing headers dropped, and cookies are Set-Cookie
        assert status == 201
        assert headers == [
            (b"content-type", b"application/json"),
            (b"x-thing", b"7"),
            (b"set-cookie", b"session=abc; HttpOnly"),
            (b"set-cookie", b"theme=dark"),
        ]
        assert payload == b'{"ok":true}'

    def test_a_base64_body_is_decoded(self) -> None:
        # Given a binary body, base64-encoded
        raw = bytes(range(256))
        result = {
            "statusCode": 200,
            "headers": {"content-type": "application/octet-stream"},
            "body": base64.b64encode(raw).decode(),
            "isBase64Encoded": True,
        }
        # When it becomes the HTTP response
        # Then the client gets the bytes
        assert to_http(json.dumps(result).encode())[2] == raw

    def test_multi_value_headers_are_each_sent(self) -> None:
        # Given a header with several values
        result = {"statusCode": 204, "multiValueHeaders": {"Vary": ["Origin", "Accept"]}}
        # When it becomes the HTTP response
        status, headers, payload = to_http(json.dumps(result).encode())
        # Then each value is its own header, and no body is an empty body
        assert status == 204
        assert headers == [(b"vary", b"Origin"), (b"vary", b"Accept")]
        assert payload == b""

    @pytest.mark.parametrize(
        "result",
        [
            {"statusCode": "200"},
            {"statusCode": True},
            {"statusCode": 99},
            {"statusCode": 600},
            {"statusCode": 200.5},
            {"statusCode": None},
            {"statusCode": 200, "body": {"not": "a string"}},
            {"statusCode": 200, "body": "%%%not base64", "isBase64Encoded": True},
        ],
    )
    def test_a_malformed_response_is_refused(self, result: dict[str, Any]) -> None:
        # Given a result an HTTP API cannot send
        # When it becomes the HTTP response
        # Then MalformedResponseError (the gateway answers 500)
        with pytest.raises(MalformedResponseError):
            to_http(json.dumps(result).encode())

    def test_a_result_that_is_not_json_is_refused(self) -> None:
        # Given a payload that is not JSON
        # When it becomes the HTTP response
        # Then MalformedResponseError
        with pytest.raises(MalformedResponseError):
            to_http(b"not json")
