"""Dormant connections from outside: clients that go quiet (and so dormant, as the broker's
`nanomq_connections_dormant` gauge shows) and are then woken by everything that can wake
them: a delivery, a burst, a takeover, a PINGREQ, the keep-alive deadline, and the client's
socket closing (its will published).

Prints one JSON summary for nanomq-bin/tests/e2e_dormant.rs to check.
"""

import base64
import socket
import struct
import time
import urllib.request

import paho.mqtt.client as mqtt

from common import Client, arguments, emit, fail, protocol_of, wait_published

# How long a quiet connection waits before it goes dormant is half a second; this is how
# long a wait for the gauge may take.
DORMANT_TIMEOUT = 10.0


def extra(parser):
    parser.add_argument("--api", required=True, help="the admin API's http://HOST:PORT")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)


ARGS = arguments("dormant connections woken every way", extra)
PROTOCOL = protocol_of(ARGS.protocol)
V5 = PROTOCOL == mqtt.MQTTv5
AUTH = "Basic " + base64.b64encode(f"{ARGS.user}:{ARGS.password}".encode()).decode()


def dormant_now():
    """The broker's count of dormant connections, from its Prometheus scrape."""
    request = urllib.request.Request(
        ARGS.api + "/api/v4/prometheus", headers={"Authorization": AUTH}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read().decode()
    for line in text.splitlines():
        if line.startswith("nanomq_connections_dormant "):
            return int(float(line.split()[1]))
    fail("the scrape has no nanomq_connections_dormant")


def wait_dormant(count):
    """Waits until at least `count` connections are dormant; the count then."""
    deadline = time.monotonic() + DORMANT_TIMEOUT
    while True:
        now = dormant_now()
        if now >= count:
            return now
        if time.monotonic() > deadline:
            fail(f"{now} dormant connections after {DORMANT_TIMEOUT} s, expected {count}")
        time.sleep(0.1)


def encode_length(n):
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(text):
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def connect_packet(client_id, keepalive, will=None):
    """A CONNECT of the script's protocol, clean, with `will` = (topic, payload) if given."""
    flags = 0x02
    if will is not None:
        flags |= 0x04 | 0x08  # will, at QoS 1
    header = utf8("MQTT") + bytes([5 if V5 else 4, flags]) + struct.pack("!H", keepalive)
    if V5:
        header += b"\x00"  # no properties
    payload = utf8(client_id)
    if will is not None:
        if V5:
            payload += b"\x00"  # no will properties
        payload += utf8(will[0]) + struct.pack("!H", len(will[1])) + will[1]
    body = header + payload
    return b"\x10" + encode_length(len(body)) + body


def read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_packet(sock):
    """One packet: (first byte, body), or None at the end of the stream."""
    first = read_exactly(sock, 1)
    if first is None:
        return None
    length, shift = 0, 0
    while True:
        byte = read_exactly(sock, 1)
        if byte is None:
            return None
        length |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            break
    body = read_exactly(sock, length)
    return None if body is None else (first[0], body)


def raw_client(client_id, keepalive, will=None):
    """A socket connected as `client_id`, its CONNACK read (and successful)."""
    sock = socket.create_connection((ARGS.host, ARGS.port), timeout=10)
    sock.sendall(connect_packet(client_id, keepalive, will))
    packet = read_packet(sock)
    if packet is None or packet[0] != 0x20 or packet[1][1] != 0:
        fail(f"CONNACK expected for {client_id}, got {packet}")
    return sock


summary = {}

# A subscriber and a publisher, both quiet: both go dormant.
sub = Client("dormant-sub", PROTOCOL)
sub.connect(ARGS.host, ARGS.port, keepalive=60)
sub.subscribe([("dormant/t", 1), ("dormant/will", 1)])
pub = Client("dormant-pub", PROTOCOL)
pub.connect(ARGS.host, ARGS.port, keepalive=60)
summary["dormant_at_start"] = wait_dormant(2)

# A delivery wakes the dormant subscriber (and the publisher's PUBLISH wakes it).
started = time.monotonic()
wait_published([pub.publish("dormant/t", b"wake-1", qos=1)])
got = sub.wait_messages(1)
summary["first_delivery_s"] = time.monotonic() - started
summary["first"] = [m["payload"] for m in got]

# Both go dormant again; then a burst, in order, none lost.
summary["dormant_after_first"] = wait_dormant(2)
infos = [pub.publish("dormant/t", f"burst-{i}".encode(), qos=1) for i in range(200)]
wait_published(infos)
got = sub.wait_messages(201)
summary["burst"] = [m["payload"] for m in got[1:]]

# A PINGREQ to a dormant connection is answered.
pinger = raw_client("dormant-pinger", 60)
summary["dormant_before_ping"] = wait_dormant(3)
pinger.settimeout(5)
pinger.sendall(b"\xc0\x00")
summary["ping"] = list(read_packet(pinger) or [])[:1]
pinger.close()

# The keep-alive deadline closes a dormant connection (1 s x 1.5) that says nothing.
started = time.monotonic()
silent = raw_client("dormant-silent", 1)
summary["dormant_before_keepalive"] = wait_dormant(3)
silent.settimeout(10)
closing = read_packet(silent)
summary["keepalive_closed_s"] = time.monotonic() - started
summary["keepalive_disconnect"] = None if closing is None else [closing[0], closing[1][:1].hex()]
if closing is not None:
    summary["keepalive_eof"] = read_packet(silent) is None
silent.close()

# A dormant client whose socket closes without DISCONNECT: its will is published.
willing = raw_client("dormant-willing", 60, will=("dormant/will", b"gone"))
wait_dormant(3)
willing.close()
got = sub.wait_messages(202)
summary["will"] = [m["payload"] for m in got[201:] if m["topic"] == "dormant/will"]

# A takeover of a dormant connection: the old one is told (MQTT 5: Session taken over)
# and closed, the new one connected.
taken = raw_client("dormant-taken", 60)
wait_dormant(3)
taken.settimeout(10)
newcomer = raw_client("dormant-taken", 60)
told = read_packet(taken)
summary["takeover_disconnect"] = None if told is None else [told[0], told[1][:1].hex()]
summary["takeover_eof"] = told is None or read_packet(taken) is None
taken.close()
newcomer.close()

# What is left goes dormant, and a normal disconnection of a dormant client works.
summary["dormant_at_end"] = wait_dormant(2)
sub.disconnect()
pub.disconnect()
emit(summary)
