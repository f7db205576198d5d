"""Typed building blocks of the platform declaration.

Everything the platform runs is declared once with these types (see
``blueprint.platform``). The CDK stacks (``infra_cdk``) and the local runtime
(``local_runtime``) both read the same declaration, so a route, table or queue
added here is deployed to AWS and served locally without a second listing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Literal, TypeVar

from lwm_core import constants as c

AttrType = Literal["S", "N", "B"]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
StreamView = Literal["NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES", "KEYS_ONLY"]

_NAME = re.compile(r"^[a-z][a-z0-9-]{1,40}$")
_PATH = re.compile(r"^/(?:[A-Za-z0-9._-]+|\{[a-z_]+\+?\})(?:/(?:[A-Za-z0-9._-]+|\{[a-z_]+\+?\}))*$")


def _check_name(kind: str, name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"{kind} name {name!r} must match {_NAME.pattern}")


def env_suffix(name: str) -> str:
    """Upper-snake form of a logical name, used in environment keys."""
    return name.upper().replace("-", "_")


class Auth(StrEnum):
    """Who may call a route, enforced at the edge by the HTTP API's JWT authorizer."""

    PUBLIC = "public"  # no token
    USER = "user"  # any valid access token
    ROLE = "role"  # a valid token whose `scope` holds one of the route's roles


@dataclass(frozen=True)
class Route:
    """One HTTP API route (method + path) and who may call it."""

    method: HttpMethod
    path: str
    auth: Auth = Auth.USER
    roles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _PATH.match(self.path):
            raise ValueError(f"route path {self.path!r} is not an HTTP API path")
        if (self.auth is Auth.ROLE) != bool(self.roles):
            raise ValueError(f"{self.key}: roles are given exactly when auth is ROLE")
        unknown = set(self.roles) - set(c.ROLES)
        if unknown:
            raise ValueError(f"{self.key}: unknown roles {sorted(unknown)}")

    @property
    def key(self) -> str:
        """The API Gateway route key, e.g. ``GET /mentors/{mentor_id}``."""
        return f"{self.method} {self.path}"


def public(method: HttpMethod, path: str) -> Route:
    """A route anyone may call."""
    return Route(method, path, Auth.PUBLIC)


def user(method: HttpMethod, path: str) -> Route:
    """A route for any signed-in user."""
    return Route(method, path, Auth.USER)


def role(method: HttpMethod, path: str, *roles: str) -> Route:
    """A route for users holding one of ``roles`` (checked on the token's scope)."""
    return Route(method, path, Auth.ROLE, tuple(roles))


@dataclass(frozen=True)
class KeyAttr:
    """A key attribute of a table or index."""

    name: str
    type: AttrType = "S"


@dataclass(frozen=True)
class Index:
    """A global secondary index (projection: all attributes)."""

    name: str
    partition_key: KeyAttr
    sort_key: KeyAttr | None = None


@dataclass(frozen=True)
class Table:
    """A DynamoDB table: on-demand, encrypted with the data key, PITR on."""

    name: str
    partition_key: KeyAttr
    sort_key: KeyAttr | None = None
    indexes: tuple[Index, ...] = ()
    ttl_attribute: str | None = None
    stream: StreamView | None = None

    def __post_init__(self) -> None:
        _check_name("table", self.name)

    @property
    def env_key(self) -> str:
        return f"{c.ENV_TABLE_PREFIX}{env_suffix(self.name)}"

    def attributes(self) -> dict[str, AttrType]:
        """Every key attribute of the table and its indexes, by name."""
        attrs: dict[str, AttrType] = {}
        for key in (self.partition_key, self.sort_key):
            if key:
                attrs[key.name] = key.type
        for index in self.indexes:
            for key in (index.partition_key, index.sort_key):
                if key:
                    attrs[key.name] = key.type
        return attrs


