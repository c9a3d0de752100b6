"""One paho-mqtt client for the [auth.http] end-to-end tests (nanomq-bin/tests/e2e_auth_http.rs):
connects with a user name and password, subscribes to each --subscribe filter (one SUBSCRIBE
each, in order), publishes each --publish topic at QoS 1, and prints a JSON line per event
as it happens (`{"event": "connack" | "suback" | "puback", ...}`), then the summary:
`{"connack": RC, "subacks": {FILTER: [RC]}, "pubacks": {TOPIC: RC}, "events": [...]}`, each
event with its wall-clock time `at` (so a test can tell which of two clients was answered
first). A refused CONNECT is an observation (its reason code), not a failure.
"""

import json
import threading
import time

import paho.mqtt.client as mqtt

from common import STEP_TIMEOUT, arguments, emit, fail, protocol_of


def extra(parser):
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--username")
    parser.add_argument("--password")
    parser.add_argument("--subscribe", action="append", default=[])
    parser.add_argument("--publish", action="append", default=[])


def main():
    args = arguments("a client of the HTTP-authenticated broker", extra)
    protocol = protocol_of(args.protocol)
    kwargs = {"client_id": args.client_id, "protocol": protocol}
    if protocol != mqtt.MQTTv5:
        kwargs["clean_session"] = True
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
    if args.username is not None:
        client.username_pw_set(args.username, args.password)
    cond = threading.Condition()
    state = {"connack": None, "subacks": {}, "pubacks": {}, "events": []}
    mids = {}

    def event(kind, **fields):
        record = {"event": kind, "at": time.time(), **fields}
        with cond:
            state["events"].append(record)
        print(json.dumps(record), flush=True)

    def on_connect(_c, _u, _flags, reason_code, _props):
        with cond:
            state["connack"] = reason_code.value
            cond.notify_all()
        event("connack", reason_code=reason_code.value)

    def on_subscribe(_c, _u, mid, reason_codes, _props):
        codes = [rc.value for rc in reason_codes]
        with cond:
            state["subacks"][mids[mid]] = codes
            cond.notify_all()
        event("suback", filter=mids[mid], codes=codes)

    def on_publish(_c, _u, mid, reason_code, _props):
        with cond:
            state["pubacks"][mids[mid]] = reason_code.value
            cond.notify_all()
        event("puback", topic=mids[mid], reason_code=reason_code.value)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_publish = on_publish

    def wait(predicate, what):
        with cond:
            if not cond.wait_for(predicate, STEP_TIMEOUT):
                fail(f"timed out waiting for {what}")

    client.connect(args.host, args.port, 30)
    client.loop_start()
    wait(lambda: state["connack"] is not None, "CONNACK")
    if state["connack"] != 0:
        client.loop_stop()
        emit(state)
        return
    for topic_filter in args.subscribe:
        with cond:
            result, mid = client.subscribe(topic_filter, qos=1)
            if result != mqtt.MQTT_ERR_SUCCESS:
                fail(f"subscribe failed: {result}")
            mids[mid] = topic_filter
        wait(lambda f=topic_filter: f in state["subacks"], f"SUBACK for {topic_filter}")
    for topic in args.publish:
        with cond:
            info = client.publish(topic, b"hello", qos=1)
            mids[info.mid] = topic
        wait(lambda t=topic: t in state["pubacks"], f"PUBACK for {topic}")
    client.disconnect()
    client.loop_stop()
    emit(state)


if __name__ == "__main__":
    main()
