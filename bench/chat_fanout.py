"""Chat fan-out: N members of one group on the local stack, one message to all of them.

The platform runs in a child process (``LocalPlatform`` on free ports, a throwaway
PostgreSQL cluster), so that the N ``websockets`` clients here do not share an
interpreter lock with the gateway. For each N (default 10, 100, 500):

* N users get access tokens signed by the platform's own signing key (KMS), the
  claims the users service issues -- registering 500 accounts would measure
  argon2, not chat -- and one of them creates a group of all N over REST;
* every member connects a socket (the authorizer and $connect run for each);
* latency (after a warm-up, and once the stream work of connecting and warming
  up is done): ``--messages``
  sends, one at a time, from rotating members through
  ``sendMessage``; for each, the time from the send to the arrival of
  ``message.new`` at every other member (client clocks: one process; the
  clients wait on events, not by polling, so that they take no CPU from the
  platform);
* throughput: ``--burst`` sends from 10 members at once, as fast as the gateway
  takes them; messages per second = sends / (first send .. last delivery);
* AWS calls per send: the chat-socket handler itself, run in this process with
  its deployed environment against the same endpoints and sockets, for
  ``--counted`` sends, every botocore call counted with a ``before-call`` event
  hook on every client (boto3's and PynamoDB's), and every ``PostToConnection``
  the pusher sends itself (``lwm_core.push.SignedPoster``: not a botocore
  client, so it is counted where it is sent). The figure should
  be a small constant plus one post per recipient connection.

Targets: p99 <= 50 ms at N = 100; calls per send = constant + recipients.

    python bench/chat_fanout.py [--sizes 10,100,500] [--messages 100] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "core"), str(ROOT / "bench")]

import httpx  # noqa: E402
import websockets  # noqa: E402
from _common import emit_json, percentile, print_table  # noqa: E402
from websockets.asyncio.client import ClientConnection  # noqa: E402

TARGET_P99_MS = 50.0
TARGET_N = 100
BURST_SENDERS = 10
WARM_SANDBOXES = 3  # the chat-socket function's local_workers
CONNECT_BATCH = 50
# Before the timed sends, the stack finishes what connecting and warming up set off
# on the streams: the presence of N members who just came online (one look-up of
# direct contacts each) and the group's first post making the events relay move
# every member's place in their conversation list (once a minute per big group).
# moto serializes that work behind one lock, where DynamoDB would not.


def _settle_s(n: int) -> float:
    return 1.5 + n / 200


TIMEOUT_S = 30.0
# moto accepts any credentials; these name the benchmark in its logs.
LOCAL_KEYS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}


# --- the platform, in a process of its own -----------------------------------------------


def _serve(pipe: Any, root: str) -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from local_runtime import LocalPlatform, Ports

    with LocalPlatform(ports=Ports.ephemeral(), pg_dir=Path(root) / "pg") as local:
        pipe.send(local.endpoints.as_json())
        pipe.recv()  # until told to stop


# --- tokens and the group ------------------------------------------------------------------


def _tokens(endpoints: dict[str, Any], user_ids: list[str]) -> dict[str, str]:
    """Access tokens as the users service issues them, signed by the same KMS key."""
    import boto3

    from lwm_core.tokens import KmsKeyRing

    kms = boto3.client(
        "kms",
        endpoint_url=endpoints["aws"],
        region_name=endpoints["region"],
        **LOCAL_KEYS,
    )
    ring = KmsKeyRing([endpoints["resources"]["signing_keys"]["access-token"]], kms)
    now = int(time.time())
    tokens = {}
    for user_id in user_ids:
        claims = {
            "iss": endpoints["issuer"],
            "aud": endpoints["audience"],
            "sub": user_id,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "jti": uuid.uuid4().hex,
            "token_use": "access",
            "roles": ["mentee"],
            "scope": "mentee",
            "active_role": "mentee",
            "email_verified": True,
        }
        tokens[user_id] = ring.sign(claims)
    return tokens


def _group(endpoints: dict[str, Any], tokens: dict[str, str]) -> str:
    owner, *others = tokens
    created = httpx.post(
        f"{endpoints['http_api']}/conversations/groups",
        json={"title": f"Cohort of {len(tokens)}", "member_ids": others},
        headers={"authorization": f"Bearer {tokens[owner]}"},
        timeout=60,
    )
    created.raise_for_status()
    conversation: str = created.json()["id"]
    return conversation


# --- clients -------------------------------------------------------------------------------


class Arrivals:
    """Who has which message: waiters wake when the last member gets it (no polling)."""

    def __init__(self) -> None:
        self.missing: dict[str, int] = {}  # client message id -> members still to get it
        self.done: dict[str, asyncio.Event] = {}

    def expect(self, cid: str, count: int) -> None:
        self.missing[cid] = count
        self.done[cid] = asyncio.Event()

    def arrived(self, cid: str) -> None:
        left = self.missing.get(cid)
        if left is None:
            return
        self.missing[cid] = left - 1
        if left == 1:
            self.done[cid].set()


ARRIVALS = Arrivals()


@dataclass
class Member:
    user_id: str
    ws: ClientConnection
    arrivals: dict[str, float] = field(default_factory=dict)  # client message id -> time
    task: asyncio.Task[None] | None = None

    async def listen(self) -> None:
        async for frame in self.ws:
            now = time.perf_counter()
            message = json.loads(frame)
            if message.get("type") in ("message.new", "message.sent"):
                cid = message["message"].get("client_message_id")
                if cid and cid not in self.arrivals:
                    self.arrivals[cid] = now
                    ARRIVALS.arrived(cid)


async def _connect(url: str, tokens: dict[str, str]) -> list[Member]:
    members: list[Member] = []
    items = list(tokens.items())
    for start in range(0, len(items), CONNECT_BATCH):
        batch = items[start : start + CONNECT_BATCH]
        sockets = await asyncio.gather(
            *(websockets.connect(f"{url}/?token={t}", max_size=None) for _, t in batch)
        )
        members += [Member(u, ws) for (u, _), ws in zip(batch, sockets, strict=True)]
    for m in members:
        m.task = asyncio.create_task(m.listen())
    return members


async def _send(sender: Member, conversation: str, text: str, members: int) -> tuple[str, float]:
    cid = f"bench-{uuid.uuid4().hex[:16]}"
    ARRIVALS.expect(cid, members)  # every member: the receivers and the sender's ack
    frame = {
        "action": "sendMessage",
        "conversation_id": conversation,
        "client_message_id": cid,
        "text": text,
    }
    sent_at = time.perf_counter()
    await sender.ws.send(json.dumps(frame))
    return cid, sent_at


async def _delivered(members: list[Member], cid: str, sender: Member) -> float:
    """When the last receiver got ``cid`` (waits for it)."""
    receivers = [m for m in members if m is not sender]
    try:
        await asyncio.wait_for(ARRIVALS.done[cid].wait(), TIMEOUT_S)
    except TimeoutError:
        missing = sum(cid not in m.arrivals for m in receivers)
        raise RuntimeError(f"{missing} of {len(receivers)} members never got {cid}") from None
    return max(m.arrivals[cid] for m in receivers)


async def _latency(members: list[Member], conversation: str, count: int) -> list[float]:
    samples: list[float] = []
    for i in range(count):
        sender = members[i % len(members)]
        cid, sent_at = await _send(sender, conversation, f"latency {i}", len(members))
        await _delivered(members, cid, sender)
        samples += [(m.arrivals[cid] - sent_at) * 1000 for m in members if m is not sender]
    return samples


async def _throughput(members: list[Member], conversation: str, count: int) -> float:
    senders = members[: min(BURST_SENDERS, len(members))]
    started = time.perf_counter()
    sent = await asyncio.gather(
        *(
            _send(senders[i % len(senders)], conversation, f"burst {i}", len(members))
            for i in range(count)
        )
    )
    last = 0.0
    for i, (cid, _) in enumerate(sent):
        last = max(last, await _delivered(members, cid, senders[i % len(senders)]))
    return count / (last - started)


# --- AWS calls per send (the handler in this process) ------------------------------------


class CallCounter:
    """Counts every botocore API call in this process (a ``before-call`` hook per client)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.installed = False

    def install(self) -> None:
        if self.installed:
            return
        self.installed = True
        import botocore.session

        original = botocore.session.Session.create_client
        counter = self

        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            client = original(session, *args, **kwargs)
            client.meta.events.register("before-call.*.*", counter._count)
            return client

        botocore.session.Session.create_client = create_client  # type: ignore[method-assign]

        from lwm_core.push import SignedPoster

        post_many = SignedPoster.post_many

        def counted(poster: SignedPoster, ids: Sequence[str], frame: bytes) -> list[Any]:
            counter.calls["apigatewaymanagementapi:PostToConnection"] += len(ids)
            return post_many(poster, ids, frame)

        SignedPoster.post_many = counted  # type: ignore[method-assign]

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[f"{model.service_model.service_name}:{model.name}"] += 1


