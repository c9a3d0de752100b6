"""paho-mqtt MQTT 5 publish properties through the broker.

usage: v5_properties.py HOST PORT --protocol 5

1. Live: a message with user properties (in order, one key twice), content type, response
   topic, correlation data, payload format indicator and message expiry interval reaches a
   live subscriber with all of them.
2. Offline: a persistent session (Session Expiry 3600) is away while three messages are
   queued for it: one expiring after 1 s, one after 60 s, one that never expires. After
   2.5 s it comes back: the first has expired and must not arrive; the second arrives with
   its remaining lifetime (at most 58 s).

Prints {"live": [message...], "offline": [message...], "session_present": bool}.
"""

import time

from common import Client, PacketTypes, arguments, emit, properties, protocol_of, wait_published


def main():
    args = arguments(__doc__)
    if args.protocol != "5":
        raise SystemExit("MQTT 5 only")
    protocol = protocol_of(args.protocol)

    publisher = Client("paho-props-pub", protocol)
    publisher.connect(args.host, args.port)

    # 1. Live.
    live = Client("paho-props-live", protocol)
    live.connect(args.host, args.port)
    live.subscribe([("paho/props/live", 1)])
    props = properties(
        PacketTypes.PUBLISH,
        UserProperty=[("colour", "blue"), ("size", "9"), ("colour", "green")],
        ContentType="application/json",
        ResponseTopic="paho/props/reply",
        CorrelationData=b"\x00\x01req-42\xff",
        PayloadFormatIndicator=1,
        MessageExpiryInterval=3600,
    )
    wait_published([publisher.publish("paho/props/live", '{"on": true}', 1, props=props)])
    live_messages = live.wait_messages(1)
    live.disconnect()

    # 2. Offline, with message expiry.
    session = properties(PacketTypes.CONNECT, SessionExpiryInterval=3600)
    away = Client("paho-props-away", protocol)
    away.connect(args.host, args.port, clean_start=True, props=session)
    away.subscribe([("paho/props/away/#", 1)])
    away.disconnect()
    wait_published(
        [
            publisher.publish(
                "paho/props/away/short",
                "short",
                1,
                props=properties(PacketTypes.PUBLISH, MessageExpiryInterval=1),
            ),
            publisher.publish(
                "paho/props/away/long",
                "long",
                1,
                props=properties(PacketTypes.PUBLISH, MessageExpiryInterval=60),
            ),
            publisher.publish("paho/props/away/forever", "forever", 1),
        ]
    )
    time.sleep(2.5)
    back = Client("paho-props-away", protocol)
    connack = back.connect(args.host, args.port, clean_start=False, props=session)
    back.wait_messages(2)
    # Give the expired message the time it would need to arrive, if it were (wrongly) sent.
    time.sleep(0.5)
    offline_messages = back.wait_messages(2, timeout=0)
    back.disconnect()
    publisher.disconnect()

    emit(
        {
            "live": live_messages,
            "offline": offline_messages,
            "session_present": connack["session_present"],
        }
    )


if __name__ == "__main__":
    main()
