"""The LinkWithMentor platform, declared once.

Adding a route is one line in a service's ``routes``; the CDK app deploys it
and the local gateway serves it. ``tests/infra/test_declaration_parity.py``
proves both runtimes agree with this file.
"""

from __future__ import annotations

from blueprint.model import (
    WS_CONNECT,
    WS_DISCONNECT,
    Access,
    Bucket,
    Function,
    Index,
    KeyAttr,
    Platform,
    Queue,
    Secret,
    Service,
    SigningKey,
    Table,
    TableStream,
    WebSocketApi,
    WebSocketRoute,
    public,
    role,
    user,
)
from blueprint.model import WS_DEFAULT as WS_DEFAULT_ROUTE
from lwm_core import constants as c

# --- data -------------------------------------------------------------------

AUTH_TABLE = Table(
    name="auth",
    partition_key=KeyAttr("pk"),
    sort_key=KeyAttr("sk"),
    # gsi1: every refresh-token family of a user, to sign out everywhere / erase an account.
    indexes=(Index("gsi1", KeyAttr("gsi1pk"), KeyAttr("gsi1sk")),),
    ttl_attribute="expires_at",
)

# Open WebSocket connections. Per user, one item maps each open connection id to its
# expiry, so a push to a group reads every member's devices with one BatchGetItem per
# 100 members; per connection, one item names its user (for $disconnect), expiring
# (TTL) shortly after API Gateway's longest connection, two hours.
# Its stream tells chat when a user comes online (a first device) or goes offline.
CONNECTIONS_TABLE = Table(
    name="connections",
    partition_key=KeyAttr("pk"),
    ttl_attribute="expires_at",
    stream="NEW_AND_OLD_IMAGES",
)

RATE_LIMIT_TABLE = Table(
    name="rate-limits",
    partition_key=KeyAttr("pk"),
    ttl_attribute="expires_at",
)

# Chat: conversations, members, messages, requests, blocks, settings and the outbox of
# domain events in one table (item layout in functions/chat/data.py).
# gsi1: a user's conversations by last activity (member items) and a mentor's request
#       inbox (request items); gsi2: a mentee's request outbox.
# The stream feeds the event bus (outbox items) and the search index (messages).
CHAT_TABLE = Table(
    name="chat",
    partition_key=KeyAttr("pk"),
    sort_key=KeyAttr("sk"),
    indexes=(
        Index("gsi1", KeyAttr("gsi1pk"), KeyAttr("gsi1sk")),
        Index("gsi2", KeyAttr("gsi2pk"), KeyAttr("gsi2sk")),
    ),
    ttl_attribute="expires_at",
    stream="NEW_AND_OLD_IMAGES",
)

# Chat attachments: uploaded by clients straight to S3 with a presigned POST (type and
# size enforced by the policy), downloaded through URLs that expire.
CHAT_ATTACHMENTS_BUCKET = Bucket(name="chat-attachments", cors=True)

# What a stream consumer could not take after every retry (the batch's shard and
# sequence numbers), for an operator to replay.
CHAT_STREAM_FAILURES = Queue(name="chat-stream-failures", retention_days=14)

ACCESS_TOKEN_KEY = SigningKey("access-token")

OIDC_PROVIDERS_SECRET = Secret(
    "oidc-providers",
    "External OpenID Connect providers: JSON {name: {issuer, client_id, client_secret}}",
    generate=False,
)

# --- services ---------------------------------------------------------------

USERS = Service(
    name="users",
    function=Function(
        name="users",
        handler="functions.users.handler.handler",
        description="Accounts, authentication, roles, profiles and mentor discovery",
        memory_mb=1024,
        timeout_s=10,
        access=(
            Access.table(AUTH_TABLE.name),
            Access.table(RATE_LIMIT_TABLE.name),
            Access.signing_key(ACCESS_TOKEN_KEY.name, "sign"),
            Access.secret(OIDC_PROVIDERS_SECRET.name),
            Access.email(),
            Access.database(),
        ),
    ),
    migrations="functions/users/migrations",
    app="functions.users.api:app",
    routes=(
        # identity provider metadata
        public("GET", "/.well-known/jwks.json"),
        public("GET", "/.well-known/openid-configuration"),
        # authentication
        public("POST", "/auth/register"),
        public("POST", "/auth/login"),
        public("POST", "/auth/refresh"),
        public("POST", "/auth/logout"),
        public("GET", "/auth/verify-email"),
        public("POST", "/auth/verify-email"),
        user("POST", "/auth/verify-email/resend"),
        public("POST", "/auth/password/forgot"),
        public("POST", "/auth/password/reset"),
        public("GET", "/auth/oidc/{provider}/authorize"),
        public("GET", "/auth/oidc/{provider}/callback"),
        user("POST", "/auth/switch-role"),
        # the signed-in user
        user("GET", "/me"),
        user("PATCH", "/me"),
        user("DELETE", "/me"),
        user("GET", "/me/export"),
        user("POST", "/me/roles"),
        # users by id (self or admin)
        user("GET", "/users/{user_id}"),
        user("PATCH", "/users/{user_id}"),
        role("GET", "/admin/users", c.ROLE_ADMIN),
        # discovery
        public("GET", "/mentors"),
        public("GET", "/mentors/{mentor_id}"),
    ),
)