COUNTER = CallCounter()


def _handler_environment(endpoints: dict[str, Any]) -> dict[str, str]:
    from blueprint.environment import environment_for
    from blueprint.platform import CHAT_SOCKET, PLATFORM
    from local_runtime.aws import Provisioned
    from local_runtime.resolver import LocalResolver

    resolver = LocalResolver(
        Provisioned(**endpoints["resources"]),
        aws_endpoint=endpoints["aws"],
        http_api=endpoints["http_api"],
        database_url=endpoints["database_url"],
        websocket_management=endpoints["websocket"].replace("ws://", "http://"),
    )
    env = environment_for(PLATFORM, CHAT_SOCKET, resolver)
    env.update({key.upper(): value for key, value in LOCAL_KEYS.items()})
    env.update(AWS_REGION=endpoints["region"], AWS_DEFAULT_REGION=endpoints["region"])
    return env


async def _count_calls(
    endpoints: dict[str, Any], members: list[Member], conversation: str, count: int
) -> tuple[float, float, dict[str, float]]:
    """AWS calls per send, posts per send, and calls per send by operation."""
    os.environ.update(_handler_environment(endpoints))
    counter = COUNTER
    counter.install()
    from functions.chat import socket

    sender = members[0]
    connection_id = await _connection_id(endpoints, sender.user_id)

    def invoke(i: int) -> None:
        frame = {
            "action": "sendMessage",
            "conversation_id": conversation,
            "client_message_id": f"counted-{uuid.uuid4().hex[:12]}",
            "text": f"counted {i}",
        }
        event = {
            "requestContext": {
                "routeKey": "sendMessage",
                "eventType": "MESSAGE",
                "connectionId": connection_id,
                "authorizer": {"principalId": sender.user_id, "userId": sender.user_id},
            },
            "body": json.dumps(frame),
        }
        socket.handler(event, _Context())

    await asyncio.to_thread(invoke, -1)  # cold: settings, clients, bindings
    counter.calls.clear()
    took = []
    for i in range(count):
        t0 = time.perf_counter()
        await asyncio.to_thread(invoke, i)
        took.append((time.perf_counter() - t0) * 1000)
    print(f"  N={len(members)}: in-process sendMessage handler {sorted(took)} ms")
    total = sum(counter.calls.values())
    posts = counter.calls["apigatewaymanagementapi:PostToConnection"]
    by_op = {op: n / count for op, n in sorted(counter.calls.items())}
    return total / count, posts / count, by_op


