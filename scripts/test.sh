#!/usr/bin/env bash
# scripts/test.sh — the project's single test command (CI runs it through .ci/run).
#
# Phases, stopping at the first one that fails (non-zero exit):
#   1. services  scripts/services.sh up, then load its settings (DISTLOCK_* variables)
#   2. fmt       cargo fmt --all -- --check
#   3. clippy    cargo clippy --workspace --all-targets --all-features -- -D warnings
#   4. tests     the tests of cargo test --workspace --all-features, except tests named
#                faults_*: built once, then run in two lanes at once (run_tests)
#   5. faults    the fault-injection tests (named faults_*), one at a time: they stop
#                and restart servers through scripts/services.sh, so they must not
#                run concurrently with each other (or with the other tests)
#   6. chaos     `distlock chaos` on every backend shared between processes: client
#                processes killed, paused and cut off, server nodes killed and restarted;
#                fails on any overlap, falling fencing token, stale write accepted or
#                loss not signalled (docs/reliability.md); SQLite's alone, then the
#                others in three lanes at once, the runs on the same servers one after
#                another (run_chaos)
#   7. examples  every example program, each of which checks its own outcome and
#                exits non-zero when its invariant breaks
# Then prints one summary line over both test phases: "tests: N passed, N failed, N skipped".
#
# The servers are left running afterwards (a rerun is then quick); stop them with
# `scripts/services.sh down`. Works from any directory. Installs nothing itself
# beyond what scripts/services.sh installs (the Debian packages for the servers).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LOG_DIR="$ROOT/target/test-logs"
mkdir -p "$LOG_DIR"

PASSED=0
FAILED=0
IGNORED=0

banner() { printf '\n==================== %s ====================\n' "$*"; }

# The build's size and the disk space left (a full disk fails a build in odd ways).
disk() {
  local used avail
  used="$(du -sh "$ROOT/target" 2>/dev/null | cut -f1)"
  avail="$(df -h --output=avail "$ROOT" 2>/dev/null | tail -1 | tr -d ' ')"
  echo "target ${used:-?}, ${avail:-?} free"
}

# Run one phase with a banner and its elapsed time; exit if it fails.
phase() {
  local name="$1" start=$SECONDS rc=0
  shift
  banner "$name"
  "$@" || rc=$?
  if ((rc != 0)); then
    echo "---- phase '$name' FAILED (exit code $rc) after $((SECONDS - start))s; $(disk)"
    exit "$rc"
  fi
  echo "---- phase '$name' ok ($((SECONDS - start))s; $(disk))"
}

# Print the summary line over all test phases run so far.
summary() { echo "tests: $PASSED passed, $FAILED failed, $IGNORED skipped"; }

# Adds the counts of a log's "test result:" lines to the totals.
count_results() {
  local line
  while read -r line; do
    [[ $line =~ ([0-9]+)\ passed\;\ ([0-9]+)\ failed\;\ ([0-9]+)\ ignored ]] || continue
    PASSED=$((PASSED + BASH_REMATCH[1]))
    FAILED=$((FAILED + BASH_REMATCH[2]))
    IGNORED=$((IGNORED + BASH_REMATCH[3]))
  done < <(grep '^test result:' "$1" || true)
}

# cargo test, output also kept in target/test-logs/<name>.log; adds the counts of
# its "test result:" lines to the totals (also when it fails).
cargo_test() {
  local name="$1" rc=0
  shift
  cargo test "$@" 2>&1 | tee "$LOG_DIR/$name.log" || rc=$?
  count_results "$LOG_DIR/$name.log"
  if ((rc != 0)); then summary; fi
  return "$rc"
}

# Lanes: commands run at once in the background, each one's output kept whole in
# target/test-logs/<lane>.log and printed when every lane has ended.
LANES=()
start_lane() {
  local name="$1"
  shift
  "$@" >"$LOG_DIR/$name.log" 2>&1 &
  LANES+=("$name:$!")
}

