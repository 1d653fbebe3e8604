"""Health probe used by deploy/local/infra.sh: exits 0 when the server answers a real request.

probe.py kafka HOST:PORT    a metadata request (cluster description) succeeds
"""

import sys


def kafka_answers(bootstrap: str) -> bool:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000, client_id="pantau-probe")
    try:
        return bool(admin.describe_cluster().get("brokers"))
    finally:
        admin.close()


if __name__ == "__main__":
    kind, address = sys.argv[1], sys.argv[2]
    if kind != "kafka":
        sys.exit(f"unknown probe {kind}")
    try:
        sys.exit(0 if kafka_answers(address) else 1)
    except Exception as exc:  # any failure means "not healthy yet"; the caller retries
        print(f"kafka probe: {exc}", file=sys.stderr)
        sys.exit(1)