async def _connection_id(endpoints: dict[str, Any], user_id: str) -> str:
    def read() -> str:
        import boto3

        table = boto3.resource(
            "dynamodb",
            endpoint_url=endpoints["aws"],
            region_name=endpoints["region"],
            **LOCAL_KEYS,
        ).Table(endpoints["resources"]["tables"]["connections"])
        item = table.get_item(Key={"pk": f"USER#{user_id}"})["Item"]
        return str(sorted(item["devices"])[0])

    return await asyncio.to_thread(read)


class _Context:
    function_name = "lwm-bench-chat-socket"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:lwm-bench-chat-socket"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


# --- one size ------------------------------------------------------------------------------


async def _measure(endpoints: dict[str, Any], n: int, args: argparse.Namespace) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    tokens = await asyncio.to_thread(_tokens, endpoints, [f"bench{run}u{i:04d}" for i in range(n)])
    conversation = await asyncio.to_thread(_group, endpoints, tokens)
    started = time.perf_counter()
    members = await _connect(endpoints["websocket"], tokens)
    connect_s = time.perf_counter() - started
    try:
        # warm every chat-socket sandbox (a burst spreads over them), then the path
        await _throughput(members, conversation, 2 * WARM_SANDBOXES)
        await _latency(members, conversation, 3)
        await asyncio.sleep(_settle_s(n))
        samples = await _latency(members, conversation, args.messages)
        rate = await _throughput(members, conversation, args.burst)
        calls, posts, by_op = await _count_calls(endpoints, members, conversation, args.counted)
    finally:
        for m in members:
            await m.ws.close()
            if m.task:
                m.task.cancel()
    return {
        "n": n,
        "connect_s": connect_s,
        "p50_ms": percentile(samples, 50),
        "p99_ms": percentile(samples, 99),
        "max_ms": max(samples),
        "msgs_per_s": rate,
        "aws_calls_per_send": calls,
        "posts_per_send": posts,
        "by_operation": by_op,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10,100,500", help="group sizes, comma-separated")
    parser.add_argument("--messages", type=int, default=100, help="sends timed one at a time")
    parser.add_argument("--burst", type=int, default=30, help="sends in the throughput burst")
    parser.add_argument("--counted", type=int, default=5, help="sends whose AWS calls are counted")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON last")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    root = tempfile.mkdtemp(prefix="lwm-bench-")
    os.chmod(root, 0o755)  # noqa: S103 (the cluster's folder must be reachable by postgres)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child, root), daemon=True)
    server.start()
    results: list[dict[str, Any]] = []
    try:
        if not parent.poll(120):
            raise RuntimeError("the local platform did not start")
        endpoints = parent.recv()
        with asyncio.Runner() as runner:
            for n in sizes:
                results.append(runner.run(_measure(endpoints, n, args)))
    finally:
        parent.send("stop")
        server.join(60)
        if server.is_alive():
            server.terminate()
        shutil.rmtree(root, ignore_errors=True)

    print("chat fan-out over the local WebSocket API (one group, all members connected):")
    rows: list[list[object]] = [
        [
            r["n"],
            r["connect_s"],
            r["p50_ms"],
            r["p99_ms"],
            r["max_ms"],
            r["msgs_per_s"],
            r["aws_calls_per_send"],
            r["posts_per_send"],
            r["aws_calls_per_send"] - r["posts_per_send"],
        ]
        for r in results
    ]
    print_table(
        ["N", "connect s", "p50 ms", "p99 ms", "max ms", "msgs/s", "AWS calls/send",
         "posts/send", "other calls"],
        rows,
    )  # fmt: skip
    print("\nAWS calls per send by operation (largest N):")
    last: Callable[[], dict[str, float]] = lambda: results[-1]["by_operation"]  # noqa: E731
    print_table(["operation", "calls/send"], [[k, v] for k, v in last().items()])
    verdict = [r for r in results if r["n"] == TARGET_N]
    if verdict:
        ok = verdict[0]["p99_ms"] <= TARGET_P99_MS
        verdict_text = "met" if ok else "NOT met"
        print(f"\ntarget p99 <= {TARGET_P99_MS:.0f} ms at N = {TARGET_N}: {verdict_text}")
    if args.json:
        emit_json(
            {
                "p99_ms": {str(r["n"]): round(r["p99_ms"], 2) for r in results},
                "msgs_per_s": {str(r["n"]): round(r["msgs_per_s"], 1) for r in results},
                "aws_calls_per_send": {str(r["n"]): r["aws_calls_per_send"] for r in results},
            }
        )


if __name__ == "__main__":
    main()