# Waits for every lane started, then prints each one's output in the order started.
# Fails if any lane failed.
finish_lanes() {
  local lane rc=0
  for lane in "${LANES[@]}"; do
    wait "${lane#*:}" || rc=1
  done
  for lane in "${LANES[@]}"; do
    echo "-- lane ${lane%%:*}"
    cat "$LOG_DIR/${lane%%:*}.log"
  done
  LANES=()
  return "$rc"
}

# The tests phase: every test binary of the workspace (and the doc tests), except
# tests named faults_*, as `cargo test --workspace --all-features` runs them, but in
# two lanes at once once built: the SQL and ZooKeeper crates' binaries and the doc
# tests in one, every other crate's in the other (most of a test's time waits on a
# server, a ttl or a timeout). Each binary runs in its package's directory, as cargo
# runs it. A lane goes on past a failing binary; each lane's output is printed whole
# when both have ended, and kept in target/test-logs/tests-sql.log and tests-rest.log.
run_tests() {
  local built="$LOG_DIR/tests-built.txt" rc=0
  cargo test --workspace --all-features --no-run --message-format=json-render-diagnostics \
    | grep '"profile":{[^}]*"test":true' \
    | sed -n 's/.*"manifest_path":"\([^"]*\)\/Cargo.toml".*"executable":"\([^"]*\)".*/\1 \2/p' \
      >"$built" || return
  [[ -s $built ]] || { echo "no test binary was built"; return 1; }
  grep -E '/crates/distlock-(sql|zookeeper) ' "$built" >"$LOG_DIR/tests-sql.txt" || true
  grep -v -E '/crates/distlock-(sql|zookeeper) ' "$built" >"$LOG_DIR/tests-rest.txt" || true
  start_lane tests-sql test_lane "$LOG_DIR/tests-sql.txt" doc
  start_lane tests-rest test_lane "$LOG_DIR/tests-rest.txt"
  finish_lanes || rc=1
  count_results "$LOG_DIR/tests-sql.log"
  count_results "$LOG_DIR/tests-rest.log"
  if ((rc != 0)); then summary; fi
  return "$rc"
}

# One lane of the tests phase: the binaries listed in file $1 ("<package dir>
# <executable>" lines), then the doc tests if $2 is `doc`. Fails if any failed.
test_lane() {
  local rc=0 dir exe start=$SECONDS
  while read -r dir exe; do
    echo "     Running $exe (in $dir)"
    (cd "$dir" && "$exe" --skip faults_) || rc=1
  done <"$1"
  if [[ ${2:-} == doc ]]; then
    cargo test --workspace --all-features --no-fail-fast --doc -- --skip faults_ || rc=1
  fi
  echo "-- lane done in $((SECONDS - start)) s"
  return "$rc"
}

services_up() {
  # (explicit `|| return`: errexit is off inside a function called from `phase`)
  scripts/services.sh up || return
  # Loaded into this shell so that every later phase (and the tests) sees the settings.
  local settings
  settings="$(scripts/services.sh env)" || return
  eval "$settings"
}

trap 'echo; echo "(servers left running; stop them with: $ROOT/scripts/services.sh down)"' EXIT

# Tests treat a missing server as a failure when CI is set; pass it through. A CI
# build is built once: incremental compilation's caches would only take disk space.
if [[ -n ${CI:-} ]]; then
  export CI
  export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi

phase services services_up

# The etcd client crate's build script compiles .proto files with protoc
# (installed by services.sh as protobuf-compiler).
if command -v protoc >/dev/null 2>&1; then
  PROTOC="$(command -v protoc)"
  export PROTOC
fi

cargo --version
phase fmt cargo fmt --all -- --check
phase clippy cargo clippy --workspace --all-targets --all-features -- -D warnings
phase tests run_tests
# Fault-injection tests: every test whose name contains "faults_", serially.
# The SQL load tests hold 10 000 locks per database and strategy this long.
export DISTLOCK_HOLD_SECS="${DISTLOCK_HOLD_SECS:-60}"
phase faults cargo_test faults --workspace --all-features --no-fail-fast faults_ -- --test-threads=1

