"""Coming online and going offline, read from the connections table's stream records."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from functions.chat.presence import changes, status_of


def _image(devices: Iterable[str] = (), away: Iterable[str] = ()) -> dict[str, Any]:
    image: dict[str, Any] = {"pk": {"S": "USER#ada"}}
    if devices:
        image["devices"] = {"SS": sorted(devices)}
    if away:
        image["away"] = {"SS": sorted(away)}
    return image


def _record(
    name: str, old: dict[str, Any] | None, new: dict[str, Any] | None, user: str = "ada"
) -> dict[str, Any]:
    change: dict[str, Any] = {"Keys": {"pk": {"S": f"USER#{user}"}}}
    if old is not None:
        change["OldImage"] = old
    if new is not None:
        change["NewImage"] = new
    return {"eventName": name, "dynamodb": change}


def test_status_is_read_like_the_connection_store_reads_it() -> None:
    assert status_of(None) == "offline"
    assert status_of(_image()) == "offline"
    assert status_of(_image({"c1"})) == "online"
    assert status_of(_image({"c1", "c2"}, {"c1"})) == "online"
    assert status_of(_image({"c1"}, {"c1"})) == "away"


def test_a_first_device_is_online_and_the_last_one_gone_is_offline() -> None:
    assert changes([_record("INSERT", None, _image({"c1"}))]) == {"ada": "online"}
    assert changes([_record("MODIFY", _image(), _image({"c1"}))]) == {"ada": "online"}
    assert changes([_record("MODIFY", _image({"c1"}), _image())]) == {"ada": "offline"}
    assert changes([_record("REMOVE", _image({"c1"}), None)]) == {"ada": "offline"}  # expired


def test_other_changes_are_not_news() -> None:
    second_device = _record("MODIFY", _image({"c1"}), _image({"c1", "c2"}))
    one_of_two_gone = _record("MODIFY", _image({"c1", "c2"}), _image({"c2"}))
    away = _record("MODIFY", _image({"c1"}), _image({"c1"}, {"c1"}))  # setPresence pushes it
    assert changes([second_device, one_of_two_gone, away]) == {}
    connection_item = {"eventName": "INSERT", "dynamodb": {"Keys": {"pk": {"S": "CONN#c1"}}}}
    assert changes([connection_item]) == {}


def test_a_users_records_in_one_batch_fold_into_one_change() -> None:
    reconnect = [
        _record("MODIFY", _image({"c1"}), _image()),  # offline ...
        _record("MODIFY", _image(), _image({"c2"})),  # ... and back within the batch
    ]
    assert changes(reconnect) == {}
    flapping_then_gone = [*reconnect, _record("MODIFY", _image({"c2"}), _image())]
    assert changes(flapping_then_gone) == {"ada": "offline"}
    two_users = [
        _record("INSERT", None, _image({"b1"}), user="ben"),
        _record("MODIFY", _image({"c1"}), _image()),
    ]
    assert changes(two_users) == {"ben": "online", "ada": "offline"}
