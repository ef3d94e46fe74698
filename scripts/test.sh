#!/usr/bin/env bash
# The whole suite against real PostgreSQL and Redis (started here when they are down).
# Under CI=true a test that needs a missing service fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
PG_HOST=127.0.0.1
PG_PORT=5432

log() { printf '[test.sh] %s\n' "$*"; }

ensure_postgres() {
  if "$PY" - <<'PYEOF' 2>/dev/null; then return 0; fi
import psycopg
psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=2").close()
PYEOF
  log "PostgreSQL is down: starting it"
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do
    if "$PY" -c 'import psycopg; psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=2").close()' 2>/dev/null; then
      return 0
    fi
    sleep 1
  done
  log "PostgreSQL did not come up on $PG_HOST:$PG_PORT"
  return 1
}

ensure_redis() {
  if "$PY" -c 'import redis; redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()' 2>/dev/null; then
    return 0
  fi
  log "Redis is down: starting it"
  if command -v redis-server >/dev/null; then
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  fi
  for _ in $(seq 1 20); do
    if "$PY" -c 'import redis; redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()' 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  log "Redis did not come up on 127.0.0.1:6379"
  return 1
}

ensure_chromium() {
  if command -v chromium >/dev/null || [ -x /usr/bin/chromium ]; then return 0; fi
  log "installing chromium for the browser tests"
  if command -v apt-get >/dev/null; then
    (apt-get install -y chromium >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y chromium >/dev/null; }) || true
  fi
  command -v chromium >/dev/null || [ -x /usr/bin/chromium ]
}

status=0
ensure_postgres || status=1
ensure_redis || status=1
ensure_chromium || status=1
if [ "${CI:-}" = "true" ] && [ "$status" -ne 0 ]; then
  log "CI=true and a required service is unavailable: failing"
  exit 1
fi

export DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@$PG_HOST:$PG_PORT/quant}"
export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"
unset REDIS_URL CELERY_BROKER_URL

# pytest's own exit codes go out unchanged: 5 (no tests collected) fails the run too.
if [ "$#" -gt 0 ]; then
  exec "$PY" -m pytest "$@"
fi
# Browser tests run in their own process (a sync Playwright session leaves an event loop behind).
rc=0
"$PY" -m pytest --ignore=tests/e2e || rc=$?
brc=0
"$PY" -m pytest tests/e2e || brc=$?
log "suite exit code: $rc, browser tests exit code: $brc"
if [ "$rc" -ne 0 ]; then exit "$rc"; fi
exit "$brc"
