"""paho-mqtt publishers flooding QoS 1 to one slow QoS 1 subscriber (MQTT 3.1.1 or 5.0).

usage: backpressure.py HOST PORT --protocol {311,5} [--publishers 311,5,...] [--count N]
                       [--size BYTES] [--slow N] [--slow-ms MS]

The subscriber (MQTT --protocol) subscribes to bp/+ at QoS 1. Its on_message sleeps
--slow-ms for each of its first --slow messages, so that the broker's in-flight window to it
and then its queue fill up while the publishers publish; after that it reads as fast as it
can. There is one publisher per entry of --publishers (its MQTT version), and each hands
paho --count numbered QoS 1 messages for bp/<its index> at once, without pacing (paho sends
them within its in-flight window as PUBACKs come back). Payloads are "<publisher>:<n>:"
padded with "x" to --size bytes.

Prints {"publishers": [{"protocol", "sent", "acked": [n...], "refused": [[n, reason]...]}],
"received": [[publisher, n, dup]...] in arrival order, "unparsed": [payload...]}. A message
is acked when its PUBACK came back with a reason code below 0x80 (3.1.1: any PUBACK).
"""

import threading
import time

from common import Client, arguments, emit, fail, protocol_of

# How long the whole exchange may take.
DEADLINE = 45.0
# The subscriber is done once nothing arrived for this long after the publishers finished.
QUIET = 2.0


def options(parser):
    parser.add_argument("--publishers", default="311,5,311,5")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--slow-ms", type=float, default=5.0)


class Acks:
    """The PUBACKs one publisher received: packet id -> reason code."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_mid = {}

    def on_publish(self, _client, _userdata, mid, reason_code, _props):
        with self.lock:
            self.by_mid[mid] = reason_code.value if reason_code is not None else 0


def main():
    args = arguments(__doc__, options)
    started = time.monotonic()
    deadline = started + DEADLINE

    received = []
    unparsed = []
    last_arrival = [time.monotonic()]
    seen = [0]

    def on_message(message):
        # paho's network thread: while it sleeps, the subscriber reads and acknowledges
        # nothing.
        if seen[0] < args.slow:
            time.sleep(args.slow_ms / 1000.0)
        seen[0] += 1
        payload = message.payload.decode("ascii", "replace")
        parts = payload.split(":")
        try:
            received.append([int(parts[0]), int(parts[1]), bool(message.dup)])
        except (IndexError, ValueError):
            unparsed.append(payload[:64])
        last_arrival[0] = time.monotonic()

    subscriber = Client("bp-sub", protocol_of(args.protocol))
    subscriber.on_message = on_message
    subscriber.connect(args.host, args.port)
    granted = subscriber.subscribe([("bp/+", 1)])
    if granted != [1]:
        fail(f"SUBACK {granted}")

    publishers = []
    for i, name in enumerate(args.publishers.split(",")):
        client = Client(f"bp-pub-{i}-{name}", protocol_of(name))
        acks = Acks()
        client.paho.on_publish = acks.on_publish
        client.connect(args.host, args.port)
        publishers.append((name, client, acks))

    infos = [[] for _ in publishers]
    for n in range(args.count):
        for i, (_, client, _) in enumerate(publishers):
            payload = f"{i}:{n}:".ljust(args.size, "x")
            infos[i].append(client.publish(f"bp/{i}", payload, 1))

    # Every PUBACK, or the deadline.
    for mine in infos:
        for info in mine:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
    # Then what is still on its way to the subscriber.
    while time.monotonic() < deadline:
        if time.monotonic() - last_arrival[0] >= QUIET:
            break
        time.sleep(0.1)

    summary = []
    for i, (name, client, acks) in enumerate(publishers):
        with acks.lock:
            by_mid = dict(acks.by_mid)
        acked, refused = [], []
        for n, info in enumerate(infos[i]):
            code = by_mid.get(info.mid)
            if code is None:
                continue
            if code < 0x80:
                acked.append(n)
            else:
                refused.append([n, code])
        summary.append(
            {"protocol": name, "sent": len(infos[i]), "acked": acked, "refused": refused}
        )
        client.disconnect()
    subscriber.disconnect()
    emit(
        {
            "publishers": summary,
            "received": list(received),
            "unparsed": unparsed,
            "seconds": round(time.monotonic() - started, 2),
        }
    )


if __name__ == "__main__":
    main()
