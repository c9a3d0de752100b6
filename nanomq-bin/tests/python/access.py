"""What one client may do, as paho-mqtt sees it: connects (with a user name and password if
given) and reports the CONNACK reason code; if it got in, subscribes to each filter in its
own SUBSCRIBE and publishes at QoS 1 to each topic, and reports the SUBACK and PUBACK reason
codes, and whether the connection was closed (with the DISCONNECT's reason code).

Usage: access.py HOST PORT --protocol {311,5} [--user U --password P]
                 [--subscribe F ...] [--publish T ...]
"""

import threading

import paho.mqtt.client as mqtt

from common import STEP_TIMEOUT, arguments, emit, fail, protocol_of


def extra(parser):
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--client-id", default="access-probe")
    parser.add_argument("--subscribe", nargs="*", default=[])
    parser.add_argument("--publish", nargs="*", default=[])


def main():
    args = arguments("Probe what a client may do", extra)
    protocol = protocol_of(args.protocol)
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=args.client_id, protocol=protocol
    )
    if args.user is not None:
        client.username_pw_set(args.user, args.password)
    cond = threading.Condition()
    seen = {"connack": None, "subacks": {}, "pubacks": {}, "disconnect": None}

    def on_connect(_c, _u, _flags, reason_code, _props):
        with cond:
            seen["connack"] = reason_code.value
            cond.notify_all()

    def on_subscribe(_c, _u, mid, reason_codes, _props):
        with cond:
            seen["subacks"][mid] = [rc.value for rc in reason_codes]
            cond.notify_all()

    def on_publish(_c, _u, mid, reason_code, _props):
        with cond:
            seen["pubacks"][mid] = reason_code.value
            cond.notify_all()

    def on_disconnect(_c, _u, _flags, reason_code, _props):
        with cond:
            seen["disconnect"] = reason_code.value
            cond.notify_all()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_publish = on_publish
    client.on_disconnect = on_disconnect
    client.connect(args.host, args.port, 30)
    client.loop_start()

    def wait(predicate, what):
        with cond:
            if not cond.wait_for(predicate, STEP_TIMEOUT):
                fail(f"timed out waiting for {what}")

    wait(lambda: seen["connack"] is not None or seen["disconnect"] is not None, "CONNACK")
    report = {"connack": seen["connack"], "suback": [], "puback": [], "disconnect": None}
    if seen["connack"] == 0:
        for topic_filter in args.subscribe:
            _, mid = client.subscribe(topic_filter, qos=1)
            wait(lambda: mid in seen["subacks"] or seen["disconnect"] is not None, "SUBACK")
            if mid not in seen["subacks"]:
                break
            report["suback"].extend(seen["subacks"][mid])
        for topic in args.publish:
            if seen["disconnect"] is not None:
                break
            info = client.publish(topic, b"probe", qos=1)
            wait(
                lambda: info.mid in seen["pubacks"] or seen["disconnect"] is not None,
                "PUBACK",
            )
            if info.mid in seen["pubacks"]:
                report["puback"].append(seen["pubacks"][info.mid])
        if seen["disconnect"] is None:
            client.disconnect()
    report["disconnect"] = seen["disconnect"] if report["connack"] == 0 else None
    client.loop_stop()
    emit(report)


if __name__ == "__main__":
    main()