@dataclass(frozen=True)
class Bucket:
    """An S3 bucket: private, encrypted, TLS only."""

    name: str
    versioned: bool = False
    expire_days: int | None = None
    cors: bool = False

    def __post_init__(self) -> None:
        _check_name("bucket", self.name)

    @property
    def env_key(self) -> str:
        return f"{c.ENV_BUCKET_PREFIX}{env_suffix(self.name)}"


@dataclass(frozen=True)
class Queue:
    """An SQS queue; every queue gets a dead-letter queue."""

    name: str
    visibility_timeout_s: int = 60
    max_receive_count: int = 5
    retention_days: int = 4

    def __post_init__(self) -> None:
        _check_name("queue", self.name)

    @property
    def env_key(self) -> str:
        return f"{c.ENV_QUEUE_PREFIX}{env_suffix(self.name)}"

    @property
    def dlq_name(self) -> str:
        return f"{self.name}-dlq"


@dataclass(frozen=True)
class SigningKey:
    """An asymmetric KMS key (ECC_NIST_P256, SIGN_VERIFY) whose private half never leaves KMS."""

    name: str

    def __post_init__(self) -> None:
        _check_name("signing key", self.name)

    @property
    def env_key(self) -> str:
        return f"{c.ENV_SIGNING_KEY_PREFIX}{env_suffix(self.name)}"


@dataclass(frozen=True)
class Secret:
    """A Secrets Manager secret; ``generate`` fills it with a random string at creation."""

    name: str
    description: str
    generate: bool = True

    def __post_init__(self) -> None:
        _check_name("secret", self.name)

    @property
    def env_key(self) -> str:
        return f"{c.ENV_SECRET_PREFIX}{env_suffix(self.name)}"


@dataclass(frozen=True)
class EventRule:
    """An EventBridge rule on the platform bus delivering matches to a queue."""

    name: str
    pattern: Mapping[str, object]
    queue: str


StartingPosition = Literal["TRIM_HORIZON", "LATEST"]


@dataclass(frozen=True)
class TableStream:
    """A function fed by a table's stream (a Lambda event source mapping).

    Records matching any of ``filters`` (Lambda filter patterns over the stream
    record, e.g. a key prefix and ``eventName``) reach ``function`` in batches
    of up to ``batch_size``, in order per shard. The handler reports the records
    it could not take (``batchItemFailures``); the batch is retried from the
    first of them (halved on each retry when ``bisect_on_error``) and records
    still failing after ``retry_attempts`` are described on ``on_failure_queue``,
    so none is dropped silently.
    """

    table: str
    function: str
    filters: tuple[Mapping[str, object], ...] = ()
    batch_size: int = 100
    batching_window_s: int = 0
    retry_attempts: int = 10
    max_record_age_s: int = 86_400
    bisect_on_error: bool = True
    on_failure_queue: str | None = None
    starting_position: StartingPosition = "TRIM_HORIZON"

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 10_000:
            raise ValueError(f"stream {self.table}->{self.function}: batch_size out of 1..10000")
        if not 0 <= self.retry_attempts <= 10_000:
            raise ValueError(f"stream {self.table}->{self.function}: retry_attempts out of range")

    @property
    def name(self) -> str:
        return f"{self.table}-to-{self.function}"


@dataclass(frozen=True)
class Schedule:
    """An EventBridge Scheduler schedule invoking a function."""

    name: str
    expression: str
    function: str
    payload: Mapping[str, object] = field(default_factory=dict)


AccessKind = Literal[
    "table",
    "bucket",
    "queue",
    "signing_key",
    "secret",
    "email",
    "events",
    "database",
    "websocket",
]
AccessMode = Literal[
    "read", "write", "read_write", "send", "sign", "verify", "publish", "connect", "manage"
]


