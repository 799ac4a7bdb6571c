#!/usr/bin/env bash
# scripts/services.sh — run the backing servers distlock's tests need, locally.
#
# Usage:
#   scripts/services.sh up                 install missing Debian packages, start every
#                                          server, wait until each answers, print settings
#   scripts/services.sh down [--wipe]      stop everything started here (--wipe: also
#                                          delete target/services, i.e. all data)
#   scripts/services.sh status             one line per server: up/down (exit 1 if any down)
#   scripts/services.sh env                print `export VAR=...` lines:
#                                              eval "$(scripts/services.sh env)"
#   scripts/services.sh stop-node SVC N    stop one node cleanly (SIGTERM, wait for exit)
#   scripts/services.sh kill-node SVC N    kill one node hard (SIGKILL)
#   scripts/services.sh start-node SVC N   start one node, wait until it answers
#       SVC N: redis 1..5 (Redlock instances), redis 6 (the password-protected one),
#              zookeeper 1..3, etcd 1..3, postgres 1, mariadb 1, and the TLS servers
#              redis-tls 1, zookeeper-tls 1, etcd-tls 1, postgres-tls 1, mariadb-tls 1,
#              redis-sentinel 1..3 (data nodes; 1 starts as the primary), 4..6 (sentinels),
#              redis-cluster 1..6 (Redis Cluster nodes)
#
# Everything binds to 127.0.0.1 only, on project-specific ports, and keeps its data,
# logs and pid files under <repo>/target/services/ (note: `cargo clean` deletes them;
# run `scripts/services.sh down` first).
#
# Environment variables printed by `env` (tests fall back to exactly these values
# when a variable is unset; see docs/services.md):
#   DISTLOCK_REDIS_URLS           the 5 independent Redlock instances, comma-separated
#   DISTLOCK_REDIS_AUTH_URL       the password-protected instance (no password in the URL)
#   DISTLOCK_REDIS_AUTH_PASSWORD  its `requirepass` password (default user)
#   DISTLOCK_REDIS_ACL_USER       an ACL user allowed everything on that instance
#   DISTLOCK_REDIS_ACL_PASSWORD   that user's password
#   DISTLOCK_ZK_HOSTS             the 3-node ZooKeeper ensemble
#   DISTLOCK_ETCD_ENDPOINTS       the 3-node etcd cluster
#   DISTLOCK_POSTGRES_URL         PostgreSQL, database/role `distlock`
#   DISTLOCK_MYSQL_URL            MariaDB, database/user `distlock`
#   DISTLOCK_SERVICES_SCRIPT      absolute path of this script (fault tests call
#                                 stop-node/kill-node/start-node through it)
#   DISTLOCK_TLS_CA, _CERT, _KEY  the test CA, and the client certificate and key
#   DISTLOCK_TLS_OTHER_CA         a second CA that signed nothing the servers use
#   DISTLOCK_TLS_CERT_USER        the SQL user that logs in by client certificate
#   DISTLOCK_REDIS_TLS_URL, DISTLOCK_ZK_TLS_HOSTS, DISTLOCK_ETCD_TLS_ENDPOINTS,
#   DISTLOCK_POSTGRES_TLS_URL, DISTLOCK_MYSQL_TLS_URL   the TLS servers
#                                 (scripts/services-tls.sh)
#   DISTLOCK_REDIS_SENTINELS      the 3 sentinels (host:port, comma-separated)
#   DISTLOCK_REDIS_SENTINEL_MASTER  the name they monitor the primary under
#   DISTLOCK_REDIS_SENTINEL_DATA  the Sentinel set's 3 data nodes, in node order
#   DISTLOCK_REDIS_CLUSTER_NODES  the 6 Redis Cluster nodes (host:port, comma-separated)
#
# Knobs: DISTLOCK_SERVICES_TIMEOUT (seconds to wait for each server, default 60).
#
# Must run as root (it installs packages and runs PostgreSQL as the `postgres` user).

set -euo pipefail

# ---------------------------------------------------------------------------
# Locations (computed from this file's location, never from the cwd)
# ---------------------------------------------------------------------------
SCRIPT_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
ROOT="$(cd "$(dirname "$SCRIPT_PATH")/.." && pwd)"
SVC_DIR="$ROOT/target/services"
TIMEOUT="${DISTLOCK_SERVICES_TIMEOUT:-60}"

# ---------------------------------------------------------------------------
# Ports and credentials (keep in sync with docs/services.md and the tests' defaults)
# ---------------------------------------------------------------------------
HOST=127.0.0.1
REDIS_PORTS=(16379 16380 16381 16382 16383 16384) # 1..5 Redlock, 6 = password-protected
REDIS_AUTH_NODE=6
REDIS_AUTH_PASSWORD=distlock-secret-pw
REDIS_ACL_USER=locker
REDIS_ACL_PASSWORD=locker-pw
ZK_CLIENT_PORTS=(12181 12182 12183)
ZK_QUORUM_PORTS=(12888 12889 12890)
ZK_ELECTION_PORTS=(13888 13889 13890)
ETCD_CLIENT_PORTS=(12379 12381 12383)
ETCD_PEER_PORTS=(12380 12382 12384)
PG_PORT=15432
MYSQL_PORT=13306
DB_NAME=distlock
DB_USER=distlock
DB_PASSWORD=distlock-pw
MAX_CONNECTIONS=400 # tests open many connections; both databases need >= 300

# The TLS servers: certificates, ports, start and probe functions (uses the helpers
# below, which exist by the time any command runs).
# shellcheck source=scripts/services-tls.sh
source "$(dirname "$SCRIPT_PATH")/services-tls.sh"

# Debian packages this script needs (checked with dpkg -s, installed if missing).
# zookeeper needs a Java runtime; etcd-client gives etcdctl (health checks);
# protobuf-compiler gives protoc and libprotobuf-dev the well-known .proto files,
# both needed by the etcd-client crate's build script; openssl makes the TLS servers'
# throw-away certificates.
PACKAGES=(redis-server redis-tools zookeeper default-jre-headless etcd-server etcd-client
  postgresql postgresql-client mariadb-server mariadb-client protobuf-compiler libprotobuf-dev
  openssl)

