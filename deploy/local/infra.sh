#!/usr/bin/env bash
# Real Apache Kafka (KRaft, one node) and Elasticsearch (one node, security on) for development,
# tests and CI, without Docker: fetched from Maven Central with `mvn`, cached, started on loopback.
#
#   infra.sh up       fetch (once), configure, start, wait until healthy; reuses running servers
#   infra.sh down     stop both (SIGTERM, then SIGKILL after a grace period)
#   infra.sh status   print what runs where; exit 1 unless both are healthy
#   infra.sh env      print the connection settings (PANTAU_* variables) for the running servers
#   infra.sh stop-kafka | stop-elasticsearch   stop one server (outage tests; `up` brings it back)
#
# Settings (environment):
#   PANTAU_CACHE            downloads, Kafka data, secrets, logs   (default ~/.cache/pantau)
#   PANTAU_ES_DIR           Elasticsearch home, data, logs, pid   (default: under the cache; when root,
#                           /var/lib/pantau, because Elasticsearch runs as an unprivileged user that
#                           cannot enter /root)
#   PANTAU_ES_USER          the unprivileged user Elasticsearch runs as when we are root (default pantau)
#   PANTAU_KAFKA_PORT       Kafka listener (default 9092); PANTAU_KAFKA_CONTROLLER_PORT (default 9093)
#   PANTAU_ES_PORT          Elasticsearch HTTP (default 9200); PANTAU_ES_TRANSPORT_PORT (default 9300)
#   PANTAU_PYTHON           python with kafka-python for the Kafka health probe (default .venv/bin/python)
#   PANTAU_JAVA_HOME        JDK for both servers (default: the `java` on PATH)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache="${PANTAU_CACHE:-$HOME/.cache/pantau}"
kafka_port="${PANTAU_KAFKA_PORT:-9092}"
kafka_controller_port="${PANTAU_KAFKA_CONTROLLER_PORT:-9093}"
es_port="${PANTAU_ES_PORT:-9200}"
es_transport_port="${PANTAU_ES_TRANSPORT_PORT:-9300}"
es_user="${PANTAU_ES_USER:-pantau}"
python="${PANTAU_PYTHON:-$repo/.venv/bin/python}"
if [ "$(id -u)" = 0 ]; then
  es_dir="${PANTAU_ES_DIR:-/var/lib/pantau/elasticsearch-$ELASTICSEARCH_VERSION}"
else
  es_dir="${PANTAU_ES_DIR:-$cache/run/elasticsearch-$ELASTICSEARCH_VERSION}"
fi
java_home="${PANTAU_JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}"

m2="$cache/m2"
kafka_libs="$cache/kafka-$KAFKA_VERSION/libs"
kafka_run="$cache/run/kafka-$KAFKA_VERSION"
es_zip="$cache/downloads/elasticsearch-$ELASTICSEARCH_VERSION.zip"
es_home="$es_dir/home"
secrets="$cache/secrets/elasticsearch.env"

