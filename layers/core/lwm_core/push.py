"""Push a payload to users over the WebSocket API: every device, concurrently.

Shared by every feature that talks in real time (chat, call signaling,
whiteboard, transcoding progress, in-app notifications). A payload goes to
each open connection of each user through the ``@connections`` API, the posts
made concurrently; a connection that answers ``GoneException`` is forgotten;
the result says who had no reachable device, so that the caller can fall back
to a notification.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, Protocol

from lwm_core.connections import Connection, DynamoConnectionStore

MAX_PARALLEL_POSTS = 32


class ConnectionStore(Protocol):
    """Where open connections are found and forgotten."""

    def of_users(self, user_ids: Iterable[str]) -> Iterable[Connection]: ...
    def remove(self, connection_id: str, user_id: str | None = None) -> None: ...


@dataclass
class PushResult:
    """What became of one push."""

    delivered: list[str] = field(default_factory=list)  # connection ids
    gone: list[str] = field(default_factory=list)  # connection ids forgotten now
    failed: list[str] = field(default_factory=list)  # connection ids with another error
    unreachable: set[str] = field(default_factory=set)  # users with no delivered device

    @property
    def posts(self) -> int:
        return len(self.delivered) + len(self.gone) + len(self.failed)


def encode(payload: Mapping[str, Any] | str | bytes) -> bytes:
    """The frame for ``payload``: JSON for a mapping, UTF-8 for text, bytes as they are."""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps(payload, separators=(",", ":"), default=str).encode()


class GoneError(Exception):
    """The connection is closed (``410 GoneException``)."""


class SignedPoster:
    """``PostToConnection`` as SigV4-signed HTTP/1.1 requests on a few keep-alive connections.

    A fan-out is one post per recipient connection. Through a boto3 client each
    post spends about 1.5 ms of CPU in botocore's request machinery, and even
    urllib3 from a thread pool with botocore's signer about 0.55 ms (measured
    here; the cost is the same in a Lambda sandbox), which caps a sandbox at a
    few hundred posts a second. This sends the very request boto3 would -- ``POST
    {endpoint}/@connections/{id}``, signed with the sandbox's credentials by
    :class:`ConnectionSigner` (botocore's SigV4 signature without its
    per-request overhead) -- from one event loop over up to
    ``MAX_PARALLEL_POSTS`` keep-alive connections, with ``h11`` speaking
    HTTP/1.1. The loop and its connections live as long as the sandbox.

    Throttling and server errors are retried twice, like boto3's standard mode;
    a connection that breaks (a keep-alive the server closed while the sandbox
    was frozen) is replaced and the post sent again on the new one; 410 is
    :class:`GoneError`.
    """

    RETRIES = 2
    RETRYABLE = frozenset({429, 500, 502, 503, 504})

    def __init__(
        self,
        endpoint_url: str,
        region: str,
        credentials: Any,
        *,
        parallel: int = MAX_PARALLEL_POSTS,
        timeout_s: float = 10.0,
    ) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint: {endpoint_url!r}")
        self._tls = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        self._prefix = parts.path.rstrip("/")
        default_port = self._port == (443 if self._tls else 80)
        authority = self._host if default_port else f"{self._host}:{self._port}"
        self._signer = ConnectionSigner(credentials, region, authority)
        self._parallel = max(1, parallel)
        self._timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        self._idle: list[_Http] = []
        self._lock = threading.Lock()  # one fan-out at a time on the sandbox's loop

    def post(self, connection_id: str, frame: bytes) -> None:
        """Deliver ``frame``; GoneError when the connection is closed, OSError otherwise."""
        failure = self.post_many([connection_id], frame)[0]
        if failure is not None:
            raise failure

    def post_many(self, connection_ids: Sequence[str], frame: bytes) -> list[Exception | None]:
        """Post ``frame`` to every connection, concurrently; per connection, its failure or None."""
        if not connection_ids:
            return []
        with self._lock:
            work = self._all(list(connection_ids), frame)
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # the usual case: a handler's thread runs no loop
                return self._loop.run_until_complete(work)
            with ThreadPoolExecutor(1) as aside:  # called from async code: not on its loop
                return aside.submit(self._loop.run_until_complete, work).result()

    async def _all(self, connection_ids: list[str], frame: bytes) -> list[Exception | None]:
        results: list[Exception | None] = [None] * len(connection_ids)
        pending = iter(enumerate(connection_ids))

        async def lane() -> None:
            http = self._idle.pop() if self._idle else self._new_http()
            try:
                for index, connection_id in pending:
                    results[index] = await self._post(http, connection_id, frame)
            finally:
                self._idle.append(http)

        await asyncio.gather(*(lane() for _ in range(min(self._parallel, len(connection_ids)))))
        return results

    def _new_http(self) -> _Http:
        return _Http(self._host, self._port, self._tls)

    async def _post(self, http: _Http, connection_id: str, frame: bytes) -> Exception | None:
        from urllib.parse import quote

        path = f"{self._prefix}/@connections/{quote(connection_id, safe='')}"
        for attempt in range(self.RETRIES + 1):
            headers = self._signer.headers(path, frame)
            try:
                async with asyncio.timeout(self._timeout_s):
                    status = await http.request(path, headers, frame)
            except (OSError, TimeoutError, ConnectionError, _HttpError) as e:
                http.close()  # the next request opens a fresh connection
                if attempt == self.RETRIES:
                    return OSError(f"post to {connection_id} failed: {e}")
                continue  # a broken keep-alive: at once, on a new connection
            if status < 300:
                return None
            if status == 410:
                return GoneError(connection_id)
            if status not in self.RETRYABLE or attempt == self.RETRIES:
                return OSError(f"post to {connection_id}: HTTP {status}")
            await asyncio.sleep(0.05 * 2**attempt)
        return OSError(f"post to {connection_id} failed")  # not reached


class ConnectionSigner:
    """SigV4 for one request shape: ``POST /{stage}/@connections/{id}`` with a body.

    The signature botocore's ``SigV4Auth`` puts on that request, byte for byte
    (``tests/unit/websocket/test_signed_poster.py`` holds the two together),
    without its general machinery: botocore spends about 70 us a request
    re-splitting the URL and re-deriving the signing key, which was 40% of a
    fan-out's CPU; this takes about 12 us, the day's signing key kept.
    Credentials are read on every request, so rotated ones are used at once.
    """

    SERVICE = "execute-api"

    def __init__(self, credentials: Any, region: str, host: str) -> None:
        self._credentials = credentials
        self._region = region
        self._host = host  # the Host header: no default port, as botocore writes it
        self._key: tuple[str, str, bytes] = ("", "", b"")  # secret, day, signing key

    def headers(self, path: str, body: bytes, now: datetime | None = None) -> list[tuple[str, str]]:
        """Every header of the request: Host, Content-Length, X-Amz-*, Authorization."""
        from urllib.parse import quote

        creds = self._credentials.get_frozen_credentials()
        amz_date = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        canonical_headers = f"host:{self._host}\nx-amz-date:{amz_date}\n"
        signed = "host;x-amz-date"
        out = [("Host", self._host), ("Content-Length", str(len(body))), ("X-Amz-Date", amz_date)]
        if creds.token:
            canonical_headers += f"x-amz-security-token:{' '.join(creds.token.split())}\n"
            signed += ";x-amz-security-token"
            out.append(("X-Amz-Security-Token", creds.token))
        # non-S3 services sign the path URI-encoded once more
        canonical = "\n".join(
            ("POST", quote(path, safe="/~"), "", canonical_headers, signed, _sha256(body))
        )
        scope = f"{day}/{self._region}/{self.SERVICE}/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{_sha256(canonical.encode())}"
        signature = hmac.new(self._signing_key(creds.secret_key, day), to_sign.encode(), "sha256")
        out.append(
            (
                "Authorization",
                f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
                f"SignedHeaders={signed}, Signature={signature.hexdigest()}",
            )
        )
        return out

    def _signing_key(self, secret: str, day: str) -> bytes:
        cached_secret, cached_day, key = self._key
        if (cached_secret, cached_day) != (secret, day):
            key = f"AWS4{secret}".encode()
            for part in (day, self._region, self.SERVICE, "aws4_request"):
                key = hmac.digest(key, part.encode(), "sha256")
            self._key = (secret, day, key)
        return key


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _HttpError(Exception):
    """The server broke HTTP/1.1 or closed the connection mid-exchange."""


class _Http:
    """One keep-alive HTTP/1.1 connection (``h11`` on asyncio streams), opened on first use."""

    def __init__(self, host: str, port: int, tls: bool) -> None:
        self._host, self._port, self._tls = host, port, tls
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._h11: Any = None

    async def request(self, target: str, headers: list[tuple[str, str]], body: bytes) -> int:
        """Send one request and read its whole response; the status code."""
        import h11

        if self._writer is None or self._h11.our_state is not h11.IDLE:
            await self._open()
        assert self._reader is not None and self._writer is not None
        conn = self._h11
        try:
            out = conn.send(h11.Request(method="POST", target=target, headers=headers))
            out += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
            self._writer.write(out)
            await self._writer.drain()
            status = 0
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await self._reader.read(65536))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise _HttpError("the server closed the connection")
        except h11.ProtocolError as e:
            raise _HttpError(str(e)) from e
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        else:  # Connection: close, or an HTTP/1.0 answer
            self.close()
        return status

    async def _open(self) -> None:
        import h11

        self.close()
        ssl_context = _tls_context() if self._tls else None
        self._reader, self._writer = await asyncio.open_connection(
            self._host, self._port, ssl=ssl_context
        )
        self._h11 = h11.Connection(h11.CLIENT)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
        self._h11 = None


@cache
def _tls_context() -> Any:
    import ssl

    return ssl.create_default_context()


class Pusher:
    """Sends frames to connections through one ``apigatewaymanagementapi`` client.

    Args:
        management: a boto3 ``apigatewaymanagementapi`` client for the API's
            ``@connections`` endpoint (built once per sandbox; boto3 clients are
            safe to share between threads).
        connections: the open connections.
        poster: posts frames cheaper than ``management`` does (:class:`SignedPoster`);
            without it, the client posts.
    """

    def __init__(
        self, management: Any, connections: ConnectionStore, poster: SignedPoster | None = None
    ) -> None:
        self._management = management
        self._connections = connections
        self._poster = poster
        self._pool = ThreadPoolExecutor(MAX_PARALLEL_POSTS, thread_name_prefix="push")

    def to_connection(self, connection_id: str, payload: Mapping[str, Any] | str | bytes) -> bool:
        """Send to one connection (e.g. an answer to its sender); False when it is gone."""
        (failure,) = self._post_all([connection_id], encode(payload))
        return self._outcome(connection_id, None, failure, PushResult())

    def to_user(self, user_id: str, payload: Mapping[str, Any] | str | bytes) -> PushResult:
        """Send to every open connection of ``user_id``."""
        return self.to_users([user_id], payload)

    def look_up(self, user_ids: Iterable[str]) -> Future[list[Connection]]:
        """Start reading the users' open connections, for a push about to be made.

        A caller that knows the audience before its write commits reads their
        connections meanwhile (one DynamoDB round trip off the message's path) and
        hands the result to :meth:`to_users` as ``known``.
        """
        users = list(dict.fromkeys(user_ids))
        return self._pool.submit(lambda: list(self._connections.of_users(users)))

    def to_users(
        self,
        user_ids: Iterable[str],
        payload: Mapping[str, Any] | str | bytes,
        *,
        exclude: Iterable[str] = (),
        known: Future[list[Connection]] | None = None,
    ) -> PushResult:
        """Send to every open connection of every user, concurrently.

        ``exclude``: connection ids that must not get it (the sender's own socket).
        ``known``: the users' connections from :meth:`look_up` (read again if it failed).
        """
        frame = encode(payload)
        skipped = set(exclude)
        users = list(dict.fromkeys(user_ids))
        connections: Iterable[Connection] | None = None
        if known is not None:
            try:
                connections = known.result()
            except Exception:  # read them here instead
                connections = None
        if connections is None:
            connections = self._connections.of_users(users)
        wanted = set(users)
        targets = [
            (c.user_id, c.connection_id)
            for c in connections
            if c.user_id in wanted and c.connection_id not in skipped
        ]
        result = PushResult()
        failures = self._post_all([c for _, c in targets], frame)
        posted = [
            self._outcome(c, u, failure, result)
            for (u, c), failure in zip(targets, failures, strict=True)
        ]
        reached = {user_id for (user_id, _), ok in zip(targets, posted, strict=True) if ok}
        result.unreachable = set(users) - reached
        return result

    def _post_all(self, connection_ids: Sequence[str], frame: bytes) -> list[Exception | None]:
        """Post to every connection concurrently; per connection, its failure or None."""
        if self._poster is not None:
            return self._poster.post_many(connection_ids, frame)
        return list(self._pool.map(lambda c: self._client_post(c, frame), connection_ids))

    def _client_post(self, connection_id: str, frame: bytes) -> Exception | None:
        """One post through the boto3 client, its failure as the poster reports it."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._management.post_to_connection(ConnectionId=connection_id, Data=frame)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") == "GoneException":
                return GoneError(connection_id)
            return OSError(f"post to {connection_id}: {e}")
        except BotoCoreError as e:
            return OSError(f"post to {connection_id}: {e}")
        return None

    def _outcome(
        self, connection_id: str, user_id: str | None, failure: Exception | None, result: PushResult
    ) -> bool:
        """Record one post's outcome (forgetting a gone connection); True when delivered."""
        if failure is None:
            result.delivered.append(connection_id)
            return True
        if isinstance(failure, GoneError):
            self._connections.remove(connection_id, user_id)
            result.gone.append(connection_id)
        else:
            from lwm_core.observability import logger

            logger.warning(  # the member catches up from history; the reason is kept here
                "post failed", extra={"connection_id": connection_id, "error": str(failure)}
            )
            result.failed.append(connection_id)
        return False


@cache
def sandbox_connections() -> DynamoConnectionStore:
    """The sandbox's connection records, bound to its table (``ConnectionsSettings``)."""
    from lwm_core.connections import ConnectionItem
    from lwm_core.dynamo import bind
    from lwm_core.settings import ConnectionsSettings

    settings = ConnectionsSettings()
    bind(ConnectionItem, settings.connections_table, settings.aws_region, settings.aws_endpoint_url)
    return DynamoConnectionStore()


@cache
def sandbox_pusher() -> Pusher:
    """The sandbox's pusher, from its environment (``PushSettings``), built once."""
    from lwm_core.aws import client, credentials
    from lwm_core.settings import PushSettings

    settings = PushSettings()
    management = client("apigatewaymanagementapi", endpoint_url=settings.management_url)
    poster = SignedPoster(settings.management_url, settings.aws_region, credentials())
    return Pusher(management, sandbox_connections(), poster)