export ETCDCTL_API=3

# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------
log() { echo "[services] $*" >&2; }
die() {
  echo "[services] ERROR: $*" >&2
  exit 1
}

# Print the last lines of a log file (used when a server fails to come up).
show_log() {
  local f="$1"
  if [[ -f "$f" ]]; then
    echo "----- last 40 lines of $f -----" >&2
    tail -n 40 "$f" >&2 || true
    echo "-----" >&2
  else
    echo "(no log file at $f)" >&2
  fi
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

# True if $1 is a live (non-zombie) process whose command line contains $2.
pid_matches() {
  local pid="$1" pattern="$2" state
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
  [[ "$state" != Z && -n "$state" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern"
}

# Start a daemon fully detached: its own session, stdin from /dev/null, stdout and
# stderr appended to a log file (so it never holds the caller's terminal or pipe),
# and its pid written to a pid file. A background job of a non-interactive shell is
# never a process-group leader, so `setsid` execs in place and $! is the daemon's pid.
spawn() {
  local pidfile="$1" logfile="$2"
  shift 2
  setsid "$@" </dev/null >>"$logfile" 2>&1 9>&- &
  echo $! >"$pidfile"
}

# Print the pids of $1's direct children (from /proc, so procps isn't needed).
child_pids() {
  local f stat ppid
  for f in /proc/[0-9]*/stat; do
    stat="$(cat "$f" 2>/dev/null)" || continue
    stat="${stat##*) }" # drop "pid (comm) ": comm may contain spaces
    read -r _ ppid _ <<<"$stat"
    [[ $ppid == "$1" ]] && echo "${f//[^0-9]/}"
  done
  return 0
}

# Serialize commands that start or stop servers (e.g. two test runs at once) with a
# lock on fd 9. Daemons must not inherit fd 9 (they would hold the lock forever):
# spawn and pg_start close it for them.
take_lock() {
  mkdir -p "$SVC_DIR"
  exec 9>"$SVC_DIR/.lock"
  flock -w 600 9 || die "another scripts/services.sh is still running after 600 s"
}

# Signal a pid and wait (up to $3 seconds) for it to exit; SIGKILL if it won't.
stop_pid() {
  local pid="$1" sig="$2" wait_s="${3:-30}" pattern="$4" i
  kill "-$sig" "$pid" 2>/dev/null || return 0
  for ((i = 0; i < wait_s * 10; i++)); do
    pid_matches "$pid" "$pattern" || return 0
    sleep 0.1
  done
  log "pid $pid did not exit after SIG$sig within ${wait_s}s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    pid_matches "$pid" "$pattern" || return 0
    sleep 0.1
  done
  die "pid $pid survived SIGKILL"
}

# Poll "$@" until it succeeds; after $TIMEOUT seconds fail loudly with the log tail.
# Usage: wait_until "description" logfile command...
wait_until() {
  local what="$1" logfile="$2"
  shift 2
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      show_log "$logfile"
      die "$what did not come up within ${TIMEOUT}s"
    fi
    sleep 0.25
  done
}

# ---------------------------------------------------------------------------
# Package installation (only if something is missing)
# ---------------------------------------------------------------------------
ensure_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  [[ $EUID -eq 0 ]] || die "missing packages (${missing[*]}) and not root; install them first"
  log "installing missing packages: ${missing[*]}"
  # Keep the packages' own init scripts from starting default instances on the
  # standard ports (we run our own instances). Only if no policy is in place already.
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    added_policy=1
  fi
  local rc=0
  {
    apt-get -o DPkg::Lock::Timeout=600 update -q &&
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
        --no-install-recommends "${missing[@]}"
  } >&2 || rc=$?
  ((added_policy)) && rm -f "$policy"
  ((rc == 0)) || die "package installation failed (apt-get exit code $rc)"
}

# ---------------------------------------------------------------------------
# Redis: 5 independent Redlock instances + 1 password/ACL-protected instance
# ---------------------------------------------------------------------------
redis_dir() { echo "$SVC_DIR/redis/$1"; }
redis_port() { echo "${REDIS_PORTS[$(($1 - 1))]}"; }

redis_cli() { # node, redis-cli args...
  local n="$1"
  shift
  local auth=()
  [[ $n == "$REDIS_AUTH_NODE" ]] && auth=(--no-auth-warning -a "$REDIS_AUTH_PASSWORD")
  timeout 3 redis-cli -h "$HOST" -p "$(redis_port "$n")" "${auth[@]}" "$@"
}

redis_probe() { [[ "$(redis_cli "$1" ping 2>/dev/null)" == PONG ]]; }

# The settings every Redis server here shares: loopback, port $1, data in $2,
# AOF persistence (see redis_start), DEBUG allowed from loopback.
redis_base_config() {
  local port="$1" dir="$2"
  echo "bind $HOST"
  echo "port $port"
  echo "protected-mode yes"
  echo "daemonize no"
  echo "dir \"$dir\""
  echo 'logfile ""'
  echo 'save ""'
  echo "appendonly yes"
  echo "appendfsync everysec"
  echo "maxclients 10000"
  # Lets tests simulate a stalled server with DEBUG SLEEP (loopback clients only).
  echo "enable-debug-command local"
}

redis_start() {
  local n="$1" dir port
  dir="$(redis_dir "$n")"
  port="$(redis_port "$n")"
  mkdir -p "$dir"
  # Persistence: append-only file with fsync every second, no RDB snapshots.
  # Redlock fencing counters must survive a restart of an instance. Redis write()s
  # the AOF before replying to a client, so a killed process (SIGKILL, the fault
  # tests' case) loses no acknowledged write; only a machine crash could lose <= 1 s,
  # which `appendfsync always` would prevent at a large cost per write.
  {
    redis_base_config "$port" "$dir"
    if [[ $n == "$REDIS_AUTH_NODE" ]]; then
      echo "requirepass $REDIS_AUTH_PASSWORD"
      echo "user $REDIS_ACL_USER on >$REDIS_ACL_PASSWORD ~* &* +@all"
    fi
  } >"$dir/redis.conf"
  spawn "$dir/redis.pid" "$dir/redis.log" redis-server "$dir/redis.conf"
}

# ---------------------------------------------------------------------------
# ZooKeeper: 3-node ensemble, started with java directly (not the Debian config)
# ---------------------------------------------------------------------------
zk_dir() { echo "$SVC_DIR/zookeeper/$1"; }
zk_port() { echo "${ZK_CLIENT_PORTS[$(($1 - 1))]}"; }

# Send a four-letter-word command to node $1 and print the answer.
zk_4lw() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf %s "$2" >&3 && cat <&3' \
    "$HOST" "$(zk_port "$1")" "$2" 2>/dev/null
}
zk_probe() { [[ "$(zk_4lw "$1" ruok)" == imok ]]; }
zk_mode() { zk_4lw "$1" srvr | sed -n 's/^Mode: //p'; }
# True when node $1 serves clients as part of a quorum (leader or follower).
zk_serving() { [[ "$(zk_mode "$1")" =~ ^(leader|follower)$ ]]; }
# True when the ensemble has exactly one leader and every node is serving.
zk_ensemble_ready() {
  local n leaders=0 mode
  for n in 1 2 3; do
    mode="$(zk_mode "$n")"
    [[ $mode == leader ]] && leaders=$((leaders + 1))
    [[ $mode =~ ^(leader|follower)$ ]] || return 1
  done
  ((leaders == 1))
}

zk_classpath() {
  # Debian's zookeeper.jar lists its dependencies in its manifest Class-Path; it
  # ships no SLF4J binding on that path, so add log4j 1.2 + its SLF4J binding.
  local jars=(/usr/share/java/zookeeper.jar /usr/share/java/slf4j-log4j12.jar
    /usr/share/java/log4j-1.2.jar) j cp=""
  for j in "${jars[@]}"; do
    [[ -f $j ]] || die "ZooKeeper jar $j not found (is the zookeeper package installed?)"
    cp="${cp:+$cp:}$j"
  done
  echo "$cp"
}

# Logging to the console (the log file), in directory $1.
zk_log4j() {
  cat >"$1/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} [myid:%X{myid}] - %-5p [%t:%C{1}@%L] - %m%n
EOF
}

zk_start() {
  local n="$1" dir i
  dir="$(zk_dir "$n")"
  mkdir -p "$dir/data"
  echo "$n" >"$dir/data/myid"
  # Short ticks so tests can use ~1 s sessions; no per-IP connection limit (all test
  # clients come from 127.0.0.1); admin HTTP server off; all 4lw commands allowed.
  {
    echo "tickTime=500"
    echo "initLimit=20"
    echo "syncLimit=10"
    echo "minSessionTimeout=1000"
    echo "maxSessionTimeout=60000"
    echo "dataDir=$dir/data"
    echo "clientPort=$(zk_port "$n")"
    echo "clientPortAddress=$HOST"
    echo "maxClientCnxns=0"
    echo "admin.enableServer=false"
    echo "4lw.commands.whitelist=*"
    echo "autopurge.snapRetainCount=3"
    echo "autopurge.purgeInterval=1"
    for i in 1 2 3; do
      echo "server.$i=$HOST:${ZK_QUORUM_PORTS[$((i - 1))]}:${ZK_ELECTION_PORTS[$((i - 1))]}"
    done
  } >"$dir/zoo.cfg"
  zk_log4j "$dir"
  # Small heap, serial GC and C1-only JIT: three JVMs share 2 cores with cargo.
  spawn "$dir/zookeeper.pid" "$dir/zookeeper.log" \
    java -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData \
    -Djava.net.preferIPv4Stack=true \
    -Dzookeeper.log.dir="$dir" \
    -Dlog4j.configuration="file:$dir/log4j.properties" \
    -cp "$(zk_classpath)" \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg"
}

# ---------------------------------------------------------------------------
# etcd: 3-node cluster (Debian's etcd 3.4)
# ---------------------------------------------------------------------------
etcd_dir() { echo "$SVC_DIR/etcd/$1"; }
etcd_url() { echo "http://$HOST:${ETCD_CLIENT_PORTS[$(($1 - 1))]}"; }
etcd_all_urls() { echo "$(etcd_url 1),$(etcd_url 2),$(etcd_url 3)"; }

etcdctl_() { timeout 5 etcdctl --dial-timeout=2s --command-timeout=3s "$@"; }
# Answers at all (works without quorum): the maintenance Status RPC is served locally.
etcd_probe() { port_open "${ETCD_CLIENT_PORTS[$(($1 - 1))]}" && etcdctl_ --endpoints="$(etcd_url "$1")" endpoint status; }
# Healthy: a quorum read through this member succeeds.
etcd_healthy() { etcdctl_ --endpoints="$(etcd_url "$1")" endpoint health; }

# etcd 3.4 refuses to start on architectures other than amd64 unless told to: the
# variable that tells it (always set; amd64 ignores it).
etcd_arch_env() {
  case "$(uname -m)" in
  x86_64) echo "ETCD_UNSUPPORTED_ARCH=amd64" ;;
  aarch64) echo "ETCD_UNSUPPORTED_ARCH=arm64" ;;
  *) echo "ETCD_UNSUPPORTED_ARCH=$(dpkg --print-architecture)" ;;
  esac
}