log() { printf '[infra] %s\n' "$*" >&2; }
die() { printf '[infra] ERROR: %s\n' "$*" >&2; exit 1; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

port_in_use() { ss -Hltn "sport = :$1" | grep -q .; }

# ---------------------------------------------------------------- fetch
fetch_kafka() {
  [ -f "$kafka_libs/.complete" ] && return 0
  log "fetching Kafka $KAFKA_VERSION and its runtime dependencies with mvn (once; cached in $cache)"
  local pom_dir; pom_dir="$(mktemp -d)"
  # slf4j-api is pinned to 2.x because Kafka still declares 1.7 and the log4j2 binding needs 2.x.
  cat >"$pom_dir/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>pantau.local</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_$KAFKA_SCALA_VERSION</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  rm -rf "$kafka_libs" && mkdir -p "$kafka_libs"
  (cd "$pom_dir" && mvn -B -q -Dmaven.repo.local="$m2" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$kafka_libs") \
    || die "mvn could not fetch Kafka $KAFKA_VERSION (see the output above)"
  rm -rf "$pom_dir"
  touch "$kafka_libs/.complete"
}

fetch_elasticsearch() {
  [ -f "$es_zip" ] && return 0
  log "fetching Elasticsearch $ELASTICSEARCH_VERSION (integ-test-zip) with mvn (once; cached in $cache)"
  mkdir -p "$(dirname "$es_zip")"
  mvn -B -q -Dmaven.repo.local="$m2" dependency:copy \
      -Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ELASTICSEARCH_VERSION:zip" \
      -DoutputDirectory="$(dirname "$es_zip")" \
    || die "mvn could not fetch Elasticsearch $ELASTICSEARCH_VERSION (see the output above)"
  [ -f "$es_zip" ] || die "mvn finished but $es_zip is missing"
}

# ---------------------------------------------------------------- Kafka
kafka_java() {
  "$java_home/bin/java" -cp "$kafka_libs/*" -Dlog4j2.configurationFile="$kafka_run/log4j2.properties" \
    -Dkafka.logs.dir="$kafka_run/logs" "$@"
}

configure_kafka() {
  mkdir -p "$kafka_run/data" "$kafka_run/logs"
  cat >"$kafka_run/server.properties" <<EOF
# Written by deploy/local/infra.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$kafka_controller_port
listeners=PLAINTEXT://127.0.0.1:$kafka_port,CONTROLLER://127.0.0.1:$kafka_controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$kafka_port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$kafka_run/data
num.partitions=3
# Topics are created by 'pantau topics apply' from schemas/topics.yaml, never by a typo.
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# One node: no reason to wait for more members before the first rebalance (tests start many groups).
group.initial.rebalance.delay.ms=0
EOF
  cat >"$kafka_run/log4j2.properties" <<'EOF'
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = warn
EOF
  if [ ! -f "$kafka_run/data/meta.properties" ]; then
    local cluster_id
    cluster_id="$(kafka_java kafka.tools.StorageTool random-uuid)"
    log "formatting KRaft storage (cluster id $cluster_id)"
    # A static controller.quorum.voters means no --standalone.
    kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$kafka_run/server.properties" \
      >"$kafka_run/logs/format.log" 2>&1 || { cat "$kafka_run/logs/format.log" >&2; die "KRaft format failed"; }
  fi
}

kafka_healthy() { "$python" "$here/probe.py" kafka "127.0.0.1:$kafka_port" >/dev/null 2>&1; }

start_kafka() {
  local pidfile="$kafka_run/kafka.pid"
  if alive "$pidfile"; then
    log "Kafka already running (pid $(cat "$pidfile")), reusing it"
  else
    port_in_use "$kafka_port" && die "port $kafka_port is taken by another process; set PANTAU_KAFKA_PORT"
    fetch_kafka
    configure_kafka
    log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$kafka_port"
    setsid "$java_home/bin/java" -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
      -cp "$kafka_libs/*" -Dlog4j2.configurationFile="$kafka_run/log4j2.properties" \
      -Dkafka.logs.dir="$kafka_run/logs" kafka.Kafka "$kafka_run/server.properties" \
      >"$kafka_run/logs/stdout.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    echo "$KAFKA_VERSION" >"$kafka_run/version"
  fi
}

wait_kafka() {
  local deadline=$((SECONDS + ${PANTAU_KAFKA_START_TIMEOUT:-120}))
  until kafka_healthy; do
    alive "$kafka_run/kafka.pid" || { tail -n 40 "$kafka_run/logs/server.log" "$kafka_run/logs/stdout.log" >&2 2>/dev/null; die "Kafka exited during start"; }
    [ $SECONDS -lt $deadline ] || { tail -n 40 "$kafka_run/logs/server.log" >&2; die "Kafka not healthy in time"; }
    sleep 1
  done
  log "Kafka healthy (metadata answers on 127.0.0.1:$kafka_port)"
}

# ---------------------------------------------------------------- Elasticsearch
gen_password() { head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24; }

ensure_secrets() {
  [ -f "$secrets" ] && return 0
  mkdir -p "$(dirname "$secrets")"
  chmod 700 "$(dirname "$secrets")"
  (umask 077; cat >"$secrets" <<EOF
# Generated by deploy/local/infra.sh on first start. Keep private (mode 0600).
ELASTIC_PASSWORD=$(gen_password)
PANTAU_ES_ADMIN_PASSWORD=$(gen_password)
PANTAU_ES_INDEXER_PASSWORD=$(gen_password)
PANTAU_ES_READER_PASSWORD=$(gen_password)
EOF
  )
  log "generated Elasticsearch passwords into $secrets (mode 0600)"
}

as_es_user() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u "$es_user" -- env "$@"
  else
    env "$@"
  fi
}

es_env=()
set_es_env() {
  es_env=(ES_JAVA_HOME="$java_home" ES_PATH_CONF="$es_home/config"
          ES_JAVA_OPTS="-Xms512m -Xmx1g" HOME="$es_dir" PATH="/usr/bin:/bin")
}

configure_elasticsearch() {
  if [ "$(id -u)" = 0 ] && ! id "$es_user" >/dev/null 2>&1; then
    log "creating the unprivileged system user '$es_user' (Elasticsearch refuses to run as root)"
    useradd --system --no-create-home --shell /usr/sbin/nologin "$es_user"
  fi
  if [ ! -f "$es_home/.unpacked" ]; then
    log "unpacking Elasticsearch into $es_home"
    rm -rf "$es_home" && mkdir -p "$es_dir"
    local tmp; tmp="$(mktemp -d "$es_dir/unpack.XXXXXX")"
    unzip -q "$es_zip" -d "$tmp"
    mv "$tmp/elasticsearch-$ELASTICSEARCH_VERSION" "$es_home" && rm -rf "$tmp"
    touch "$es_home/.unpacked"
  fi
  mkdir -p "$es_dir/data" "$es_dir/logs"
  # Settling security here keeps the first start from auto-configuring TLS and enrolment.
  cat >"$es_home/config/elasticsearch.yml" <<EOF
# Written by deploy/local/infra.sh on every start; edit the script, not this file.
cluster.name: pantau-local
node.name: pantau-es-1
path.data: $es_dir/data
path.logs: $es_dir/logs
network.host: 127.0.0.1
http.port: $es_port
transport.port: $es_transport_port
discovery.type: single-node
xpack.security.enabled: true
xpack.security.http.ssl.enabled: false
xpack.security.transport.ssl.enabled: false
# Development disks fill up; a read-only flood-stage block would look like a Pantau bug.
cluster.routing.allocation.disk.threshold_enabled: false
action.destructive_requires_name: true
EOF
  cp "$here/elasticsearch/roles.yml" "$es_home/config/roles.yml"

  # Keystore and file-realm users follow the secrets file; redo them only when it changed.
  local stamp; stamp="$(sha256sum "$secrets" "$here/elasticsearch/users.txt" | sha256sum | cut -c1-64)"
  if [ "$(cat "$es_home/config/.pantau-secrets" 2>/dev/null)" != "$stamp" ]; then
    log "writing the keystore and file-realm users"
    rm -f "$es_home/config/.pantau-secrets"  # an interrupted rewrite is redone next start, not trusted
    # shellcheck disable=SC1090
    source "$secrets"
    rm -f "$es_home/config/elasticsearch.keystore"
    : >"$es_home/config/users"; : >"$es_home/config/users_roles"
    [ "$(id -u)" = 0 ] && chown -R "$es_user:" "$es_dir"
    set_es_env
    as_es_user "${es_env[@]}" "$es_home/bin/elasticsearch-keystore" create >/dev/null
    printf '%s' "$ELASTIC_PASSWORD" | as_es_user "${es_env[@]}" \
      "$es_home/bin/elasticsearch-keystore" add -x bootstrap.password >/dev/null
    local user role var
    while read -r user role var; do
      case "$user" in ''|'#'*) continue ;; esac
      as_es_user "${es_env[@]}" "$es_home/bin/elasticsearch-users" useradd "$user" \
        -p "${!var}" -r "$role" >/dev/null
    done <"$here/elasticsearch/users.txt"
    echo "$stamp" >"$es_home/config/.pantau-secrets"
  fi
  [ "$(id -u)" = 0 ] && chown -R "$es_user:" "$es_dir"
  return 0
}

