"""Parses a Prometheus text exposition with Prometheus's own Python client
(prometheus_client.parser) and prints what it read as JSON, one object: each family's name
(as the parser names it: counters without their `_total`), type, help, and samples as
[name, labels, value]. A text the parser refuses exits non-zero with its error.

Usage: parse_prometheus.py FILE
"""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    families = {}
    for family in text_string_to_metric_families(text):
        if family.name in families:
            raise SystemExit(f"family {family.name} appears twice")
        families[family.name] = {
            "type": family.type,
            "help": family.documentation,
            "samples": [[s.name, s.labels, s.value] for s in family.samples],
        }
    print(json.dumps(families))


if __name__ == "__main__":
    main()
