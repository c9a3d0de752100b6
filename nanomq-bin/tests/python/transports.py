"""paho-mqtt over the broker's TLS and WebSocket listeners.

usage:
  transports.py pubsub HOST PORT --protocol {311,5} [--transport {tcp,websockets}]
                [--ws-path PATH] [--cafile CA] [--cert CERT --key KEY] [--tls-version {1.2,1.3}]
  transports.py offline HOST TCP_PORT WS_PORT --protocol {311,5} [--count N] [--ws-path PATH]

pubsub: one client connects (over TCP or WebSocket, with TLS when --cafile is given),
subscribes to its own topics at QoS 0, 1 and 2, publishes one message at each QoS, and waits
for the three. Prints {"connected", "error", "granted", "received": [[topic, payload, qos]...],
"tls_version"}; a refused connection is reported as "connected": false, not as a failure.

offline: the seed scenario across transports. A subscriber with a persistent session
subscribes at QoS 1 over TCP and disconnects; a publisher sends N QoS 1 messages over TCP while
it is away; the subscriber comes back over WebSocket (Clean Start 0) and records what arrives,
then listens one more second for duplicates. Prints {"session_present", "numbers": [n...],
"dups"}.
"""

import argparse
import json
import ssl
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

STEP_TIMEOUT = 20.0


def fail(message):
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


class Client:
    """A paho client on its own network thread, with what it saw behind a condition."""

    def __init__(self, client_id, protocol, transport="tcp", ws_path="/mqtt", clean_session=True):
        kwargs = {"client_id": client_id, "protocol": protocol, "transport": transport}
        if protocol != mqtt.MQTTv5:
            kwargs["clean_session"] = clean_session
        self.protocol = protocol
        self.paho = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
        if transport == "websockets":
            self.paho.ws_set_options(path=ws_path)
        self.cond = threading.Condition()
        self.connack = None
        self.subacks = {}
        self.disconnected = False
        self.messages = []
        self.paho.on_connect = self._on_connect
        self.paho.on_subscribe = self._on_subscribe
        self.paho.on_disconnect = self._on_disconnect
        self.paho.on_message = self._on_message

    def _on_connect(self, _client, _userdata, flags, reason_code, _props):
        with self.cond:
            self.connack = {
                "session_present": bool(flags.session_present),
                "reason_code": reason_code.value,
            }
            self.cond.notify_all()

    def _on_subscribe(self, _client, _userdata, mid, reason_codes, _props):
        with self.cond:
            self.subacks[mid] = [rc.value for rc in reason_codes]
            self.cond.notify_all()

    def _on_disconnect(self, _client, _userdata, _flags, _reason_code, _props):
        with self.cond:
            self.disconnected = True
            self.cond.notify_all()

    def _on_message(self, _client, _userdata, message):
        with self.cond:
            self.messages.append(message)
            self.cond.notify_all()

    def wait_for(self, predicate, timeout=STEP_TIMEOUT):
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def connect(self, host, port, clean_start=True, props=None):
        """Connects and waits for CONNACK; returns an error message, or None on success."""
        try:
            if self.protocol == mqtt.MQTTv5:
                self.paho.connect(host, port, 30, clean_start=clean_start, properties=props)
            else:
                self.paho.connect(host, port, 30)
        except (OSError, ssl.SSLError) as e:
            return f"connect: {e!r}"
        self.paho.loop_start()
        if not self.wait_for(lambda: self.connack is not None or self.disconnected):
            return "no CONNACK"
        if self.connack is None:
            return "closed before CONNACK"
        if self.connack["reason_code"] != 0:
            return f"refused: {self.connack}"
        return None

    def subscribe(self, subscriptions):
        result, mid = self.paho.subscribe(subscriptions)
        if result != mqtt.MQTT_ERR_SUCCESS or not self.wait_for(lambda: mid in self.subacks):
            fail(f"no SUBACK for {subscriptions}")
        return self.subacks[mid]

    def disconnect(self):
        self.paho.disconnect()
        self.wait_for(lambda: self.disconnected)
        self.paho.loop_stop()


def protocol_of(name):
    return mqtt.MQTTv5 if name == "5" else mqtt.MQTTv311


