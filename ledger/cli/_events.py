"""`ledger wallet events TENANT`: the tenant's event feed, one line per event.

The feed is the journal read from a cursor (the tenant's first event by default) and then live; it sends
no marker when a reader has caught up. So without --follow the command stops once the feed has been quiet
for --idle seconds (default 2): the events durable when it began have come by then, unless the server
needs longer than that to read past a long stretch of other tenants' commits (a large journal read from
its start): none is lost either way, since the cursor it prints resumes after the last event shown. With
--follow it keeps streaming until Ctrl-C. Either way it ends by printing, on stderr, the cursor to resume
from (--after). An event may then come again, with its id, if it stopped among the events of one
operation; never not at all.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from collections.abc import Iterator
from typing import Final

from ledger.client import Client
from ledger.v1 import wallet_pb2
from ledger.wallet import EVENT_TYPES_ALL, parse_cursor

from ._ops import Commands, run_with_client
from ._parse import Money, format_time
from ._wallet import _tenant_argument, _tenant_money, document, shown

w = wallet_pb2
IDLE_SECONDS_DEFAULT: Final = 2.0
QUIET_SECONDS: Final = 0.5
"""After this long without another event, the events of the last operation are taken to have all come (a
record's events are sent together): the cursor printed on Ctrl-C is then the last event's, else the one
before it."""
EVENTS_QUEUED_MAX: Final = 1024
"""Events received and not yet printed; past it the stream waits (gRPC's flow control holds the server)."""
_WAKE_SECONDS: Final = 0.5
"""How often a reader waiting with --follow wakes, so that Ctrl-C is taken at once on every platform."""


def register(wallet_commands: Commands) -> None:
    events = wallet_commands.add_parser(
        "events",
        help="the tenant's events, one line each: those so far, or with --follow live until Ctrl-C",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _tenant_argument(events)
    start = events.add_mutually_exclusive_group()
    start.add_argument(
        "--after", type=_cursor, default="", metavar="CURSOR", help="resume after this cursor (as printed at the end)"
    )
    start.add_argument("--from-now", action="store_true", help="only events from now on (with --follow)")
    events.add_argument(
        "--types",
        action="append",
        type=_types,
        metavar="TYPE",
        help="only these event types, joined by ',' or repeated: payment.succeeded, wallet.topped_up, …",
    )
    events.add_argument("--follow", action="store_true", help="keep streaming new events until Ctrl-C")
    events.add_argument(
        "--idle",
        type=_seconds,
        default=IDLE_SECONDS_DEFAULT,
        metavar="SECONDS",
        help=f"without --follow: stop after this long without an event (default {IDLE_SECONDS_DEFAULT:g})",
    )
    events.set_defaults(run=_events)


def _cursor(text: str) -> str:
    if parse_cursor(text.strip()) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a cursor of the event feed (<seq>.<index>, e.g. 57.0)")
    return text.strip()


def _types(text: str) -> list[str]:
    found = [name.strip() for name in text.split(",") if name.strip()]
    for name in found:
        if name not in EVENT_TYPES_ALL:
            raise argparse.ArgumentTypeError(f"{name!r} is not an event type ({', '.join(sorted(EVENT_TYPES_ALL))})")
    return found


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to 3600")
    return value


def _events(args: argparse.Namespace) -> int:
    request = w.SubscribeEventsRequest(
        tenant=args.tenant, after=args.after, from_now=args.from_now,
        types=[name for names in args.types or () for name in names],
    )  # fmt: skip

    def work(client: Client) -> int:
        unit = _tenant_money(args, client)
        if isinstance(unit, int):
            return unit
        return _read(args, client, request, unit)

    return run_with_client(args, work, again="it resumes with --after the cursor it printed")


def _read(args: argparse.Namespace, client: Client, request: wallet_pb2.SubscribeEventsRequest, unit: Money) -> int:
    """Print the feed's events until it is quiet for --idle seconds (or, with --follow, until Ctrl-C), then
    the cursor to resume from."""
    prog = args.command_parser.prog
    received: queue.Queue[wallet_pb2.WalletEvent | BaseException | None] = queue.Queue(EVENTS_QUEUED_MAX)
    stopping = threading.Event()
    reader = threading.Thread(target=_receive, args=(client, request, received, stopping), daemon=True)
    count = 0
    resume = previous = request.after
    last_at = time.monotonic()
    ended = "caught up"
    reader.start()
    try:
        while True:
            try:
                item = received.get(timeout=_WAKE_SECONDS if args.follow else args.idle)
            except queue.Empty:
                if args.follow:
                    continue
                ended = f"caught up (no event for {args.idle:g} s)"
                break
            if item is None:
                ended = "the feed ended"
                break
            if isinstance(item, BaseException):
                raise item
            if item.cursor != resume:
                previous, resume = resume, item.cursor
            last_at = time.monotonic()
            count += 1
            _print(args, item, unit)
    except KeyboardInterrupt:
        ended = "stopped"
        if time.monotonic() - last_at < QUIET_SECONDS:
            resume = previous  # maybe among one operation's events: resume before it (they may come again)
    finally:
        stopping.set()
        client.close()  # cancels the stream the reader waits on
        reader.join(10)
    where = f"resume with --after {resume}" if resume else "no event yet to resume after"
    print(f"{prog}: {ended} after {count} event{'' if count == 1 else 's'}; {where}", file=sys.stderr)
    return 0


def _receive(
    client: Client,
    request: wallet_pb2.SubscribeEventsRequest,
    received: queue.Queue[wallet_pb2.WalletEvent | BaseException | None],
    stopping: threading.Event,
) -> None:
    """The stream's events into `received`, then None when it ends, or what it failed with."""
    try:
        for event in client.subscribe_events(request):
            if not _put(received, event, stopping):
                return
    except BaseException as exc:  # the reader raises it, unless it stopped the stream itself
        if not stopping.is_set():
            _put(received, exc, stopping)
        return
    _put(received, None, stopping)


def _put(
    received: queue.Queue[wallet_pb2.WalletEvent | BaseException | None],
    item: wallet_pb2.WalletEvent | BaseException | None,
    stopping: threading.Event,
) -> bool:
    while not stopping.is_set():
        try:
            received.put(item, timeout=_WAKE_SECONDS)
            return True
        except queue.Full:
            continue
    return False


def _print(args: argparse.Namespace, event: wallet_pb2.WalletEvent, unit: Money) -> None:
    data = json.loads(event.data_json) if event.data_json else {}
    if args.json:
        out = document(event)
        del out["data_json"]
        print(json.dumps({**out, "data": data}), flush=True)
        return
    print("  ".join(_fields(event, data, unit)), flush=True)


def _fields(event: wallet_pb2.WalletEvent, data: dict[str, object], unit: Money) -> Iterator[str]:
    yield event.id
    yield format_time(event.created_at.ToNanoseconds())
    yield event.type
    if event.amount:
        yield shown(event.amount, unit)
    if event.wallet_id:
        yield f"wallet {event.wallet_id}"
    if event.operation_id:
        yield f"operation {event.operation_id}"
    for name in ("order", "result"):
        if data.get(name):
            yield f"{name} {data[name]}"