@dataclass(frozen=True)
class Access:
    """A permission a function needs; it also decides which environment keys it gets."""

    kind: AccessKind
    mode: AccessMode
    name: str = ""

    @staticmethod
    def table(name: str, mode: AccessMode = "read_write") -> Access:
        return Access("table", mode, name)

    @staticmethod
    def bucket(name: str, mode: AccessMode = "read_write") -> Access:
        return Access("bucket", mode, name)

    @staticmethod
    def queue(name: str, mode: AccessMode = "send") -> Access:
        return Access("queue", mode, name)

    @staticmethod
    def signing_key(name: str, mode: AccessMode = "sign") -> Access:
        return Access("signing_key", mode, name)

    @staticmethod
    def secret(name: str) -> Access:
        return Access("secret", "read", name)

    @staticmethod
    def email() -> Access:
        return Access("email", "send")

    @staticmethod
    def events() -> Access:
        return Access("events", "publish")

    @staticmethod
    def database() -> Access:
        return Access("database", "connect")

    @staticmethod
    def websocket() -> Access:
        """Post to, read and close the WebSocket API's connections (``@connections``)."""
        return Access("websocket", "manage")


@dataclass(frozen=True)
class Function:
    """A Lambda function: its handler, sizing, environment and permissions."""

    name: str
    handler: str
    description: str
    memory_mb: int = 512
    timeout_s: int = 10
    environment: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    access: tuple[Access, ...] = ()
    local_workers: int = 3

    def __post_init__(self) -> None:
        _check_name("function", self.name)
        module, _, attr = self.handler.rpartition(".")
        if not module or not attr:
            raise ValueError(f"handler {self.handler!r} must be 'package.module.attribute'")

    @property
    def module(self) -> str:
        """The handler's module, e.g. ``functions.users.handler``."""
        return self.handler.rpartition(".")[0]

    @property
    def code_dir(self) -> str:
        """The folder (relative to the repo root) holding the function's own code."""
        parts = self.module.split(".")
        return "/".join(parts[:2]) if parts[0] == "functions" else "/".join(parts[:-1])

    @property
    def uses_database(self) -> bool:
        return any(a.kind == "database" for a in self.access)


@dataclass(frozen=True)
class Service:
    """A REST service: one function behind a set of HTTP API routes."""

    name: str
    function: Function
    routes: tuple[Route, ...]
    migrations: str | None = None  # Alembic script folder, relative to the repo root
    # The service's FastAPI app as ``module:attribute``: the source of its OpenAPI document.
    app: str | None = None

    def __post_init__(self) -> None:
        _check_name("service", self.name)
        keys = [r.key for r in self.routes]
        dupes = {k for k in keys if keys.count(k) > 1}
        if dupes:
            raise ValueError(f"service {self.name}: duplicate routes {sorted(dupes)}")


_WS_ROUTE = re.compile(r"^(\$connect|\$disconnect|\$default|[a-zA-Z][a-zA-Z0-9]{0,63})$")
WS_CONNECT = "$connect"
WS_DISCONNECT = "$disconnect"
WS_DEFAULT = "$default"


@dataclass(frozen=True)
class WebSocketRoute:
    """A WebSocket API route: ``$connect``, ``$disconnect``, ``$default`` or an action name.

    A message goes to the route named by its ``action`` field (the API's route
    selection expression is ``$request.body.action``), else to ``$default``.
    """

    key: str
    function: str

    def __post_init__(self) -> None:
        if not _WS_ROUTE.match(self.key):
            raise ValueError(f"WebSocket route {self.key!r} is not a route key or action name")


@dataclass(frozen=True)
class WebSocketApi:
    """The real-time API: its routes, its ``$connect`` authorizer, its connection table."""

    name: str
    authorizer: str  # the function that authorizes $connect (a Lambda REQUEST authorizer)
    routes: tuple[WebSocketRoute, ...]
    connections_table: str
    idle_timeout_s: int = 600  # API Gateway: 10 minutes without a frame
    max_duration_s: int = 7200  # API Gateway: 2 hours per connection

    def __post_init__(self) -> None:
        _check_name("websocket api", self.name)
        keys = [r.key for r in self.routes]
        if len(keys) != len(set(keys)):
            raise ValueError(f"websocket api {self.name}: duplicate routes in {keys}")
        for required in (WS_CONNECT, WS_DISCONNECT, WS_DEFAULT):
            if required not in keys:
                raise ValueError(f"websocket api {self.name}: {required} is not routed")

    def route(self, key: str) -> WebSocketRoute | None:
        """The route for ``key`` (a route key or an action), if declared."""
        return next((r for r in self.routes if r.key == key), None)