CHAT = Service(
    name="chat",
    function=Function(
        name="chat",
        handler="functions.chat.handler.handler",
        description="Mentorship requests, conversations, messages, receipts and blocks",
        memory_mb=512,
        timeout_s=10,
        access=(
            Access.table(CHAT_TABLE.name),
            Access.table(CONNECTIONS_TABLE.name),
            Access.bucket(CHAT_ATTACHMENTS_BUCKET.name),
            Access.websocket(),
        ),
    ),
    app="functions.chat.api:app",
    routes=(
        # mentorship requests
        user("POST", "/chat/requests"),
        user("GET", "/chat/requests"),
        user("GET", "/chat/requests/{request_id}"),
        user("POST", "/chat/requests/{request_id}/accept"),
        user("POST", "/chat/requests/{request_id}/decline"),
        user("POST", "/chat/requests/{request_id}/withdraw"),
        # conversations and members
        user("GET", "/conversations"),
        user("POST", "/conversations/direct"),
        user("POST", "/conversations/groups"),
        user("GET", "/conversations/{conversation_id}"),
        user("GET", "/conversations/{conversation_id}/members"),
        user("POST", "/conversations/{conversation_id}/members"),
        user("DELETE", "/conversations/{conversation_id}/members/{user_id}"),
        user("POST", "/conversations/{conversation_id}/leave"),
        # messages and receipts
        user("GET", "/conversations/{conversation_id}/messages"),
        user("POST", "/conversations/{conversation_id}/messages"),
        user("PATCH", "/conversations/{conversation_id}/messages/{message_id}"),
        user("DELETE", "/conversations/{conversation_id}/messages/{message_id}"),
        user("POST", "/conversations/{conversation_id}/messages/{message_id}/reactions"),
        user("POST", "/conversations/{conversation_id}/read"),
        user("POST", "/conversations/{conversation_id}/attachments"),
        user("GET", "/conversations/{conversation_id}/attachments/{attachment_id}"),
        # settings and blocks
        user("GET", "/chat/settings"),
        user("PATCH", "/chat/settings"),
        user("GET", "/chat/blocks"),
        user("PUT", "/chat/blocks/{user_id}"),
        user("DELETE", "/chat/blocks/{user_id}"),
    ),
)

CHAT_SEARCH = Service(
    name="chat-search",
    function=Function(
        name="chat-search",
        handler="functions.chat.search_handler.handler",
        description="Full-text search over the messages of the caller's conversations",
        memory_mb=512,
        timeout_s=10,
        access=(Access.table(CHAT_TABLE.name, "read"), Access.database()),
    ),
    migrations="functions/chat/migrations",
    app="functions.chat.search_api:app",
    routes=(user("GET", "/chat/search"),),
)

CHAT_SOCKET = Function(
    name="chat-socket",
    handler="functions.chat.socket.handler",
    description="Chat actions over the WebSocket API: send, receipts, typing, presence",
    memory_mb=512,
    timeout_s=10,
    access=(
        Access.table(CHAT_TABLE.name),
        Access.table(CONNECTIONS_TABLE.name),
        Access.bucket(CHAT_ATTACHMENTS_BUCKET.name, "read"),
        Access.websocket(),
    ),
)

CHAT_EVENTS = Function(
    name="chat-events",
    handler="functions.chat.outbox.handler",
    description="Publishes chat's outbox (table stream) to the bus; reorders big groups' lists",
    memory_mb=256,
    timeout_s=30,
    access=(Access.events(), Access.table(CHAT_TABLE.name, "write")),
)

CHAT_SEARCH_INDEXER = Function(
    name="chat-search-indexer",
    handler="functions.chat.search_index.handler",
    description="Keeps the message search index in step with the chat table's stream",
    memory_mb=512,
    timeout_s=30,
    access=(Access.database(),),
)

CHAT_PRESENCE = Function(
    name="chat-presence",
    handler="functions.chat.presence.handler",
    description="Tells a user's direct contacts when they come online or go offline",
    memory_mb=256,
    timeout_s=10,
    access=(
        Access.table(CHAT_TABLE.name, "read"),
        Access.table(CONNECTIONS_TABLE.name, "read"),
        Access.bucket(CHAT_ATTACHMENTS_BUCKET.name, "read"),
        Access.websocket(),
    ),
)

