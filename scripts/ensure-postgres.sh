#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 with a `conversant`
# role and a `conversant_test` database, installing it with apt-get when it is
# missing (CI machines start without it). Prints the URL for the test suite.
set -euo pipefail

url="postgresql://conversant:conversant@127.0.0.1:5432/conversant_test"
log() { echo "ensure-postgres: $*" >&2; }

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    log "PostgreSQL is not installed and we are not root; install it (apt-get install postgresql) or set CONVERSANT_TEST_POSTGRES_URL"
    exit 1
  fi
  log "installing PostgreSQL with apt-get (one time)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi

version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$version main$"; then
  log "creating cluster $version/main"
  pg_createcluster "$version" main >&2
fi
if ! pg_lsclusters -h | grep -q "^$version *main .*online"; then
  log "starting PostgreSQL $version on 127.0.0.1:5432"
  # The AppView of the real Bluesky suite needs ~18 connections of its own.
  pg_ctlcluster "$version" main start -o "-c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" >&2
  # The one thing `make test` leaves running, so say so.
  log "PostgreSQL $version keeps running after the tests; stop it with: pg_ctlcluster $version main stop"
fi

as_postgres() { su postgres -c "psql -qAt -v ON_ERROR_STOP=1 -c \"$1\"" 2>/dev/null || runuser -u postgres -- psql -qAt -v ON_ERROR_STOP=1 -c "$1"; }
for _ in $(seq 1 30); do as_postgres "select 1" >/dev/null && break; sleep 1; done
if [ "$(as_postgres "select 1 from pg_roles where rolname='conversant'")" != 1 ]; then
  as_postgres "create role conversant login superuser password 'conversant'" >/dev/null
fi
if [ "$(as_postgres "select 1 from pg_database where datname='conversant_test'")" != 1 ]; then
  as_postgres "create database conversant_test owner conversant" >/dev/null
fi
echo "$url"