@dataclass(frozen=True)
class Platform:
    """The whole platform: every resource the CDK deploys and the local runtime serves."""

    services: tuple[Service, ...]
    tables: tuple[Table, ...] = ()
    buckets: tuple[Bucket, ...] = ()
    queues: tuple[Queue, ...] = ()
    signing_keys: tuple[SigningKey, ...] = ()
    secrets: tuple[Secret, ...] = ()
    rules: tuple[EventRule, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    workers: tuple[Function, ...] = ()  # functions without routes (queue consumers, tasks)
    websocket: WebSocketApi | None = None
    streams: tuple[TableStream, ...] = ()

    def __post_init__(self) -> None:
        self._validate()

    def functions(self) -> Iterator[Function]:
        """Every function, REST services first."""
        for service in self.services:
            yield service.function
        yield from self.workers

    def function(self, name: str) -> Function:
        for fn in self.functions():
            if fn.name == name:
                return fn
        raise KeyError(name)

    def routes(self) -> Iterator[tuple[Route, Function]]:
        """Every HTTP route with the function that serves it."""
        for service in self.services:
            for route in service.routes:
                yield route, service.function

    def table(self, name: str) -> Table:
        return _find(self.tables, name, "table")

    def bucket(self, name: str) -> Bucket:
        return _find(self.buckets, name, "bucket")

    def queue(self, name: str) -> Queue:
        return _find(self.queues, name, "queue")

    def signing_key(self, name: str) -> SigningKey:
        return _find(self.signing_keys, name, "signing key")

    def secret(self, name: str) -> Secret:
        return _find(self.secrets, name, "secret")

    def _validate(self) -> None:
        seen: dict[str, str] = {}
        for route, fn in self.routes():
            if route.key in seen:
                raise ValueError(f"{route.key} is served by both {seen[route.key]} and {fn.name}")
            seen[route.key] = fn.name
        names = [fn.name for fn in self.functions()]
        if len(names) != len(set(names)):
            raise ValueError(f"duplicate function names in {names}")
        lookups = {
            "table": self.table,
            "bucket": self.bucket,
            "queue": self.queue,
            "signing_key": self.signing_key,
            "secret": self.secret,
        }
        for fn in self.functions():
            for access in fn.access:
                if access.kind in lookups:
                    lookups[access.kind](access.name)  # raises KeyError when undeclared
        for rule in self.rules:
            self.queue(rule.queue)
        for schedule in self.schedules:
            self.function(schedule.function)
        for stream in self.streams:
            if self.table(stream.table).stream is None:
                raise ValueError(f"table {stream.table!r} has no stream for {stream.function}")
            self.function(stream.function)
            if stream.on_failure_queue is not None:
                self.queue(stream.on_failure_queue)
        if self.websocket is not None:
            self.table(self.websocket.connections_table)
            self.function(self.websocket.authorizer)
            for ws_route in self.websocket.routes:
                self.function(ws_route.function)
        elif any(a.kind == "websocket" for fn in self.functions() for a in fn.access):
            raise ValueError("a function manages WebSocket connections, but no API is declared")


_T = TypeVar("_T", Table, Bucket, Queue, SigningKey, Secret)


def _find(items: tuple[_T, ...], name: str, kind: str) -> _T:
    for item in items:
        if item.name == name:
            return item
    raise KeyError(f"undeclared {kind} {name!r}")
