"""Open WebSocket connections: by connection (who is it) and by user (every device).

Two kinds of item share the ``connections`` table:

* ``CONN#<connection id>`` names the connection's user and expires by TTL a
  little after API Gateway's longest connection (2 hours);
* ``USER#<user id>`` holds the set of the user's open connection ids (and
  expires two hours after the user's latest connect).

``$connect`` writes both, ``$disconnect`` removes both. The ``USER#`` item also
names the connections whose client said it is away (``setPresence``), so a
user's presence is one read: offline without a connection, online when any
connection is not away, else away. A push to many users
reads their ``USER#`` items with one ``BatchGetItem`` per 100 users, so the
AWS calls of a fan-out do not grow with the number of recipients beyond that.
An id whose ``$disconnect`` never ran stays in the set until a push finds it
gone (``GoneException``), which removes it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UnicodeSetAttribute

from lwm_core.dynamo import LwmModel

MAX_CONNECTION_S = 2 * 3600  # API Gateway closes a WebSocket after 2 hours
EXPIRY_MARGIN_S = 300
BATCH_GET_LIMIT = 100  # keys per BatchGetItem
ONLINE, AWAY, OFFLINE = "online", "away", "offline"


class ConnectionItem(LwmModel):
    """One item of the connections table (bind to it before use)."""

    class Meta:
        table_name = ""

    pk = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute(null=True)  # CONN# items
    connected_at = NumberAttribute(null=True)  # CONN# items
    devices = UnicodeSetAttribute(null=True)  # USER# items: open connection ids
    away = UnicodeSetAttribute(null=True)  # USER# items: connections whose client is away
    expires_at = NumberAttribute(null=True)


def _conn(connection_id: str) -> str:
    return f"CONN#{connection_id}"


def _user(user_id: str) -> str:
    return f"USER#{user_id}"


@dataclass(frozen=True)
class Connection:
    """An open connection."""

    connection_id: str
    user_id: str
    connected_at: int


class DynamoConnectionStore:
    """Connections in DynamoDB (``ConnectionItem`` bound to the declared table)."""

    def add(self, connection_id: str, user_id: str, now: float | None = None) -> Connection:
        """Record an accepted connection (two writes: the connection, the user's map)."""
        connected = int(now if now is not None else time.time())
        expires = connected + MAX_CONNECTION_S + EXPIRY_MARGIN_S
        ConnectionItem(
            _conn(connection_id), user_id=user_id, connected_at=connected, expires_at=expires
        ).save()
        ConnectionItem(_user(user_id)).update(
            actions=[
                ConnectionItem.devices.add({connection_id}),
                ConnectionItem.expires_at.set(expires),
            ]
        )
        return Connection(connection_id, user_id, connected)

    def get(self, connection_id: str) -> Connection | None:
        """The connection with this id, if recorded and not expired."""
        try:
            item = ConnectionItem.get(_conn(connection_id))
        except ConnectionItem.DoesNotExist:
            return None
        if (item.expires_at or 0) <= time.time() or not item.user_id:
            return None
        return Connection(connection_id, item.user_id, int(item.connected_at or 0))

    def remove(self, connection_id: str, user_id: str | None = None) -> None:
        """Forget a connection (idempotent); ``user_id`` saves a read when known."""
        if user_id is None:
            found = self.get(connection_id)
            user_id = found.user_id if found else None
        ConnectionItem(_conn(connection_id)).delete()
        if user_id:
            ConnectionItem(_user(user_id)).update(
                actions=[
                    ConnectionItem.devices.delete({connection_id}),
                    ConnectionItem.away.delete({connection_id}),
                ]
            )

    def set_away(self, connection_id: str, user_id: str, away: bool) -> bool:
        """Mark one open connection of ``user_id`` away (or back); False if it is not open."""
        from pynamodb.exceptions import UpdateError

        change = ConnectionItem.away.add if away else ConnectionItem.away.delete
        try:
            ConnectionItem(_user(user_id)).update(
                actions=[change({connection_id})],
                condition=ConnectionItem.devices.contains(connection_id),
            )
        except UpdateError as e:
            if e.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def presence(self, user_ids: Iterable[str]) -> dict[str, str]:
        """``online``, ``away`` or ``offline`` for each user, read in batches of 100."""
        status = dict.fromkeys(user_ids, OFFLINE)
        for user_id, item in self._user_items(status):
            devices = set(item.devices or ())
            if devices - set(item.away or ()):
                status[user_id] = ONLINE
            elif devices:
                status[user_id] = AWAY
        return status

    def of_user(self, user_id: str) -> list[Connection]:
        """Every open connection of ``user_id`` (every device)."""
        return list(self.of_users([user_id]))

    def of_users(self, user_ids: Iterable[str]) -> Iterator[Connection]:
        """Every open connection of every user, read in batches of 100 users."""
        for user_id, item in self._user_items(user_ids):
            for connection_id in sorted(item.devices or ()):
                yield Connection(connection_id, user_id, 0)

    def _user_items(self, user_ids: Iterable[str]) -> Iterator[tuple[str, ConnectionItem]]:
        users = list(dict.fromkeys(user_ids))
        now = time.time()
        for start in range(0, len(users), BATCH_GET_LIMIT):
            keys = [_user(u) for u in users[start : start + BATCH_GET_LIMIT]]
            for item in ConnectionItem.batch_get(keys):
                if (item.expires_at or 0) <= now:  # nobody connected for two hours
                    continue
                yield item.pk.removeprefix("USER#"), item
