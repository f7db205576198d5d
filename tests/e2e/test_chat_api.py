"""Chat over REST end to end: real tokens, the local gateway, the chat function, DynamoDB."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.stack import Account, register

pytestmark = pytest.mark.stack


@pytest.fixture
def pair(api: httpx.Client, aws_endpoint: str) -> tuple[Account, Account]:
    mentee = register(api, aws_endpoint, prefix="chatmentee")
    mentor = register(api, aws_endpoint, roles=("mentor",), prefix="chatmentor")
    return mentee, mentor


def _connect(api: httpx.Client, mentee: Account, mentor: Account) -> str:
    sent = api.post(
        "/chat/requests",
        json={"mentor_id": mentor.id, "text": "Could you help me with <i>system design</i>?"},
        headers=mentee.auth,
    )
    assert sent.status_code == 201, sent.text
    inbox = api.get("/chat/requests", params={"box": "incoming"}, headers=mentor.auth)
    assert [r["id"] for r in inbox.json()["items"]] == [sent.json()["id"]]
    accepted = api.post(f"/chat/requests/{sent.json()['id']}/accept", headers=mentor.auth)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["message"]["text"] == "Could you help me with system design?"
    conversation: str = accepted.json()["conversation"]["id"]
    return conversation


def test_a_request_becomes_a_conversation_that_both_can_use(
    api: httpx.Client, pair: tuple[Account, Account]
) -> None:
    mentee, mentor = pair
    # Given an accepted request
    conversation = _connect(api, mentee, mentor)
    # When the mentor answers twice, the second time resending the same client id
    body = {"text": "Sure, Tuesday?", "client_message_id": f"c-{uuid.uuid4().hex[:8]}"}
    first = api.post(f"/conversations/{conversation}/messages", json=body, headers=mentor.auth)
    again = api.post(f"/conversations/{conversation}/messages", json=body, headers=mentor.auth)
    # Then one message was stored, and the resend says so
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    # And the mentee sees one unread message and catches up after the first message
    listed = api.get("/conversations", headers=mentee.auth).json()["items"]
    assert listed[0]["id"] == conversation and listed[0]["unread"] == 1
    history = api.get(f"/conversations/{conversation}/messages", headers=mentee.auth).json()
    oldest = history["items"][-1]["id"]
    after = api.get(
        f"/conversations/{conversation}/messages", params={"after": oldest}, headers=mentee.auth
    ).json()
    assert [m["text"] for m in after["items"]] == ["Sure, Tuesday?"]
    # When the mentee reads it / Then nothing is unread
    read = api.post(
        f"/conversations/{conversation}/read",
        json={"up_to_message_id": first.json()["id"]},
        headers=mentee.auth,
    )
    assert read.status_code == 200
    assert api.get(f"/conversations/{conversation}", headers=mentee.auth).json()["unread"] == 0


def test_outsiders_and_bad_input_are_refused(
    api: httpx.Client, aws_endpoint: str, pair: tuple[Account, Account]
) -> None:
    mentee, mentor = pair
    conversation = _connect(api, mentee, mentor)
    outsider = register(api, aws_endpoint, prefix="outsider")
    # An outsider cannot tell the conversation exists
    peek = api.get(f"/conversations/{conversation}/messages", headers=outsider.auth)
    assert peek.status_code == 404 and peek.json()["code"] == "conversation_not_found"
    # Without a token the gateway refuses; bad ids and bodies are 422
    assert api.get("/conversations").status_code == 401
    bad_id = api.get("/conversations/not%20an%20id", headers=mentee.auth)
    assert bad_id.status_code == 422
    typo = api.get("/conversations", params={"limt": 5}, headers=mentee.auth)
    assert typo.status_code == 422 and typo.json()["errors"][0]["loc"] == ["query", "limt"]
    empty = api.post(
        f"/conversations/{conversation}/messages", json={"text": "   "}, headers=mentee.auth
    )
    assert empty.status_code == 422 and empty.json()["code"] == "invalid_message"


def test_a_block_stops_the_conversation_both_ways(
    api: httpx.Client, pair: tuple[Account, Account]
) -> None:
    mentee, mentor = pair
    conversation = _connect(api, mentee, mentor)
    assert api.put(f"/chat/blocks/{mentee.id}", headers=mentor.auth).status_code == 204
    refused = api.post(
        f"/conversations/{conversation}/messages", json={"text": "hello?"}, headers=mentee.auth
    )
    assert refused.status_code == 403 and refused.json()["code"] == "blocked"
    assert api.delete(f"/chat/blocks/{mentee.id}", headers=mentor.auth).status_code == 204
    again = api.post(
        f"/conversations/{conversation}/messages", json={"text": "hello?"}, headers=mentee.auth
    )
    assert again.status_code == 201


def test_an_attachment_is_uploaded_to_storage_sent_and_downloaded_by_the_other_member(
    api: httpx.Client, aws_endpoint: str, pair: tuple[Account, Account]
) -> None:
    mentee, mentor = pair
    conversation = _connect(api, mentee, mentor)
    pdf = b"%PDF-1.4 a tiny CV\n" * 20
    # When the mentee asks for an upload form and posts the file to it
    form = api.post(
        f"/conversations/{conversation}/attachments",
        json={"content_type": "application/pdf", "size": len(pdf), "name": "cv.pdf"},
        headers=mentee.auth,
    )
    assert form.status_code == 201, form.text
    ticket = form.json()
    upload = httpx.post(
        ticket["upload"]["url"],
        data=ticket["upload"]["fields"],
        files={"file": ("cv.pdf", pdf, "application/pdf")},
    )
    assert upload.status_code in (200, 204), upload.text
    # Then a message may carry it, and the mentor downloads the same bytes
    sent = api.post(
        f"/conversations/{conversation}/messages",
        json={"text": "my CV", "attachments": [ticket["attachment"]]},
        headers=mentee.auth,
    )
    assert sent.status_code == 201, sent.text
    link = api.get(
        f"/conversations/{conversation}/attachments/{ticket['attachment_id']}",
        headers=mentor.auth,
    )
    assert link.status_code == 200, link.text
    assert httpx.get(link.json()["url"]).content == pdf
    # A message cannot claim a file that was never uploaded, or another size
    other = api.post(
        f"/conversations/{conversation}/attachments",
        json={"content_type": "application/pdf", "size": 10},
        headers=mentee.auth,
    ).json()
    claimed = api.post(
        f"/conversations/{conversation}/messages",
        json={"text": "ghost", "attachments": [other["attachment"]]},
        headers=mentee.auth,
    )
    assert claimed.status_code == 422 and claimed.json()["code"] == "invalid_attachment"
    wrong = dict(ticket["attachment"], size=len(pdf) + 1)
    lying = api.post(
        f"/conversations/{conversation}/messages",
        json={"text": "bigger", "attachments": [wrong]},
        headers=mentee.auth,
    )
    assert lying.status_code == 422 and lying.json()["code"] == "invalid_attachment"
    # Deleting the message deletes the file
    deleted = api.delete(
        f"/conversations/{conversation}/messages/{sent.json()['id']}", headers=mentee.auth
    )
    assert deleted.status_code == 200
    gone = api.get(
        f"/conversations/{conversation}/attachments/{ticket['attachment_id']}",
        headers=mentor.auth,
    )
    assert gone.status_code == 404 and gone.json()["code"] == "attachment_not_found"