def pubsub(args):
    protocol = protocol_of(args.protocol)
    client_id = f"paho-{args.transport}-{'tls' if args.cafile else 'plain'}-v{args.protocol}"
    client = Client(client_id, protocol, args.transport, args.ws_path)
    if args.cafile:
        context = ssl.create_default_context(cafile=args.cafile)
        if args.cert:
            context.load_cert_chain(args.cert, args.key)
        if args.tls_version == "1.2":
            context.maximum_version = ssl.TLSVersion.TLSv1_2
        elif args.tls_version == "1.3":
            context.minimum_version = ssl.TLSVersion.TLSv1_3
        client.paho.tls_set_context(context)
    error = client.connect(args.host, args.port)
    if error is not None:
        print(json.dumps({"connected": False, "error": error}), flush=True)
        return
    tls_version = None
    sock = client.paho.socket()
    if isinstance(sock, ssl.SSLSocket):
        tls_version = sock.version()
    elif sock is not None and hasattr(sock, "_socket") and isinstance(sock._socket, ssl.SSLSocket):
        tls_version = sock._socket.version()
    prefix = f"transports/{client_id}"
    granted = client.subscribe([(f"{prefix}/q{qos}", qos) for qos in (0, 1, 2)])
    for qos in (0, 1, 2):
        client.paho.publish(f"{prefix}/q{qos}", f"hello at QoS {qos}", qos=qos)
    client.wait_for(lambda: len(client.messages) >= 3)
    received = [[m.topic, m.payload.decode(), m.qos] for m in client.messages]
    client.disconnect()
    print(
        json.dumps(
            {
                "connected": True,
                "error": None,
                "granted": granted,
                "received": received,
                "tls_version": tls_version,
            }
        ),
        flush=True,
    )


def offline(args):
    protocol = protocol_of(args.protocol)
    v5 = protocol == mqtt.MQTTv5
    client_id = f"offline-tcp-to-ws-v{args.protocol}"
    topic = f"offline/v{args.protocol}/data"
    session = None
    if v5:
        session = Properties(PacketTypes.CONNECT)
        session.SessionExpiryInterval = 3600

    # 1. Subscribe over TCP with a persistent session, then leave.
    if not v5:
        clean = Client(client_id, protocol, clean_session=True)
        if clean.connect(args.host, args.tcp_port):
            fail("the clean first connection failed")
        clean.disconnect()
    first = Client(client_id, protocol, clean_session=False)
    error = first.connect(args.host, args.tcp_port, clean_start=True, props=session)
    if error:
        fail(f"subscriber over TCP: {error}")
    if first.subscribe([(topic, 1)]) != [1]:
        fail("QoS 1 not granted")
    first.disconnect()

    # 2. Publish while it is away.
    publisher = Client(f"offline-publisher-v{args.protocol}", protocol)
    if publisher.connect(args.host, args.tcp_port):
        fail("publisher over TCP failed to connect")
    infos = [publisher.paho.publish(topic, f"{n:05d}", qos=1) for n in range(args.count)]
    deadline = time.monotonic() + 3 * STEP_TIMEOUT
    for info in infos:
        info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        if not info.is_published():
            fail(f"publish {info.mid} not acknowledged")
    publisher.disconnect()

    # 3. Come back over WebSocket.
    back = Client(client_id, protocol, "websockets", args.ws_path, clean_session=False)
    error = back.connect(args.host, args.ws_port, clean_start=False, props=session)
    if error:
        fail(f"subscriber over WebSocket: {error}")
    back.wait_for(lambda: len(back.messages) >= args.count, timeout=60.0)
    time.sleep(1.0)
    with back.cond:
        numbers = [int(m.payload) for m in back.messages]
        dups = sum(1 for m in back.messages if m.dup)
    session_present = back.connack["session_present"]
    back.disconnect()
    print(
        json.dumps({"session_present": session_present, "numbers": numbers, "dups": dups}),
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("pubsub")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--protocol", choices=["311", "5"], required=True)
    p.add_argument("--transport", choices=["tcp", "websockets"], default="tcp")
    p.add_argument("--ws-path", default="/mqtt")
    p.add_argument("--cafile")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--tls-version", choices=["1.2", "1.3"])
    o = commands.add_parser("offline")
    o.add_argument("host")
    o.add_argument("tcp_port", type=int)
    o.add_argument("ws_port", type=int)
    o.add_argument("--protocol", choices=["311", "5"], required=True)
    o.add_argument("--count", type=int, default=1000)
    o.add_argument("--ws-path", default="/mqtt")
    args = parser.parse_args()
    if args.command == "pubsub":
        pubsub(args)
    else:
        offline(args)


if __name__ == "__main__":
    main()