# A short chaos run per backend: DISTLOCK_CHAOS_ACQUISITIONS (2,000 by default) and
# every fault kind at least once. The backends whose waiters queue (SQL table strategy
# on MySQL and SQLite, ZooKeeper, etcd) run with a 100 ms waiter-liveness window, as
# docs/reliability.md advises where waiters die often; Redis detects a dead waiter by
# its closed connection. The runner prints each URL without its password.
# SQLite's run goes first, alone: beside the servers' runs it once took over 5 minutes
# instead of about one (its clients commit to a file; why it slowed so is not known).
# Then the others go in three lanes at once (a run keeps about half a core busy; most
# of its time waits out ttls, pauses and restarts). Runs against the same servers
# share a lane, one after another: a `nodes` fault kills and restarts its backend's
# servers, and Redlock's instances include the single Redis's. Each lane's output is
# printed whole when all have ended, and kept in target/test-logs/chaos-<lane>.log.
run_chaos() {
  local hosts window="waiter_timeout=100ms"
  hosts="${DISTLOCK_REDIS_URLS//redis:\/\//}"
  cargo build --quiet -p distlock-cli --all-features || return
  chaos_lane "sqlite://$ROOT/target/chaos-locks.db?$window" || return
  start_lane chaos-postgres chaos_lane "$DISTLOCK_POSTGRES_URL" \
    "$DISTLOCK_POSTGRES_URL?strategy=table" "zk://$DISTLOCK_ZK_HOSTS?session_timeout=2s&$window"
  start_lane chaos-mariadb chaos_lane "$DISTLOCK_MYSQL_URL" \
    "$DISTLOCK_MYSQL_URL?strategy=table&$window"
  start_lane chaos-redis chaos_lane "${DISTLOCK_REDIS_URLS%%,*}" "redlock://$hosts" \
    "etcd://${DISTLOCK_ETCD_ENDPOINTS//http:\/\//}?session_timeout=2s&$window"
  finish_lanes
}

# One chaos lane: its runs one after another, stopping at the first that fails.
chaos_lane() {
  local url start
  for url in "$@"; do
    start=$SECONDS
    cargo run --quiet -p distlock-cli --all-features -- chaos --backend "$url" \
      --acquisitions "${DISTLOCK_CHAOS_ACQUISITIONS:-2000}" --hold-max 5ms --max-duration 10m || return
    echo "-- chaos run done in $((SECONDS - start)) s"
  done
}

# The seed scenarios, run as users run them; each verifies its own outcome.
run_examples() {
  local example
  for example in contribution inventory scheduler_handoff redlock_failover handler_pool cache_refresh leader_election transfer; do
    echo "-- example $example"
    cargo run --quiet --all-features --example "$example" || return
  done
  echo "-- example contribution on PostgreSQL"
  cargo run --quiet --all-features --example contribution -- \
    --backend "$DISTLOCK_POSTGRES_URL" --messages 100 || return
  echo "-- example contribution with the total in Redis (fenced writes, locked by Redis)"
  cargo run --quiet --all-features --example contribution -- \
    --store "${DISTLOCK_REDIS_URLS%%,*}" --messages 100 || return
  # The semaphore and reader-writer scenarios on Redis too (the first instance).
  for example in handler_pool cache_refresh leader_election transfer; do
    echo "-- example $example on Redis"
    cargo run --quiet --all-features --example "$example" -- \
      --url "${DISTLOCK_REDIS_URLS%%,*}" || return
  done
  echo "-- example leader_election on etcd and on ZooKeeper"
  cargo run --quiet --all-features --example leader_election -- \
    --url "etcd://${DISTLOCK_ETCD_ENDPOINTS//http:\/\//}" || return
  cargo run --quiet --all-features --example leader_election -- \
    --url "zk://$DISTLOCK_ZK_HOSTS" || return
}
phase chaos run_chaos
phase examples run_examples

summary
