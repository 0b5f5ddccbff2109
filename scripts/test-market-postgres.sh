#!/usr/bin/env bash
# Runs the market's provider-index tests against a real PostgreSQL (the
# SQLite path is covered by the ordinary `cargo test`). As root on Debian:
# installs postgresql with apt if missing, starts the default cluster, and
# creates a throwaway role and database the test may wipe.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v pg_ctlcluster >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
pg_ctlcluster "$version" main start 2>/dev/null || true
psql_su() { su postgres -c "psql -qtAc \"$1\""; }
for _ in $(seq 1 30); do psql_su "select 1" >/dev/null 2>&1 && break; sleep 0.5; done
[ "$(psql_su "select 1 from pg_roles where rolname='flowshield_test'")" = 1 ] ||
    psql_su "create role flowshield_test login password 'flowshield_test'"
[ "$(psql_su "select 1 from pg_database where datname='flowshield_test'")" = 1 ] ||
    psql_su "create database flowshield_test owner flowshield_test"
psql_su "alter database flowshield_test owner to flowshield_test"

export FLOWSHIELD_TEST_POSTGRES_URL="postgres://flowshield_test:flowshield_test@127.0.0.1/flowshield_test"
cargo test -p flowshield-market --lib --locked index:: -- --nocapture
