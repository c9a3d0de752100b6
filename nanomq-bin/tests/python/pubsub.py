"""paho-mqtt publish/subscribe at QoS 0, 1 and 2 (MQTT 3.1.1 or 5.0).

usage: pubsub.py HOST PORT --protocol {311,5} [--count N]

One subscriber subscribes to one topic per case; one publisher publishes N numbered
messages on each. Cases are (publish QoS, subscription QoS): (0,2), (1,2), (2,2), (2,1),
(1,0); the broker delivers at the lower of the two. Prints
{"cases": [{"topic", "pub_qos", "sub_qos", "granted", "received": [message...]}]}.
"""

import time

from common import Client, arguments, emit, protocol_of, wait_published

CASES = [(0, 2), (1, 2), (2, 2), (2, 1), (1, 0)]


def main():
    args = arguments(__doc__, lambda p: p.add_argument("--count", type=int, default=20))
    protocol = protocol_of(args.protocol)
    tag = f"paho-pubsub-{args.protocol}"

    subscriber = Client(f"{tag}-sub", protocol)
    subscriber.connect(args.host, args.port)
    topics = [f"{tag}/p{p}s{s}" for (p, s) in CASES]
    granted = subscriber.subscribe([(t, s) for t, (_, s) in zip(topics, CASES)])

    publisher = Client(f"{tag}-pub", protocol)
    publisher.connect(args.host, args.port)
    infos = []
    for topic, (pub_qos, _) in zip(topics, CASES):
        for n in range(args.count):
            infos.append(publisher.publish(topic, f"{topic}#{n}", pub_qos))
    wait_published(infos)

    expected = args.count * len(CASES)
    received = subscriber.wait_messages(expected)
    # Anything extra (a duplicate) would arrive right behind.
    time.sleep(0.3)
    received = subscriber.wait_messages(expected, timeout=0)
    publisher.disconnect()
    subscriber.disconnect()

    emit(
        {
            "cases": [
                {
                    "topic": topic,
                    "pub_qos": pub_qos,
                    "sub_qos": sub_qos,
                    "granted": code,
                    "received": [m for m in received if m["topic"] == topic],
                }
                for topic, (pub_qos, sub_qos), code in zip(topics, CASES, granted)
            ],
            "total_received": len(received),
        }
    )


if __name__ == "__main__":
    main()
