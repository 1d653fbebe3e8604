#!/usr/bin/env bash
# `make run`: infrastructure up (already done by make), topics and templates applied, then every
# service of deploy/local/Procfile started with its output in out/logs/<name>.log. Ctrl-C (or
# SIGTERM) stops the services gracefully, in reverse order; the servers keep running
# (`make infra-down` stops them).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"
export PATH="$repo/.venv/bin:$PATH"

set -a
# shellcheck disable=SC1090
source <(PANTAU_PYTHON="${PANTAU_PYTHON:-$repo/.venv/bin/python}" bash "$here/infra.sh" env)
set +a

echo "[run] applying Kafka topics from schemas/topics.yaml"
pantau topics apply
echo "[run] applying Elasticsearch templates from schemas/elasticsearch/"
PANTAU_ES_USERNAME=pantau_admin PANTAU_ES_PASSWORD="$PANTAU_ES_ADMIN_PASSWORD" pantau es apply

echo "[run] applying subscriptions from deploy/subscriptions/"
# The demo's webhook is the inbox on loopback: allowed here as the notifier allows it (Procfile).
PANTAU_NOTIFIER_ALLOW_LOOPBACK=true pantau subscriptions apply deploy/subscriptions

mkdir -p out/logs
names=() pids=()
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  name="${line%%:*}" command="${line#*:}"
  echo "[run] starting $name: $command (log: out/logs/$name.log)"
  bash -c "exec env $command" >"out/logs/$name.log" 2>&1 &
  names+=("$name") pids+=($!)
  if [ "$name" = demo-site ]; then
    # The crawler must not meet a site that is not listening yet: an unreachable robots.txt means
    # "everything disallowed" (RFC 9309) for the next ten minutes.
    for _ in $(seq 50); do
      python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:8808/robots.txt", timeout=1)' 2>/dev/null && break
      sleep 0.2
    done
  fi
done <"$here/Procfile"

if [ ${#pids[@]} -eq 0 ]; then
  echo "[run] Kafka, Elasticsearch, topics and templates are ready; no services are listed in deploy/local/Procfile yet."
  echo "[run] Elasticsearch: $PANTAU_ES_URL (user elastic, password in ~/.cache/pantau/secrets/elasticsearch.env)"
  echo "[run] Kafka: $PANTAU_KAFKA_BOOTSTRAP_SERVERS"
  exit 0
fi

stop() {
  trap - INT TERM
  echo "[run] stopping services"
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  wait
  exit 0
}
trap stop INT TERM
echo "[run] ${#pids[@]} service(s) running; Ctrl-C stops them"
while :; do
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[i]}" 2>/dev/null; then
      wait "${pids[i]}" && rc=0 || rc=$?
      echo "[run] ${names[i]} exited with code $rc; see out/logs/${names[i]}.log"
      stop
    fi
  done
  sleep 1
done
