#!/bin/sh
# One-shot in docker compose: the full Elasticsearch image has the native realm, so the same
# least-privilege roles (config/roles.yml, mounted from deploy/local/elasticsearch/roles.yml)
# are given to native users with the passwords from .env, and kibana_system gets its password.
set -eu
es=http://elasticsearch:9200
auth="elastic:${ELASTIC_PASSWORD}"
until curl -fsS -u "$auth" "$es/_cluster/health?wait_for_status=yellow&timeout=5s" >/dev/null; do sleep 2; done
user() {
  curl -fsS -u "$auth" -X POST "$es/_security/user/$1" -H 'Content-Type: application/json' \
    -d "{\"password\": \"$2\", \"roles\": [\"$3\"]}" >/dev/null
  echo "user $1 ($3) ready"
}
user pantau_admin "$PANTAU_ES_ADMIN_PASSWORD" pantau_admin
user pantau_indexer "$PANTAU_ES_INDEXER_PASSWORD" pantau_indexer
user pantau_reader "$PANTAU_ES_READER_PASSWORD" pantau_reader
curl -fsS -u "$auth" -X POST "$es/_security/user/kibana_system/_password" -H 'Content-Type: application/json' \
  -d "{\"password\": \"$KIBANA_SYSTEM_PASSWORD\"}" >/dev/null
echo "kibana_system password set"