etcd_start() {
  local n="$1" dir i cluster=""
  dir="$(etcd_dir "$n")"
  mkdir -p "$dir"
  for i in 1 2 3; do
    cluster="${cluster:+$cluster,}etcd$i=http://$HOST:${ETCD_PEER_PORTS[$((i - 1))]}"
  done
  # The --initial-* flags only matter on first start; a restarted member with an
  # existing data dir rejoins the cluster recorded there.
  spawn "$dir/etcd.pid" "$dir/etcd.log" env "$(etcd_arch_env)" etcd \
    --name "etcd$n" \
    --data-dir "$dir/data" \
    --listen-client-urls "$(etcd_url "$n")" \
    --advertise-client-urls "$(etcd_url "$n")" \
    --listen-peer-urls "http://$HOST:${ETCD_PEER_PORTS[$((n - 1))]}" \
    --initial-advertise-peer-urls "http://$HOST:${ETCD_PEER_PORTS[$((n - 1))]}" \
    --initial-cluster "$cluster" \
    --initial-cluster-state new \
    --initial-cluster-token distlock-services \
    --heartbeat-interval 100 \
    --election-timeout 1000 \
    --logger zap --log-outputs stderr
}

# ---------------------------------------------------------------------------
# PostgreSQL: one server, run as the `postgres` OS user (it refuses to run as root)
# ---------------------------------------------------------------------------
PG_DIR="$SVC_DIR/postgres"
PG_DATA="$PG_DIR/data"
PG_LOG="$PG_DIR/postgres.log"
# Unix socket paths are limited to ~107 bytes; fall back to /tmp for deep checkouts.
PG_SOCK="$PG_DIR/run"
if ((${#PG_SOCK} > 90)); then PG_SOCK="/tmp/distlock-pg-$(echo "$ROOT" | md5sum | cut -c1-8)"; fi

pg_bin() {
  local d
  d="$(printf '%s\n' /usr/lib/postgresql/*/bin | grep -v '\*' | sort -V | tail -n 1)"
  [[ -n $d ]] || die "no PostgreSQL binaries under /usr/lib/postgresql (package installed?)"
  echo "$d"
}
as_postgres() { runuser -u postgres -- "$@"; }
pg_probe() { timeout 3 "$(pg_bin)/pg_isready" -q -h "$HOST" -p "$PG_PORT"; }
pg_pid() { [[ -r "$PG_DATA/postmaster.pid" ]] && head -n 1 "$PG_DATA/postmaster.pid"; }
psql_admin() {
  as_postgres "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -d postgres "$@"
}

# The postgres user must be able to reach its data dir, but the checkout (and so
# target/) may sit under root-owned directories it cannot search. Add the search bit
# (o+x, not read) to exactly those ancestors that block it.
pg_grant_traverse() {
  local d="$1" dirs=()
  while [[ $d != / && -n $d ]]; do
    dirs=("$d" "${dirs[@]}")
    d="$(dirname "$d")"
  done
  for d in "${dirs[@]}"; do
    if ! as_postgres test -x "$d"; then
      log "chmod o+x $d (so the postgres user can reach its data directory)"
      chmod o+x "$d"
    fi
  done
}

pg_start() {
  local bin
  bin="$(pg_bin)"
  mkdir -p "$PG_DIR"
  chown postgres:postgres "$PG_DIR"
  chmod 700 "$PG_DIR"
  pg_grant_traverse "$PG_DIR"
  mkdir -p "$PG_SOCK"
  chown postgres:postgres "$PG_SOCK"
  # First start: create the cluster. Local socket: peer auth (only the postgres OS
  # user, used by this script); TCP: password (SCRAM) auth.
  if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
    log "postgres: initdb $PG_DATA"
    rm -rf "$PG_DATA"
    as_postgres "$bin/initdb" -D "$PG_DATA" -U postgres -E UTF8 --no-locale \
      --auth-local=peer --auth-host=scram-sha-256 >"$PG_DIR/initdb.log" 2>&1 ||
      {
        show_log "$PG_DIR/initdb.log"
        die "initdb failed"
      }
    echo "include_if_exists = 'distlock.conf'" >>"$PG_DATA/postgresql.conf"
  fi
  # Our settings, rewritten on every start. fsync is off: this is a throwaway test
  # server and no test crashes the machine, only processes. synchronous_commit stays
  # on: a commit is written out of postgres' memory before it is acknowledged, so a
  # killed postgres loses nothing it acknowledged (the chaos runs kill it, and a lost
  # grant would hand out its fencing token again).
  as_postgres tee "$PG_DATA/distlock.conf" >/dev/null <<EOF
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
max_connections = $MAX_CONNECTIONS
shared_buffers = 64MB
password_encryption = 'scram-sha-256'
fsync = off
synchronous_commit = on
full_page_writes = off
EOF
  # Lock files left by a killed postmaster are normally handled by postgres itself,
  # but not while that pid is a not-yet-reaped zombie (postgres then thinks it is
  # still running), so drop them when their pid is no live postgres process.
  local lockf
  for lockf in "$PG_DATA/postmaster.pid" "$PG_SOCK/.s.PGSQL.$PG_PORT.lock"; do
    if [[ -f $lockf ]] && ! pid_matches "$(head -n 1 "$lockf")" postgres; then
      log "postgres: removing stale $lockf"
      rm -f "$lockf"
    fi
  done
  # pg_ctl detaches the postmaster itself (its output goes to $PG_LOG).
  as_postgres "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -W -s start \
    </dev/null >>"$PG_DIR/pg_ctl.log" 2>&1 9>&- ||
    {
      show_log "$PG_DIR/pg_ctl.log"
      show_log "$PG_LOG"
      die "pg_ctl start failed"
    }
}

# Create (or reset) the distlock role and database. Idempotent.
pg_setup_db() {
  wait_until "postgres (unix socket)" "$PG_LOG" psql_admin -c 'select 1'
  psql_admin -f - <<EOF
SELECT format('CREATE ROLE %I LOGIN', '$DB_USER')
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER') \gexec
ALTER ROLE $DB_USER WITH LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
SELECT format('CREATE DATABASE %I OWNER %I', '$DB_NAME', '$DB_USER')
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DB_NAME') \gexec
EOF
}

# ---------------------------------------------------------------------------
# MariaDB: one server, ignoring /etc/mysql (--no-defaults), run as root
# ---------------------------------------------------------------------------
MY_DIR="$SVC_DIR/mariadb"
MY_DATA="$MY_DIR/data"
MY_LOG="$MY_DIR/mariadb.log"
MY_SOCK="$MY_DIR/mariadb.sock"
if ((${#MY_SOCK} > 100)); then MY_SOCK="/tmp/distlock-mariadb-$(echo "$ROOT" | md5sum | cut -c1-8).sock"; fi

my_bin() { # first of the given program names found on PATH (or in /usr/sbin)
  local p
  for p in "$@"; do
    if command -v "$p" >/dev/null 2>&1; then
      command -v "$p"
      return 0
    fi
    [[ -x /usr/sbin/$p ]] && echo "/usr/sbin/$p" && return 0
  done
  die "none of $* found (is mariadb-server installed?)"
}
# root@localhost authenticates by unix_socket (we are root), so no root password.
my_admin() { timeout 5 "$(my_bin mariadb-admin mysqladmin)" --no-defaults -S "$MY_SOCK" -uroot "$@"; }
my_sql() { "$(my_bin mariadb mysql)" --no-defaults -S "$MY_SOCK" -uroot; } # SQL on stdin
my_probe() { my_admin ping; }

my_start() {
  mkdir -p "$MY_DIR/tmp"
  if [[ ! -d "$MY_DATA/mysql" ]]; then
    log "mariadb: install-db $MY_DATA"
    rm -rf "$MY_DATA"
    "$(my_bin mariadb-install-db mysql_install_db)" --no-defaults --user=root \
      --datadir="$MY_DATA" --auth-root-authentication-method=socket --skip-test-db \
      >"$MY_DIR/install-db.log" 2>&1 ||
      {
        show_log "$MY_DIR/install-db.log"
        die "mariadb-install-db failed"
      }
  fi
  spawn "$MY_DIR/mariadb.pid" "$MY_LOG" "$(my_bin mariadbd mysqld)" --no-defaults \
    --user=root \
    --datadir="$MY_DATA" \
    --tmpdir="$MY_DIR/tmp" \
    --socket="$MY_SOCK" \
    --pid-file="$MY_DATA/mariadbd.pid" \
    --port="$MYSQL_PORT" \
    --bind-address="$HOST" \
    --skip-name-resolve \
    --max-connections="$MAX_CONNECTIONS" \
    --character-set-server=utf8mb4 \
    --collation-server=utf8mb4_unicode_ci \
    --innodb-buffer-pool-size=64M \
    --innodb-flush-log-at-trx-commit=2
}

# Create (or reset) the distlock user (from 127.0.0.1 and anywhere) and database.
# It may also create databases named distlock_* (e.g. one per test).
my_setup_db() {
  my_sql <<EOF
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
CREATE USER IF NOT EXISTS '$DB_USER'@'%' IDENTIFIED BY '$DB_PASSWORD';
ALTER USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
ALTER USER '$DB_USER'@'%' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_USER'@'127.0.0.1', '$DB_USER'@'%';
GRANT ALL PRIVILEGES ON \`${DB_NAME}\\_%\`.* TO '$DB_USER'@'127.0.0.1', '$DB_USER'@'%';
FLUSH PRIVILEGES;
EOF
}

# ---------------------------------------------------------------------------
# Redis Sentinel: a primary, two replicas (`replicaof`) and three sentinels
# monitoring it as `distlock` (quorum 2). Nodes 1..3 are the data nodes (1 starts
# as the primary), 4..6 the sentinels (`redis-server --sentinel`). Short
# `down-after-milliseconds` and `failover-timeout` so a failover takes seconds.
# Each node's configuration is written on its first start only: afterwards the
# sentinels own it (they rewrite it on every failover), so a restarted node
# rejoins the topology as the sentinels last left it.
# ---------------------------------------------------------------------------
SENTINEL_DATA_PORTS=(16391 16392 16393)
SENTINEL_PORTS=(26391 26392 26393)
SENTINEL_MASTER=distlock
SENTINEL_DATA_NODES=3

sentinel_dir() { echo "$SVC_DIR/redis-sentinel/$1"; }
sentinel_port() {
  if (($1 <= SENTINEL_DATA_NODES)); then
    echo "${SENTINEL_DATA_PORTS[$(($1 - 1))]}"
  else
    echo "${SENTINEL_PORTS[$(($1 - SENTINEL_DATA_NODES - 1))]}"
  fi
}
sentinel_cli() { # node, redis-cli args...
  local n="$1"
  shift
  timeout 3 redis-cli -h "$HOST" -p "$(sentinel_port "$n")" "$@"
}
sentinel_probe() { [[ "$(sentinel_cli "$1" ping 2>/dev/null)" == PONG ]]; }
sentinel_list() { # host:port of the sentinels, or of the data nodes with `data`
  local ports=("${SENTINEL_PORTS[@]}") p out=""
  [[ ${1:-} == data ]] && ports=("${SENTINEL_DATA_PORTS[@]}")
  for p in "${ports[@]}"; do out="${out:+$out,}$HOST:$p"; done
  echo "$out"
}

# One field of what sentinel node $1 knows of the primary (`SENTINEL master`).
sentinel_field() {
  sentinel_cli "$1" sentinel master "$SENTINEL_MASTER" 2>/dev/null |
    awk -v f="$2" 'NR % 2 == 1 { k = $0 } NR % 2 == 0 && k == f { print; exit }'
}

# Ready: every data node answers, and every sentinel sees a primary that is not
# down, both replicas and the two other sentinels.
sentinel_ready() {
  local n
  for ((n = 1; n <= SENTINEL_DATA_NODES; n++)); do sentinel_probe "$n" || return 1; done
  for ((n = SENTINEL_DATA_NODES + 1; n <= 6; n++)); do
    [[ "$(sentinel_field "$n" flags)" == master ]] || return 1
    [[ "$(sentinel_field "$n" num-slaves)" == 2 ]] || return 1
    [[ "$(sentinel_field "$n" num-other-sentinels)" == 2 ]] || return 1
  done
}

sentinel_data_config() {
  local n="$1" dir="$2"
  redis_base_config "$(sentinel_port "$n")" "$dir"
  echo "repl-diskless-sync-delay 0"
  ((n == 1)) || echo "replicaof $HOST ${SENTINEL_DATA_PORTS[0]}"
}

sentinel_sentinel_config() {
  local n="$1" dir="$2"
  echo "bind $HOST"
  echo "port $(sentinel_port "$n")"
  echo "daemonize no"
  echo "dir \"$dir\""
  echo 'logfile ""'
  echo "sentinel monitor $SENTINEL_MASTER $HOST ${SENTINEL_DATA_PORTS[0]} 2"
  echo "sentinel down-after-milliseconds $SENTINEL_MASTER 1000"
  echo "sentinel failover-timeout $SENTINEL_MASTER 3000"
  echo "sentinel parallel-syncs $SENTINEL_MASTER 1"
}

sentinel_start() {
  local n="$1" dir conf
  dir="$(sentinel_dir "$n")"
  mkdir -p "$dir"
  conf="$dir/redis.conf"
  if ((n <= SENTINEL_DATA_NODES)); then
    [[ -f $conf ]] || sentinel_data_config "$n" "$dir" >"$conf"
    spawn "$dir/redis.pid" "$dir/redis.log" redis-server "$conf"
  else
    [[ -f $conf ]] || sentinel_sentinel_config "$n" "$dir" >"$conf"
    spawn "$dir/redis.pid" "$dir/redis.log" redis-server "$conf" --sentinel
  fi
}

# The role (master/slave/sentinel) node $1 reports.
sentinel_role() { sentinel_cli "$1" role 2>/dev/null | head -n 1; }

# ---------------------------------------------------------------------------
# Redis Cluster: 6 nodes (`cluster-enabled yes`), 3 primaries and a replica of
# each, created once with `redis-cli --cluster create`; the cluster's state
# lives in each node's nodes.conf, so restarted nodes rejoin by themselves.
# Cluster bus ports are the client ports + 10000.
# ---------------------------------------------------------------------------
CLUSTER_PORTS=(17001 17002 17003 17004 17005 17006)

cluster_dir() { echo "$SVC_DIR/redis-cluster/$1"; }
cluster_port() { echo "${CLUSTER_PORTS[$(($1 - 1))]}"; }
cluster_cli() { # node, redis-cli args...
  local n="$1"
  shift
  timeout 3 redis-cli -h "$HOST" -p "$(cluster_port "$n")" "$@"
}
cluster_probe() { [[ "$(cluster_cli "$1" ping 2>/dev/null)" == PONG ]]; }
cluster_list() {
  local p out=""
  for p in "${CLUSTER_PORTS[@]}"; do out="${out:+$out,}$HOST:$p"; done
  echo "$out"
}
# One field of node $1's `CLUSTER INFO`.
cluster_info_field() {
  cluster_cli "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"
}
# Ready: every node sees all six and says the cluster is ok.
cluster_ready() {
  local n
  for n in 1 2 3 4 5 6; do
    [[ "$(cluster_info_field "$n" cluster_state)" == ok ]] || return 1
    [[ "$(cluster_info_field "$n" cluster_known_nodes)" == 6 ]] || return 1
  done
}

cluster_start() {
  local n="$1" dir
  dir="$(cluster_dir "$n")"
  mkdir -p "$dir"
  {
    redis_base_config "$(cluster_port "$n")" "$dir"
    echo "cluster-enabled yes"
    echo "cluster-config-file nodes.conf"
    echo "cluster-node-timeout 2000"
  } >"$dir/redis.conf"
  spawn "$dir/redis.pid" "$dir/redis.log" redis-server "$dir/redis.conf"
}

# Creates the cluster when no node knows another yet (first start, or after
# `down --wipe`); a half-formed cluster is left to the operator.
cluster_create_once() {
  local n fresh=0 addrs=() logf
  for n in 1 2 3 4 5 6; do
    [[ "$(cluster_info_field "$n" cluster_known_nodes)" == 1 ]] && fresh=$((fresh + 1))
    addrs+=("$HOST:$(cluster_port "$n")")
  done
  ((fresh == 0)) && return 0
  ((fresh == 6)) || die "redis-cluster: $fresh of 6 nodes know no other node; run \`$SCRIPT_PATH down --wipe\` and \`up\` again"
  logf="$SVC_DIR/redis-cluster/create.log"
  log "redis-cluster: creating the cluster (3 primaries, 3 replicas)"
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$logf" 2>&1 ||
    {
      show_log "$logf"
      die "redis-cli --cluster create failed"
    }
}

# ---------------------------------------------------------------------------
# Per-node dispatch: SVC N -> probe / start / stop
# ---------------------------------------------------------------------------
node_count() {
  case "$1" in
  redis) echo 6 ;;
  zookeeper) echo 3 ;;
  etcd) echo 3 ;;
  postgres | mariadb | redis-tls | zookeeper-tls | etcd-tls | postgres-tls | mariadb-tls) echo 1 ;;
  redis-sentinel | redis-cluster) echo 6 ;;
  *) die "unknown service '$1' (expected redis, zookeeper, etcd, postgres, mariadb, one of them with -tls, redis-sentinel or redis-cluster)" ;;
  esac
}
check_node() {
  local svc="$1" n="$2" max
  max="$(node_count "$svc")"
  if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > max)); then
    die "$svc node must be 1..$max, got '$n'"
  fi
}
node_label() { if [[ $1 == postgres || $1 == mariadb || $1 == *-tls ]]; then echo "$1"; else echo "$1-$2"; fi; }
node_addr() {
  case "$1" in
  redis) echo "$HOST:$(redis_port "$2")" ;;
  zookeeper) echo "$HOST:$(zk_port "$2")" ;;
  etcd) echo "$HOST:${ETCD_CLIENT_PORTS[$(($2 - 1))]}" ;;
  postgres) echo "$HOST:$PG_PORT" ;;
  mariadb) echo "$HOST:$MYSQL_PORT" ;;
  *-tls) echo "$HOST:$(tls_node_port "$1")" ;;
  redis-sentinel) echo "$HOST:$(sentinel_port "$2")" ;;
  redis-cluster) echo "$HOST:$(cluster_port "$2")" ;;
  esac
}
node_log() {
  case "$1" in
  redis) echo "$(redis_dir "$2")/redis.log" ;;
  zookeeper) echo "$(zk_dir "$2")/zookeeper.log" ;;
  etcd) echo "$(etcd_dir "$2")/etcd.log" ;;
  postgres) echo "$PG_LOG" ;;
  mariadb) echo "$MY_LOG" ;;
  *-tls) tls_node_log "$1" ;;
  redis-sentinel) echo "$(sentinel_dir "$2")/redis.log" ;;
  redis-cluster) echo "$(cluster_dir "$2")/redis.log" ;;
  esac
}
# What the process's command line must contain (guards against reused pids).
node_pattern() {
  case "$1" in
  redis | redis-sentinel | redis-cluster) echo "redis-server" ;;
  zookeeper) echo "QuorumPeerMain" ;;
  etcd) echo "etcd" ;;
  postgres) echo "postgres" ;;
  mariadb) echo "--datadir=$MY_DATA" ;;
  *-tls) tls_node_pattern "$1" ;;
  esac
}
node_pidfile() {
  case "$1" in
  redis) echo "$(redis_dir "$2")/redis.pid" ;;
  zookeeper) echo "$(zk_dir "$2")/zookeeper.pid" ;;
  etcd) echo "$(etcd_dir "$2")/etcd.pid" ;;
  postgres) echo "$PG_DATA/postmaster.pid" ;;
  mariadb) echo "$MY_DIR/mariadb.pid" ;;
  *-tls) tls_node_pidfile "$1" ;;
  redis-sentinel) echo "$(sentinel_dir "$2")/redis.pid" ;;
  redis-cluster) echo "$(cluster_dir "$2")/redis.pid" ;;
  esac
}
# Print the node's pid if its process is alive, else fail.
node_pid() {
  local f pid
  f="$(node_pidfile "$1" "$2")"
  [[ -r $f ]] || return 1
  pid="$(head -n 1 "$f")"
  pid_matches "$pid" "$(node_pattern "$1")" || return 1
  echo "$pid"
}
# Does the node answer its protocol at all?
node_probe() {
  case "$1" in
  redis) redis_probe "$2" ;;
  zookeeper) zk_probe "$2" ;;
  etcd) etcd_probe "$2" ;;
  postgres) pg_probe ;;
  mariadb) my_probe ;;
  *-tls) tls_node_probe "$1" ;;
  redis-sentinel) sentinel_probe "$2" ;;
  redis-cluster) cluster_probe "$2" ;;
  esac
}

# Start a node unless it answers already or its process is still starting up.
node_start() {
  local svc="$1" n="$2" label port
  label="$(node_label "$svc" "$n")"
  if node_probe "$svc" "$n" >/dev/null 2>&1; then
    node_pid "$svc" "$n" >/dev/null || log "$label answers but was not started by this script; leaving it alone"
    return 0
  fi
  if node_pid "$svc" "$n" >/dev/null; then
    return 0 # process alive, still starting: the caller waits for it
  fi
  port="$(node_addr "$svc" "$n")"
  port="${port##*:}"
  if port_open "$port"; then
    die "$label: port $port is in use by something else (not answering as $svc)"
  fi
  log "starting $label on $(node_addr "$svc" "$n")"
  case "$svc" in
  redis) redis_start "$n" ;;
  zookeeper) zk_start "$n" ;;
  etcd) etcd_start "$n" ;;
  postgres) pg_start ;;
  mariadb) my_start ;;
  *-tls) tls_node_start "$1" ;;
  redis-sentinel) sentinel_start "$2" ;;
  redis-cluster) cluster_start "$2" ;;
  esac
}

# Is the process in the node's pid file alive (not a zombie), whatever it runs yet?
# A node just spawned may not have exec'd its server yet on a loaded machine: its
# command line is still this script's, so node_pid would not recognise it.
node_alive() {
  local f pid state
  f="$(node_pidfile "$1" "$2")"
  [[ -r $f ]] || return 1
  pid="$(head -n 1 "$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
  [[ "$state" != Z && -n "$state" ]]
}

# Wait until a node answers; if its process died meanwhile, fail at once.
node_wait() {
  local svc="$1" n="$2" label logf start=$SECONDS
  label="$(node_label "$svc" "$n")"
  logf="$(node_log "$svc" "$n")"
  local deadline=$((start + TIMEOUT))
  until node_probe "$svc" "$n" >/dev/null 2>&1; do
    # (postgres writes its pid file a moment after pg_ctl returns: allow 5 s for that)
    if ! node_alive "$svc" "$n" && { [[ $svc != postgres* ]] || ((SECONDS > start + 5)); }; then
      show_log "$logf"
      die "$label exited during startup"
    fi
    if ((SECONDS >= deadline)); then
      show_log "$logf"
      die "$label did not answer within ${TIMEOUT}s"
    fi
    sleep 0.25
  done
}

# Stop a node: TERM = clean shutdown (wait for exit), KILL = hard kill.
node_stop() {
  local svc="$1" n="$2" sig="$3" label pid
  label="$(node_label "$svc" "$n")"
  if ! pid="$(node_pid "$svc" "$n")"; then
    log "$label is not running (no live pid)"
    return 0
  fi
  log "stopping $label (pid $pid, SIG$sig)"
  if [[ $svc == postgres* ]]; then
    if [[ $sig == TERM ]]; then
      # "fast" shutdown: disconnect clients, then exit cleanly.
      local data="$PG_DATA"
      [[ $svc == postgres-tls ]] && data="$PG_TLS_DATA"
      as_postgres "$(pg_bin)/pg_ctl" -D "$data" -m fast -w -t 60 -s stop </dev/null >&2 || true
    else
      # A crash of the whole server: kill the backends (children) too, so that
      # clients see their connections drop at once and a restart finds no process
      # still attached to the old shared memory. (postmaster.pid is left in place;
      # postgres itself handles a stale one.)
      local children child
      mapfile -t children < <(child_pids "$pid")
      kill -KILL "$pid" "${children[@]}" 2>/dev/null || true
      for child in "${children[@]}"; do stop_pid "$child" KILL 10 postgres; done
    fi
    stop_pid "$pid" "$sig" 60 "$(node_pattern "$svc")"
    return 0
  fi
  stop_pid "$pid" "$sig" 60 "$(node_pattern "$svc")"
  rm -f "$(node_pidfile "$svc" "$n")"
}

ALL_NODES=(redis:1 redis:2 redis:3 redis:4 redis:5 redis:6
  zookeeper:1 zookeeper:2 zookeeper:3 etcd:1 etcd:2 etcd:3 postgres:1 mariadb:1 "${TLS_NODES[@]}"
  redis-sentinel:1 redis-sentinel:2 redis-sentinel:3 redis-sentinel:4 redis-sentinel:5
  redis-sentinel:6 redis-cluster:1 redis-cluster:2 redis-cluster:3 redis-cluster:4
  redis-cluster:5 redis-cluster:6)

# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------
cmd_env() {
  local redis_urls="" n
  for n in 1 2 3 4 5; do
    redis_urls="${redis_urls:+$redis_urls,}redis://$HOST:$(redis_port "$n")"
  done
  cat <<EOF
export DISTLOCK_REDIS_URLS=$redis_urls
export DISTLOCK_REDIS_AUTH_URL=redis://$HOST:$(redis_port "$REDIS_AUTH_NODE")
export DISTLOCK_REDIS_AUTH_PASSWORD=$REDIS_AUTH_PASSWORD
export DISTLOCK_REDIS_ACL_USER=$REDIS_ACL_USER
export DISTLOCK_REDIS_ACL_PASSWORD=$REDIS_ACL_PASSWORD
export DISTLOCK_ZK_HOSTS=$HOST:${ZK_CLIENT_PORTS[0]},$HOST:${ZK_CLIENT_PORTS[1]},$HOST:${ZK_CLIENT_PORTS[2]}
export DISTLOCK_ETCD_ENDPOINTS=$(etcd_all_urls)
export DISTLOCK_POSTGRES_URL=postgres://$DB_USER:$DB_PASSWORD@$HOST:$PG_PORT/$DB_NAME
export DISTLOCK_MYSQL_URL=mysql://$DB_USER:$DB_PASSWORD@$HOST:$MYSQL_PORT/$DB_NAME
export DISTLOCK_SERVICES_SCRIPT=$SCRIPT_PATH
export DISTLOCK_REDIS_SENTINELS=$(sentinel_list)
export DISTLOCK_REDIS_SENTINEL_MASTER=$SENTINEL_MASTER
export DISTLOCK_REDIS_SENTINEL_DATA=$(sentinel_list data)
export DISTLOCK_REDIS_CLUSTER_NODES=$(cluster_list)
EOF
  tls_env
}

cmd_up() {
  local started=$SECONDS node svc n
  [[ $EUID -eq 0 ]] || die "run as root (PostgreSQL runs as the postgres user via runuser)"
  take_lock
  ensure_packages
  tls_certificates
  # Start everything first (in parallel), then wait for each.
  for node in "${ALL_NODES[@]}"; do
    node_start "${node%%:*}" "${node##*:}"
  done
  for node in "${ALL_NODES[@]}"; do
    svc="${node%%:*}"
    n="${node##*:}"
    node_wait "$svc" "$n"
  done
  # Clusters: wait for a quorum, not just for each process to answer.
  wait_until "zookeeper ensemble (one leader, two followers)" "$(node_log zookeeper 1)" zk_ensemble_ready
  wait_until "etcd cluster health" "$(node_log etcd 1)" \
    etcdctl_ --endpoints="$(etcd_all_urls)" endpoint health
  wait_until "redis sentinels (a primary, 2 replicas, 3 sentinels)" \
    "$(node_log redis-sentinel 4)" sentinel_ready
  cluster_create_once
  wait_until "redis cluster (cluster_state:ok on all 6 nodes)" \
    "$(node_log redis-cluster 1)" cluster_ready
  # Databases: role/user and database for the tests.
  pg_setup_db
  my_setup_db
  pg_tls_setup_db
  my_tls_setup_db
  log "all services up (took $((SECONDS - started))s)"
  echo "# Connection settings; load them with: eval \"\$($SCRIPT_PATH env)\""
  cmd_env
}

cmd_down() {
  local wipe=0 i
  [[ ${1:-} == --wipe ]] && wipe=1
  take_lock
  # Stop in reverse order, each cleanly (SIGTERM, wait; SIGKILL after 60 s).
  for ((i = ${#ALL_NODES[@]} - 1; i >= 0; i--)); do
    node_stop "${ALL_NODES[$i]%%:*}" "${ALL_NODES[$i]##*:}" TERM
  done
  if ((wipe)); then
    log "deleting $SVC_DIR"
    rm -rf "$SVC_DIR"
    [[ $PG_SOCK == /tmp/* ]] && rm -rf "$PG_SOCK"
    [[ $PG_TLS_SOCK == /tmp/* ]] && rm -rf "$PG_TLS_SOCK"
  fi
  log "all services stopped"
}

cmd_status() {
  local node svc n state pid extra rc=0
  for node in "${ALL_NODES[@]}"; do
    svc="${node%%:*}"
    n="${node##*:}"
    extra=""
    if node_probe "$svc" "$n" >/dev/null 2>&1; then state=up; else
      state=down
      rc=1
    fi
    pid="$(node_pid "$svc" "$n" 2>/dev/null || true)"
    [[ -n $pid ]] && extra="pid $pid"
    [[ $svc == redis && $n == "$REDIS_AUTH_NODE" ]] && extra="$extra (password-protected)"
    [[ $svc == *-tls ]] && extra="$extra (TLS, client certificates)"
    if [[ $svc == zookeeper && $state == up ]]; then extra="$extra mode=$(zk_mode "$n")"; fi
    if [[ $svc == redis-sentinel && $state == up ]]; then extra="$extra role=$(sentinel_role "$n")"; fi
    if [[ $svc == redis-cluster && $state == up ]]; then
      extra="$extra role=$(cluster_cli "$n" role 2>/dev/null | head -n 1)"
    fi
    printf '%-13s %-16s %-5s %s\n' "$(node_label "$svc" "$n")" "$(node_addr "$svc" "$n")" "$state" "$extra"
  done
  return $rc
}

usage() {
  sed -n '2,21p' "$SCRIPT_PATH" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
  up) cmd_up ;;
  down) cmd_down "$@" ;;
  status) cmd_status ;;
  env) cmd_env ;;
  stop-node | kill-node | start-node)
    [[ $# -eq 2 ]] || usage
    check_node "$1" "$2"
    take_lock
    case "$cmd" in
    stop-node) node_stop "$1" "$2" TERM ;;
    kill-node) node_stop "$1" "$2" KILL ;;
    start-node)
      node_start "$1" "$2"
      node_wait "$1" "$2"
      ;;
    esac
    ;;
  -h | --help | help) usage ;;
  *) usage ;;
  esac
}

main "$@"
