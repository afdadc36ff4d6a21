#!/usr/bin/env bash
# Makes sure the local services that Strata's tests use are listening:
#   PostgreSQL 127.0.0.1:5432 (trust, user postgres), Redis 127.0.0.1:6379, NATS with JetStream 127.0.0.1:4222.
# A closed port gets its service started; a missing binary gets its Debian package installed first.
# Anything still unreachable afterwards is an error: tests must never quietly skip a missing service.
set -euo pipefail

sudo=()
if [[ $EUID -ne 0 ]]; then sudo=(sudo); fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port name
  local i
  for ((i = 0; i < 60; i++)); do
    port_open "$1" && return 0
    sleep 0.5
  done
  echo "ensure-services: $2 is still not reachable on 127.0.0.1:$1" >&2
  return 1
}

apt_updated=false
apt_install() {
  if ! $apt_updated; then
    "${sudo[@]}" apt-get update -q
    apt_updated=true
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

ensure_postgres() {
  port_open 5432 && return 0
  if ! command -v pg_ctlcluster >/dev/null || [[ -z $(ls /etc/postgresql 2>/dev/null) ]]; then
    apt_install postgresql
    # A fresh Debian cluster asks loopback clients for a password; the tests connect as postgres without one.
    local hba
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -1)
    "${sudo[@]}" sed -i -E 's/^(local|host)(\s+.*\s+)(peer|md5|scram-sha-256)\s*$/\1\2trust/' "$hba"
  fi
  echo "ensure-services: starting PostgreSQL"
  "${sudo[@]}" pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  wait_port 5432 PostgreSQL
}

ensure_redis() {
  port_open 6379 && return 0
  command -v redis-server >/dev/null || apt_install redis-server
  echo "ensure-services: starting Redis"
  "${sudo[@]}" mkdir -p /var/lib/redis /var/log/redis
  "${sudo[@]}" redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379 Redis
}

ensure_nats() {
  port_open 4222 && return 0
  [[ -x /usr/sbin/nats-server ]] || apt_install nats-server
  echo "ensure-services: starting NATS (JetStream)"
  "${sudo[@]}" mkdir -p /var/lib/nats-server
  "${sudo[@]}" start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_port 4222 NATS
}

# promtool checks deploy/prometheus/alerts.yml in the Go tests.
ensure_promtool() {
  command -v promtool >/dev/null || apt_install prometheus
}

# pgbouncer: store/postgres tests start private pgbouncers (pgtest.StartPgBouncer); the Debian service stays off.
ensure_pgbouncer() {
  { command -v pgbouncer >/dev/null || [[ -x /usr/sbin/pgbouncer ]]; } && return 0
  apt_install pgbouncer
  if [[ -d /run/systemd/system ]]; then
    "${sudo[@]}" systemctl disable --now pgbouncer >/dev/null 2>&1 || true
  else
    "${sudo[@]}" service pgbouncer stop >/dev/null 2>&1 || true
  fi
}

ensure_promtool
ensure_pgbouncer
ensure_postgres
ensure_redis
ensure_nats
echo "ensure-services: PostgreSQL :5432, Redis :6379 and NATS :4222 are up"
