"""Tells a user's direct contacts when they come online or go offline.

Fed by the connections table's stream (``USER#`` items): a user whose first
device connects comes online, one whose last device disconnects (or whose
record expires) goes offline. Each such change is pushed as a ``presence``
frame to the user's direct contacts, as ``setPresence`` pushes online/away
(the user's own first device knows it is online; a user gone offline has
none). Changes between online and away are ``setPresence``'s own and are not
pushed again here. Presence is news for a
moment: a record the stream delivers late (over a minute) is dropped by the
event source mapping, not retried for a day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lwm_core.connections import AWAY, OFFLINE, ONLINE
from lwm_core.observability import logger

PRESENCE = "presence"  # the server message type (docs/websocket.md)


def _strings(image: Mapping[str, Any] | None, name: str) -> set[str]:
    value = (image or {}).get(name) or {}
    return set(value.get("SS") or ())


def status_of(image: Mapping[str, Any] | None) -> str:
    """A ``USER#`` item's presence: online with a device not away, away if all are, else
    offline (``lwm_core.connections`` reads it the same way)."""
    devices = _strings(image, "devices")
    if devices - _strings(image, "away"):
        return ONLINE
    return AWAY if devices else OFFLINE


def changes(records: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Users who came online or went offline in these records, with their new presence.

    Several records of one user fold into one change (its first status before, its last
    after); a change between online and away, or none, is left out.
    """
    before: dict[str, str] = {}
    after: dict[str, str] = {}
    for record in records:
        change = record.get("dynamodb") or {}
        pk = str(((change.get("Keys") or {}).get("pk") or {}).get("S", ""))
        if not pk.startswith("USER#"):
            continue
        user_id = pk.removeprefix("USER#")
        before.setdefault(user_id, status_of(change.get("OldImage")))
        after[user_id] = status_of(change.get("NewImage"))  # none on REMOVE: offline
    return {
        user: now
        for user, now in after.items()
        if now != before[user] and OFFLINE in (now, before[user])
    }


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (the connections table's stream, ``USER#`` items)."""
    from functions.chat import logic
    from functions.chat import service as svc
    from lwm_core.push import sandbox_pusher

    pusher = sandbox_pusher()
    for user_id, status in changes(event.get("Records") or []).items():
        contacts = logic.direct_contacts(svc.deps(), user_id)
        frame = {"type": PRESENCE, "users": {user_id: status}}
        pusher.to_users(contacts, frame)
        logger.info("presence", extra={"user_id": user_id, "status": status})
    # Nothing to retry: a push that failed is news nobody needs later.
    return {"batchItemFailures": []}
