"""Helpers shared by the paho-mqtt end-to-end scripts.

Each script takes the broker's host and port, drives the broker with paho-mqtt 2.x clients
and prints one JSON object on standard output: what it observed. The Rust tests
(nanomq-bin/tests/e2e_paho.rs) parse it and make the assertions; a script fails on its own
(non-zero exit, message on standard error) only when it cannot get as far as observing,
e.g. a connection refused or an acknowledgement that never comes.
"""

import argparse
import json
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

# How long any single step (connect, subscribe, publish acknowledgement) may take.
STEP_TIMEOUT = 20.0


def fail(message):
    """Stops the script with `message` on standard error."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def arguments(description, extra=None):
    """The command line: HOST PORT --protocol {311,5}, plus what `extra(parser)` adds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--protocol", choices=["311", "5"], required=True)
    if extra is not None:
        extra(parser)
    return parser.parse_args()


def protocol_of(name):
    """paho's protocol constant for "311" or "5"."""
    return mqtt.MQTTv5 if name == "5" else mqtt.MQTTv311


def properties(packet_type, **values):
    """MQTT 5 properties of `packet_type` (PacketTypes.CONNECT, ...) with these values."""
    props = Properties(packet_type)
    for name, value in values.items():
        setattr(props, name, value)
    return props


def emit(summary):
    """Prints the summary the Rust test parses."""
    print(json.dumps(summary), flush=True)


class Client:
    """A paho client run by its own network thread, with events a script can wait for."""

    def __init__(self, client_id, protocol, clean_session=True, manual_ack=False):
        self.protocol = protocol
        kwargs = {"client_id": client_id, "protocol": protocol, "manual_ack": manual_ack}
        if protocol != mqtt.MQTTv5:
            kwargs["clean_session"] = clean_session
        self.paho = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
        self.cond = threading.Condition()
        self.connack = None
        self.connected_at = None
        self.subacks = {}
        self.disconnects = []
        self.messages = []
        self.on_message = None
        self.paho.on_connect = self._on_connect
        self.paho.on_subscribe = self._on_subscribe
        self.paho.on_disconnect = self._on_disconnect
        self.paho.on_message = self._on_message

    def _on_connect(self, _client, _userdata, flags, reason_code, props):
        with self.cond:
            self.connected_at = time.monotonic()
            self.connack = {
                "session_present": bool(flags.session_present),
                "reason_code": reason_code.value,
                "properties": props.json() if props is not None else {},
            }
            self.cond.notify_all()

    def _on_subscribe(self, _client, _userdata, mid, reason_codes, _props):
        with self.cond:
            self.subacks[mid] = [rc.value for rc in reason_codes]
            self.cond.notify_all()

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _props):
        with self.cond:
            self.disconnects.append(
                {"reason_code": reason_code.value, "at": time.monotonic()}
            )
            self.cond.notify_all()

    def _on_message(self, _client, _userdata, message):
        if self.on_message is not None:
            self.on_message(message)
            return
        with self.cond:
            self.messages.append(describe(message))
            self.cond.notify_all()

    def wait_for(self, predicate, what, timeout=STEP_TIMEOUT):
        """Waits until `predicate()` (called with the lock held) is true."""
        with self.cond:
            if not self.cond.wait_for(predicate, timeout):
                fail(f"timed out waiting for {what}")

    def connect(self, host, port, clean_start=True, props=None, keepalive=30):
        """Connects, starts the network thread and waits for CONNACK (which must succeed)."""
        self.connack = None
        if self.protocol == mqtt.MQTTv5:
            self.paho.connect(host, port, keepalive, clean_start=clean_start, properties=props)
        else:
            self.paho.connect(host, port, keepalive)
        self.paho.loop_start()
        self.wait_for(lambda: self.connack is not None, "CONNACK")
        if self.connack["reason_code"] != 0:
            fail(f"connection refused: {self.connack}")
        return self.connack

    def subscribe(self, subscriptions):
        """Subscribes to [(filter, qos)] and returns the granted codes from SUBACK."""
        result, mid = self.paho.subscribe(subscriptions)
        if result != mqtt.MQTT_ERR_SUCCESS:
            fail(f"subscribe failed: {result}")
        self.wait_for(lambda: mid in self.subacks, "SUBACK")
        return self.subacks[mid]

    def publish(self, topic, payload, qos, retain=False, props=None):
        """Publishes without waiting; returns paho's MQTTMessageInfo."""
        info = self.paho.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            fail(f"publish to {topic} failed: {info.rc}")
        return info

    def disconnect(self):
        """Disconnects normally (DISCONNECT) and stops the network thread."""
        count = len(self.disconnects)
        self.paho.disconnect()
        self.wait_for(lambda: len(self.disconnects) > count, "the disconnection")
        self.paho.loop_stop()

    def wait_messages(self, count, timeout=STEP_TIMEOUT):
        """Waits (up to `timeout`) until `count` messages were received; returns them."""
        with self.cond:
            self.cond.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)


def wait_published(infos, timeout=STEP_TIMEOUT * 3):
    """Waits until the broker acknowledged every publish in `infos`."""
    deadline = time.monotonic() + timeout
    for info in infos:
        info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        if not info.is_published():
            fail(f"publish (mid {info.mid}) not acknowledged within {timeout} s")


def describe(message):
    """A received message as JSON-friendly data, MQTT 5 properties included."""
    out = {
        "topic": message.topic,
        "payload": message.payload.decode("utf-8", "replace"),
        "qos": message.qos,
        "retain": bool(message.retain),
        "dup": bool(message.dup),
        "mid": message.mid,
    }
    props = getattr(message, "properties", None)
    if props is not None:
        found = {}
        for name in (
            "PayloadFormatIndicator",
            "MessageExpiryInterval",
            "ContentType",
            "ResponseTopic",
            "SubscriptionIdentifier",
            "TopicAlias",
        ):
            if hasattr(props, name):
                found[name] = getattr(props, name)
        if hasattr(props, "CorrelationData"):
            found["CorrelationData"] = props.CorrelationData.hex()
        if hasattr(props, "UserProperty"):
            found["UserProperty"] = [list(pair) for pair in props.UserProperty]
        out["properties"] = found
    return out