_OUTBOX_INSERTS = {
    "eventName": ["INSERT"],
    "dynamodb": {"Keys": {"pk": {"S": [{"prefix": "OUTBOX#"}]}}},
}
_MESSAGE_CHANGES = {"dynamodb": {"Keys": {"sk": {"S": [{"prefix": "MSG#"}]}}}}

_USER_DEVICES = {"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "USER#"}]}}}}

CHAT_STREAMS = (
    TableStream(
        table=CONNECTIONS_TABLE.name,
        function=CHAT_PRESENCE.name,
        filters=(_USER_DEVICES,),
        batch_size=100,
        # presence is news for a minute, not a day: old records are dropped, not retried
        retry_attempts=2,
        max_record_age_s=60,
        on_failure_queue=CHAT_STREAM_FAILURES.name,
        starting_position="LATEST",
    ),
    TableStream(
        table=CHAT_TABLE.name,
        function=CHAT_EVENTS.name,
        filters=(_OUTBOX_INSERTS,),
        batch_size=100,
        on_failure_queue=CHAT_STREAM_FAILURES.name,
    ),
    TableStream(
        table=CHAT_TABLE.name,
        function=CHAT_SEARCH_INDEXER.name,
        filters=(_MESSAGE_CHANGES,),
        batch_size=100,
        on_failure_queue=CHAT_STREAM_FAILURES.name,
    ),
)

DB_MIGRATE = Function(
    name="db-migrate",
    handler="functions.db_migrate.handler.handler",
    description="Applies every service's Alembic migrations; run on each deploy",
    memory_mb=512,
    timeout_s=300,
    access=(Access.database(),),
    local_workers=1,
)

# --- real time (the WebSocket API) ------------------------------------------------

WS_AUTHORIZER = Function(
    name="ws-authorizer",
    handler="websocket_handlers.authorizer.handler",
    description="Verifies the access token of a WebSocket $connect (Lambda REQUEST authorizer)",
    memory_mb=256,
    timeout_s=5,
    access=(Access.signing_key(ACCESS_TOKEN_KEY.name, "verify"),),
)

WS_CONNECTIONS = Function(
    name="ws-connections",
    handler="websocket_handlers.connections.handler",
    description="Records WebSocket connections on $connect and forgets them on $disconnect",
    memory_mb=256,
    timeout_s=5,
    access=(Access.table(CONNECTIONS_TABLE.name),),
)

WS_DEFAULT = Function(
    name="ws-default",
    handler="websocket_handlers.default.handler",
    description="Answers WebSocket messages no route takes (malformed JSON, unknown action, ping)",
    memory_mb=256,
    timeout_s=5,
    access=(Access.table(CONNECTIONS_TABLE.name, "read"), Access.websocket()),
)

REALTIME = WebSocketApi(
    name="realtime",
    authorizer=WS_AUTHORIZER.name,
    connections_table=CONNECTIONS_TABLE.name,
    routes=(
        WebSocketRoute(WS_CONNECT, WS_CONNECTIONS.name),
        WebSocketRoute(WS_DISCONNECT, WS_CONNECTIONS.name),
        WebSocketRoute(WS_DEFAULT_ROUTE, WS_DEFAULT.name),
        WebSocketRoute("ping", WS_DEFAULT.name),
        # chat (docs/websocket.md)
        WebSocketRoute("sendMessage", CHAT_SOCKET.name),
        WebSocketRoute("markRead", CHAT_SOCKET.name),
        WebSocketRoute("markDelivered", CHAT_SOCKET.name),
        WebSocketRoute("typing", CHAT_SOCKET.name),
        WebSocketRoute("setPresence", CHAT_SOCKET.name),
        WebSocketRoute("getPresence", CHAT_SOCKET.name),
    ),
)

PLATFORM = Platform(
    services=(USERS, CHAT, CHAT_SEARCH),
    workers=(
        DB_MIGRATE,
        WS_AUTHORIZER,
        WS_CONNECTIONS,
        WS_DEFAULT,
        CHAT_SOCKET,
        CHAT_EVENTS,
        CHAT_SEARCH_INDEXER,
        CHAT_PRESENCE,
    ),
    tables=(AUTH_TABLE, RATE_LIMIT_TABLE, CONNECTIONS_TABLE, CHAT_TABLE),
    buckets=(CHAT_ATTACHMENTS_BUCKET,),
    queues=(CHAT_STREAM_FAILURES,),
    streams=CHAT_STREAMS,
    signing_keys=(ACCESS_TOKEN_KEY,),
    secrets=(OIDC_PROVIDERS_SECRET,),
    websocket=REALTIME,
)
