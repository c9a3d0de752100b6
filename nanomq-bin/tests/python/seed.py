"""The seed scenario with paho-mqtt: a persistent session's offline queue, delivered under the
parameters of the connection that comes back.

usage: seed.py HOST PORT --protocol {311,5} [--count N] [--receive-maximum R]
               [--max-packet-size S] [--deliver-within T]

1. The subscriber connects with a persistent session (MQTT 5: Clean Start 0 after a clean
   first start, Session Expiry 3600, Receive Maximum 100, Maximum Packet Size 65536; 3.1.1:
   Clean Session 0), subscribes to seed/P/q1/# at QoS 1 and seed/P/q2/# at QoS 2, and
   disconnects normally.
2. A publisher sends N messages while it is away: even-numbered ones at QoS 1 to
   seed/P/q1/data, odd-numbered ones at QoS 2 to seed/P/q2/data. Payloads start with the
   message's number (five digits). With MQTT 5, every tenth message of each stream is padded
   to 400 bytes, larger than the Maximum Packet Size the subscriber comes back with.
3. The subscriber comes back (Clean Start 0; MQTT 5: Receive Maximum R, Maximum Packet Size
   S) and records every message with the time since CONNACK. With MQTT 5 it acknowledges
   manually, every few milliseconds, and records the most messages it held unacknowledged
   at once (which Receive Maximum bounds). It stops when every message that fits arrived or
   after T seconds, then listens one more second for duplicates and strays.

Prints {"protocol", "count", "oversize": [n...], "session_present", "messages":
[[n, qos, dup, seconds_after_connack, topic]...], "max_unacked", "disconnects",
"receive_maximum", "max_packet_size", "connack"}.
"""

import threading
import time

from common import (
    Client,
    PacketTypes,
    arguments,
    emit,
    fail,
    mqtt,
    properties,
    protocol_of,
    wait_published,
)

OVERSIZE_PAYLOAD = 400


def extra(parser):
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--receive-maximum", type=int, default=5)
    parser.add_argument("--max-packet-size", type=int, default=256)
    parser.add_argument("--deliver-within", type=float, default=30.0)


def main():
    args = arguments(__doc__, extra)
    protocol = protocol_of(args.protocol)
    v5 = protocol == mqtt.MQTTv5
    prefix = f"seed/v{args.protocol}"
    client_id = f"seed-subscriber-v{args.protocol}"

    # 1. Subscribe with a persistent session, then go away.
    if v5:
        first = Client(client_id, protocol)
        first.connect(
            args.host,
            args.port,
            clean_start=True,
            props=properties(
                PacketTypes.CONNECT,
                SessionExpiryInterval=3600,
                ReceiveMaximum=100,
                MaximumPacketSize=65536,
            ),
        )
    else:
        # A clean session first, to start from nothing; then the persistent one.
        first = Client(client_id, protocol, clean_session=True)
        first.connect(args.host, args.port)
        first.disconnect()
        first = Client(client_id, protocol, clean_session=False)
        first.connect(args.host, args.port)
    granted = first.subscribe([(f"{prefix}/q1/#", 1), (f"{prefix}/q2/#", 2)])
    if granted != [1, 2]:
        fail(f"SUBACK granted {granted}, expected [1, 2]")
    first.disconnect()

    # 2. Publish while it is away.
    publisher = Client(f"seed-publisher-v{args.protocol}", protocol)
    publisher.connect(args.host, args.port)
    oversize = []
    infos = []
    for n in range(args.count):
        qos = 1 if n % 2 == 0 else 2
        payload = f"{n:05d}"
        if v5 and (n // 2) % 10 == 9:
            payload = payload.ljust(OVERSIZE_PAYLOAD, "x")
            oversize.append(n)
        else:
            payload = f"{payload}-seed"
        infos.append(publisher.publish(f"{prefix}/q{qos}/data", payload, qos))
    wait_published(infos)
    publisher.disconnect()

    # 3. Come back with smaller limits.
    expected = args.count - len(oversize)
    back = Client(client_id, protocol, clean_session=False, manual_ack=v5)
    lock = threading.Lock()
    received = []
    unacked = []
    max_unacked = [0]

    def on_message(message):
        at = time.monotonic()
        with lock:
            number = int(message.payload[:5])
            received.append(
                [number, message.qos, bool(message.dup), at, message.topic]
            )
            if v5:
                unacked.append((message.mid, message.qos))
                max_unacked[0] = max(max_unacked[0], len(unacked))

    back.on_message = on_message
    if v5:
        connack = back.connect(
            args.host,
            args.port,
            clean_start=False,
            props=properties(
                PacketTypes.CONNECT,
                SessionExpiryInterval=3600,
                ReceiveMaximum=args.receive_maximum,
                MaximumPacketSize=args.max_packet_size,
            ),
        )
    else:
        connack = back.connect(args.host, args.port)
    connected_at = back.connected_at

    def distinct():
        return len({r[0] for r in received})

    deadline = connected_at + args.deliver_within
    linger_until = None
    while True:
        now = time.monotonic()
        with lock:
            batch = list(unacked)
            unacked.clear()
            done = distinct() >= expected
        for mid, qos in batch:
            back.paho.ack(mid, qos)
        if linger_until is None and (done or now >= deadline):
            linger_until = now + 1.0
        if linger_until is not None and now >= linger_until:
            break
        time.sleep(0.005)
    # Disconnections before ours: the broker closing the connection on us.
    unexpected = list(back.disconnects)
    back.disconnect()

    with lock:
        messages = [[n, q, d, round(at - connected_at, 4), t] for n, q, d, at, t in received]
    emit(
        {
            "protocol": args.protocol,
            "count": args.count,
            "oversize": oversize,
            "session_present": connack["session_present"],
            "connack": connack,
            "messages": messages,
            "max_unacked": max_unacked[0],
            "disconnects": [
                {"reason_code": d["reason_code"], "at": round(d["at"] - connected_at, 4)}
                for d in unexpected
            ],
            "receive_maximum": args.receive_maximum if v5 else None,
            "max_packet_size": args.max_packet_size if v5 else None,
        }
    )


if __name__ == "__main__":
    main()
