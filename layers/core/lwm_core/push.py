"""Push a payload to users over the WebSocket API: every device, concurrently.

Shared by every feature that talks in real time (chat, call signaling,
whiteboard, transcoding progress, in-app notifications). A payload goes to
each open connection of each user through the ``@connections`` API, the posts
made concurrently; a connection that answers ``GoneException`` is forgotten;
the result says who had no reachable device, so that the caller can fall back
to a notification.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
    """``PostToConnection`` as one SigV4-signed HTTP request over a keep-alive pool.

    A fan-out is one post per recipient connection. Through a boto3 client each
    post spends about 1.5 ms of CPU in botocore's request machinery (measured
    here; it is the same in a Lambda sandbox), which caps a sandbox at a few
    hundred posts a second however many threads send them. This sends the very
    request boto3 would -- ``POST {endpoint}/@connections/{id}``, signed by
    botocore's own SigV4 signer with the sandbox's credentials -- for a fifth of
    that. Throttling and server errors are retried twice, like boto3's standard
    mode; 410 raises :class:`GoneError`.
    """

    RETRIES = 2

    def __init__(self, endpoint_url: str, region: str, credentials: Any) -> None:
        import urllib3

        self._base = endpoint_url.rstrip("/")
        self._region = region
        self._credentials = credentials
        self._http = urllib3.PoolManager(
            maxsize=MAX_PARALLEL_POSTS, retries=False, timeout=urllib3.Timeout(2, 10)
        )

    def post(self, connection_id: str, frame: bytes) -> None:
        """Deliver ``frame``; GoneError when the connection is closed, OSError otherwise."""
        import time
        from urllib.parse import quote

        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        url = f"{self._base}/@connections/{quote(connection_id, safe='')}"
        for attempt in range(self.RETRIES + 1):
            request = AWSRequest(method="POST", url=url, data=frame)
            signer = SigV4Auth(
                self._credentials.get_frozen_credentials(), "execute-api", self._region
            )
            signer.add_auth(request)
            try:
                answer = self._http.request(
                    "POST", url, body=frame, headers=dict(request.headers.items())
                )
            except Exception as e:  # urllib3's errors: connection refused, reset, timeout
                if attempt == self.RETRIES:
                    raise OSError(f"post to {connection_id} failed: {e}") from e
            else:
                if answer.status < 300:
                    return
                if answer.status == 410:
                    raise GoneError(connection_id)
                if answer.status not in (429, 500, 502, 503, 504) or attempt == self.RETRIES:
                    raise OSError(f"post to {connection_id}: HTTP {answer.status}")
            time.sleep(0.05 * 2**attempt)


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
        result = PushResult()
        self._post(connection_id, encode(payload), result)
        return bool(result.delivered)

    def to_user(self, user_id: str, payload: Mapping[str, Any] | str | bytes) -> PushResult:
        """Send to every open connection of ``user_id``."""
        return self.to_users([user_id], payload)

    def to_users(
        self,
        user_ids: Iterable[str],
        payload: Mapping[str, Any] | str | bytes,
        *,
        exclude: Iterable[str] = (),
    ) -> PushResult:
        """Send to every open connection of every user, concurrently.

        ``exclude``: connection ids that must not get it (the sender's own socket).
        """
        frame = encode(payload)
        skipped = set(exclude)
        users = list(dict.fromkeys(user_ids))
        targets = [
            (c.user_id, c.connection_id)
            for c in self._connections.of_users(users)
            if c.connection_id not in skipped
        ]
        result = PushResult()
        posted = list(self._pool.map(lambda t: self._post(t[1], frame, result, t[0]), targets))
        reached = {user_id for (user_id, _), ok in zip(targets, posted, strict=True) if ok}
        result.unreachable = set(users) - reached
        return result

    def _post(
        self, connection_id: str, frame: bytes, result: PushResult, user_id: str | None = None
    ) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if self._poster is not None:
                self._poster.post(connection_id, frame)
            else:
                self._management.post_to_connection(ConnectionId=connection_id, Data=frame)
        except GoneError:
            self._connections.remove(connection_id, user_id)
            result.gone.append(connection_id)
            return False
        except OSError:
            result.failed.append(connection_id)
            return False
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") == "GoneException":
                self._connections.remove(connection_id, user_id)
                result.gone.append(connection_id)
            else:
                result.failed.append(connection_id)
            return False
        except BotoCoreError:
            result.failed.append(connection_id)
            return False
        result.delivered.append(connection_id)
        return True


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