es_health() {
  # shellcheck disable=SC1090
  source "$secrets"
  curl -fsS -m 5 -u "elastic:$ELASTIC_PASSWORD" \
    "http://127.0.0.1:$es_port/_cluster/health?wait_for_status=yellow&timeout=1s" 2>/dev/null
}

start_elasticsearch() {
  local pidfile="$es_dir/es.pid"
  ensure_secrets
  if alive "$pidfile"; then
    log "Elasticsearch already running (pid $(cat "$pidfile")), reusing it"
    return 0
  fi
  port_in_use "$es_port" && die "port $es_port is taken by another process; set PANTAU_ES_PORT"
  fetch_elasticsearch
  configure_elasticsearch
  log "starting Elasticsearch $ELASTICSEARCH_VERSION on 127.0.0.1:$es_port (security on, file realm)"
  set_es_env
  rm -f "$pidfile"
  # -d daemonises; Elasticsearch writes the pid file itself, as the unprivileged user. setsid keeps
  # it out of the caller's process group, so a finished shell job does not take it down.
  as_es_user "${es_env[@]}" setsid "$es_home/bin/elasticsearch" -d -p "$pidfile" \
    >"$es_dir/logs/startup.log" 2>&1 </dev/null \
    || { cat "$es_dir/logs/startup.log" >&2; tail -n 40 "$es_dir/logs/pantau-local.log" >&2 2>/dev/null; die "Elasticsearch failed to start"; }
}

wait_elasticsearch() {
  local deadline=$((SECONDS + ${PANTAU_ES_START_TIMEOUT:-180}))
  until es_health | grep -q '"status":"\(yellow\|green\)"'; do
    if [ -f "$es_dir/es.pid" ] && ! alive "$es_dir/es.pid"; then
      tail -n 40 "$es_dir/logs/pantau-local.log" >&2 2>/dev/null; die "Elasticsearch exited during start"
    fi
    [ $SECONDS -lt $deadline ] || { tail -n 40 "$es_dir/logs/pantau-local.log" >&2 2>/dev/null; die "Elasticsearch not healthy in time"; }
    sleep 1
  done
  log "Elasticsearch healthy (cluster health yellow/green on 127.0.0.1:$es_port)"
}

# ---------------------------------------------------------------- stop, status, env
stop_pid() {
  local name="$1" pidfile="$2" grace="${3:-60}"
  if ! alive "$pidfile"; then log "$name not running"; rm -f "$pidfile"; return 0; fi
  local pid; pid="$(cat "$pidfile")"
  log "stopping $name (pid $pid)"
  kill -TERM "$pid"
  local deadline=$((SECONDS + grace))
  while kill -0 "$pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then log "$name ignored SIGTERM for ${grace}s; killing it"; kill -KILL "$pid"; fi
    sleep 0.5
  done
  rm -f "$pidfile"
}

print_env() {
  # shellcheck disable=SC1090
  source "$secrets"
  cat <<EOF
PANTAU_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$kafka_port
PANTAU_ES_URL=http://127.0.0.1:$es_port
ELASTIC_PASSWORD=$ELASTIC_PASSWORD
PANTAU_ES_ADMIN_PASSWORD=$PANTAU_ES_ADMIN_PASSWORD
PANTAU_ES_INDEXER_PASSWORD=$PANTAU_ES_INDEXER_PASSWORD
PANTAU_ES_READER_PASSWORD=$PANTAU_ES_READER_PASSWORD
PANTAU_KAFKA_VERSION=$KAFKA_VERSION
PANTAU_ELASTICSEARCH_VERSION=$ELASTICSEARCH_VERSION
EOF
}

status() {
  local ok=0
  if alive "$kafka_run/kafka.pid" && kafka_healthy; then
    log "Kafka $(cat "$kafka_run/version" 2>/dev/null) healthy on 127.0.0.1:$kafka_port (pid $(cat "$kafka_run/kafka.pid"), logs $kafka_run/logs)"
  else
    log "Kafka not running or not healthy"; ok=1
  fi
  if [ -f "$secrets" ] && alive "$es_dir/es.pid" && es_health | grep -q '"status":"\(yellow\|green\)"'; then
    log "Elasticsearch $ELASTICSEARCH_VERSION healthy on 127.0.0.1:$es_port (pid $(cat "$es_dir/es.pid"), logs $es_dir/logs)"
  else
    log "Elasticsearch not running or not healthy"; ok=1
  fi
  return $ok
}

[ -x "$python" ] || die "no python at $python: run 'make setup' first (or set PANTAU_PYTHON)"
case "${1:-}" in
  up)
    start_kafka
    start_elasticsearch
    wait_kafka
    wait_elasticsearch
    ;;
  down)
    stop_pid Kafka "$kafka_run/kafka.pid" 60
    stop_pid Elasticsearch "$es_dir/es.pid" 60
    ;;
  wipe)  # stop both and delete their data: the next `up` starts with no topics, groups or indices
    stop_pid Kafka "$kafka_run/kafka.pid" 60
    stop_pid Elasticsearch "$es_dir/es.pid" 60
    rm -rf "$kafka_run/data" "$es_dir/data"
    log "deleted the data of Kafka ($kafka_run/data) and Elasticsearch ($es_dir/data)"
    ;;
  stop-kafka) stop_pid Kafka "$kafka_run/kafka.pid" 60 ;;
  stop-elasticsearch) stop_pid Elasticsearch "$es_dir/es.pid" 60 ;;
  status) status ;;
  env) print_env ;;
  *) echo "usage: $0 up|down|wipe|status|env|stop-kafka|stop-elasticsearch" >&2; exit 2 ;;
esac
