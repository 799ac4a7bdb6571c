# scripts/services-tls.sh — the TLS servers of scripts/services.sh (sourced by it, not run).
#
# A throw-away CA, a server certificate (SAN 127.0.0.1 and localhost) and a client
# certificate (CN distlock_tls, the SQL user that logs in by certificate) under
# target/services/tls/, made with openssl on `up` when any file is missing; a second
# throw-away CA (other-ca.pem) that signed nothing the servers use, for tests of a
# wrong CA. Then one TLS server per backend, beside the plain ones, on its own port:
#
#   redis-tls      16385  tls-port only, client certificates required (tls-auth-clients)
#   zookeeper-tls  12184  standalone, Netty secureClientPort only, ssl.clientAuth=need
#   etcd-tls       12385  single member, https, --client-cert-auth (peer 12386, plain)
#   postgres-tls   15433  ssl=on, TCP only over TLS: `distlock` by password,
#                         `distlock_tls` by client certificate (pg_hba `cert`)
#   mariadb-tls    13307  require_secure_transport: `distlock` by password,
#                         `distlock_tls` REQUIRE X509 without a password
#
# Uses the helpers and settings of scripts/services.sh (log, die, spawn, HOST, DB_*...).

TLS_DIR="$SVC_DIR/tls"
TLS_USER=distlock_tls # CN of the client certificate = the SQL user it logs in as
REDIS_TLS_PORT=16385
ZK_TLS_PORT=12184
ETCD_TLS_CLIENT_PORT=12385
ETCD_TLS_PEER_PORT=12386
PG_TLS_PORT=15433
MYSQL_TLS_PORT=13307
TLS_FILES=(ca.pem ca.key other-ca.pem other-ca.key server.pem server.key client.pem client.key zk-keystore.pem)

# ---------------------------------------------------------------------------
# Certificates (EC P-256, ten years; regenerated whole when any file is missing)
# ---------------------------------------------------------------------------
tls_new_ca() { # name, subject
  openssl req -x509 -new -noenc -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$TLS_DIR/$1.key" -out "$TLS_DIR/$1.pem" -days 3650 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

tls_new_leaf() { # name, CN, extendedKeyUsage: a key and a certificate signed by ca
  local ext="$TLS_DIR/$1.ext"
  printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=$3" >"$ext"
  openssl req -new -noenc -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$TLS_DIR/$1.key" -out "$TLS_DIR/$1.csr" -subj "/CN=$2" 2>/dev/null
  openssl x509 -req -in "$TLS_DIR/$1.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
    -CAcreateserial -out "$TLS_DIR/$1.pem" -days 3650 -extfile "$ext" 2>/dev/null
  rm -f "$TLS_DIR/$1.csr" "$ext"
}

tls_certificates() {
  local f missing=0
  for f in "${TLS_FILES[@]}"; do [[ -s $TLS_DIR/$f ]] || missing=1; done
  ((missing)) || return 0
  command -v openssl >/dev/null || die "openssl is needed to make the test certificates"
  log "tls: making a throw-away CA and certificates in $TLS_DIR"
  rm -rf "$TLS_DIR"
  mkdir -p "$TLS_DIR"
  chmod 755 "$TLS_DIR"
  tls_new_ca ca "distlock test CA" || die "openssl: cannot make the test CA"
  tls_new_ca other-ca "distlock other test CA" || die "openssl: cannot make the second CA"
  tls_new_leaf server localhost serverAuth || die "openssl: cannot make the server certificate"
  tls_new_leaf client "$TLS_USER" clientAuth || die "openssl: cannot make the client certificate"
  # ZooKeeper reads its key and certificate from one PEM "keystore".
  cat "$TLS_DIR/server.key" "$TLS_DIR/server.pem" >"$TLS_DIR/zk-keystore.pem"
  chmod 644 "$TLS_DIR"/*.pem
  chmod 600 "$TLS_DIR"/*.key "$TLS_DIR/zk-keystore.pem" # libpq refuses a client key others can read
  # TLS servers still running hold the old certificates: restart them (`up` starts them).
  local node
  for node in "${TLS_NODES[@]}"; do node_stop "${node%%:*}" "${node##*:}" TERM; done
}

# ---------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------
REDIS_TLS_DIR="$SVC_DIR/redis-tls"
redis_tls_probe() {
  [[ "$(timeout 3 redis-cli -h "$HOST" -p "$REDIS_TLS_PORT" --tls --cacert "$TLS_DIR/ca.pem" \
    --cert "$TLS_DIR/client.pem" --key "$TLS_DIR/client.key" ping 2>/dev/null)" == PONG ]]
}
redis_tls_start() {
  mkdir -p "$REDIS_TLS_DIR"
  cat >"$REDIS_TLS_DIR/redis.conf" <<EOF
bind $HOST
port 0
tls-port $REDIS_TLS_PORT
tls-cert-file "$TLS_DIR/server.pem"
tls-key-file "$TLS_DIR/server.key"
tls-ca-cert-file "$TLS_DIR/ca.pem"
tls-auth-clients yes
protected-mode yes
daemonize no
dir "$REDIS_TLS_DIR"
logfile ""
save ""
appendonly yes
appendfsync everysec
maxclients 10000
EOF
  spawn "$REDIS_TLS_DIR/redis.pid" "$REDIS_TLS_DIR/redis.log" redis-server "$REDIS_TLS_DIR/redis.conf"
}

# ---------------------------------------------------------------------------
# ZooKeeper (standalone; TLS needs the Netty connection factory)
# ---------------------------------------------------------------------------
ZK_TLS_DIR="$SVC_DIR/zookeeper-tls"
zk_tls_probe() {
  [[ "$(printf ruok | timeout 3 openssl s_client -quiet -connect "$HOST:$ZK_TLS_PORT" \
    -CAfile "$TLS_DIR/ca.pem" -cert "$TLS_DIR/client.pem" -key "$TLS_DIR/client.key" 2>/dev/null)" == imok ]]
}
# Netty's TLS handler needs two jars of the libnetty-java package that ZooKeeper's
# manifest does not list.
zk_tls_jars() {
  local j
  for j in /usr/share/java/netty-codec.jar /usr/share/java/netty-resolver.jar; do
    [[ -f $j ]] || die "$j not found (is the libnetty-java package installed?)"
  done
  echo /usr/share/java/netty-codec.jar:/usr/share/java/netty-resolver.jar
}
zk_tls_start() {
  mkdir -p "$ZK_TLS_DIR/data"
  cat >"$ZK_TLS_DIR/zoo.cfg" <<EOF
tickTime=500
minSessionTimeout=1000
maxSessionTimeout=60000
dataDir=$ZK_TLS_DIR/data
secureClientPort=$ZK_TLS_PORT
secureClientPortAddress=$HOST
serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
ssl.keyStore.location=$TLS_DIR/zk-keystore.pem
ssl.keyStore.type=PEM
ssl.trustStore.location=$TLS_DIR/ca.pem
ssl.trustStore.type=PEM
ssl.clientAuth=need
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=*
EOF
  zk_log4j "$ZK_TLS_DIR"
  spawn "$ZK_TLS_DIR/zookeeper.pid" "$ZK_TLS_DIR/zookeeper.log" \
    java -Xms32m -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData \
    -Djava.net.preferIPv4Stack=true -Dzookeeper.log.dir="$ZK_TLS_DIR" \
    -Dlog4j.configuration="file:$ZK_TLS_DIR/log4j.properties" \
    -cp "$(zk_classpath):$(zk_tls_jars)" org.apache.zookeeper.server.quorum.QuorumPeerMain "$ZK_TLS_DIR/zoo.cfg"
}

# ---------------------------------------------------------------------------
# etcd (one member)
# ---------------------------------------------------------------------------
ETCD_TLS_DIR="$SVC_DIR/etcd-tls"
etcd_tls_url() { echo "https://$HOST:$ETCD_TLS_CLIENT_PORT"; }
etcd_tls_probe() {
  port_open "$ETCD_TLS_CLIENT_PORT" && etcdctl_ --endpoints="$(etcd_tls_url)" --cacert "$TLS_DIR/ca.pem" \
    --cert "$TLS_DIR/client.pem" --key "$TLS_DIR/client.key" endpoint health
}
etcd_tls_start() {
  mkdir -p "$ETCD_TLS_DIR"
  spawn "$ETCD_TLS_DIR/etcd.pid" "$ETCD_TLS_DIR/etcd.log" env "$(etcd_arch_env)" etcd \
    --name etcd-tls --data-dir "$ETCD_TLS_DIR/data" \
    --listen-client-urls "$(etcd_tls_url)" --advertise-client-urls "$(etcd_tls_url)" \
    --listen-peer-urls "http://$HOST:$ETCD_TLS_PEER_PORT" \
    --initial-advertise-peer-urls "http://$HOST:$ETCD_TLS_PEER_PORT" \
    --initial-cluster "etcd-tls=http://$HOST:$ETCD_TLS_PEER_PORT" \
    --initial-cluster-state new --initial-cluster-token distlock-services-tls \
    --client-cert-auth --trusted-ca-file "$TLS_DIR/ca.pem" \
    --cert-file "$TLS_DIR/server.pem" --key-file "$TLS_DIR/server.key" \
    --heartbeat-interval 100 --election-timeout 1000 --logger zap --log-outputs stderr
}

# ---------------------------------------------------------------------------
# PostgreSQL (a second cluster: ssl is per server, and the plain one stays plain)
# ---------------------------------------------------------------------------
PG_TLS_DIR="$SVC_DIR/postgres-tls"
PG_TLS_DATA="$PG_TLS_DIR/data"
PG_TLS_LOG="$PG_TLS_DIR/postgres.log"
PG_TLS_SOCK="$PG_TLS_DIR/run"
if ((${#PG_TLS_SOCK} > 90)); then PG_TLS_SOCK="/tmp/distlock-pgtls-$(echo "$ROOT" | md5sum | cut -c1-8)"; fi
pg_tls_probe() { timeout 3 "$(pg_bin)/pg_isready" -q -h "$HOST" -p "$PG_TLS_PORT"; }
pg_tls_pid() { [[ -r "$PG_TLS_DATA/postmaster.pid" ]] && head -n 1 "$PG_TLS_DATA/postmaster.pid"; }
pg_tls_start() {
  local bin
  bin="$(pg_bin)"
  mkdir -p "$PG_TLS_DIR" "$PG_TLS_SOCK"
  chown postgres:postgres "$PG_TLS_DIR" "$PG_TLS_SOCK"
  chmod 700 "$PG_TLS_DIR"
  pg_grant_traverse "$PG_TLS_DIR"
  if [[ ! -f "$PG_TLS_DATA/PG_VERSION" ]]; then
    log "postgres-tls: initdb $PG_TLS_DATA"
    rm -rf "$PG_TLS_DATA"
    as_postgres "$bin/initdb" -D "$PG_TLS_DATA" -U postgres -E UTF8 --no-locale \
      --auth-local=peer --auth-host=reject >"$PG_TLS_DIR/initdb.log" 2>&1 ||
      {
        show_log "$PG_TLS_DIR/initdb.log"
        die "initdb (postgres-tls) failed"
      }
    echo "include_if_exists = 'distlock.conf'" >>"$PG_TLS_DATA/postgresql.conf"
  fi
  # The server key must belong to the postgres user and be private to it.
  install -o postgres -g postgres -m 600 "$TLS_DIR/server.key" "$PG_TLS_DATA/server.key"
  install -o postgres -g postgres -m 644 "$TLS_DIR/server.pem" "$PG_TLS_DATA/server.pem"
  install -o postgres -g postgres -m 644 "$TLS_DIR/ca.pem" "$PG_TLS_DATA/ca.pem"
  as_postgres tee "$PG_TLS_DATA/distlock.conf" >/dev/null <<EOF
listen_addresses = '$HOST'
port = $PG_TLS_PORT
unix_socket_directories = '$PG_TLS_SOCK'
max_connections = 100
shared_buffers = 16MB
password_encryption = 'scram-sha-256'
ssl = on
ssl_cert_file = 'server.pem'
ssl_key_file = 'server.key'
ssl_ca_file = 'ca.pem'
fsync = off
synchronous_commit = on
full_page_writes = off
EOF
  # TCP only over TLS: the certificate user by certificate, everyone else by password.
  as_postgres tee "$PG_TLS_DATA/pg_hba.conf" >/dev/null <<EOF
local   all  all                    peer
hostssl all  $TLS_USER 127.0.0.1/32 cert
hostssl all  all       127.0.0.1/32 scram-sha-256
EOF
  as_postgres "$bin/pg_ctl" -D "$PG_TLS_DATA" -l "$PG_TLS_LOG" -W -s start \
    </dev/null >>"$PG_TLS_DIR/pg_ctl.log" 2>&1 9>&- ||
    {
      show_log "$PG_TLS_DIR/pg_ctl.log"
      show_log "$PG_TLS_LOG"
      die "pg_ctl start (postgres-tls) failed"
    }
}
pg_tls_setup_db() {
  local psql=("$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_TLS_SOCK" -p "$PG_TLS_PORT")
  wait_until "postgres-tls (unix socket)" "$PG_TLS_LOG" as_postgres "${psql[@]}" -d postgres -c 'select 1'
  as_postgres "${psql[@]}" -d postgres -f - <<EOF
SELECT format('CREATE ROLE %I LOGIN', '$DB_USER')
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER') \gexec
ALTER ROLE $DB_USER WITH LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
SELECT format('CREATE ROLE %I LOGIN', '$TLS_USER')
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$TLS_USER') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', '$DB_NAME', '$DB_USER')
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DB_NAME') \gexec
EOF
  as_postgres "${psql[@]}" -d "$DB_NAME" -c "GRANT USAGE, CREATE ON SCHEMA public TO $TLS_USER"
}

# ---------------------------------------------------------------------------
# MariaDB (a second server, for the same reason)
# ---------------------------------------------------------------------------
MY_TLS_DIR="$SVC_DIR/mariadb-tls"
MY_TLS_DATA="$MY_TLS_DIR/data"
MY_TLS_LOG="$MY_TLS_DIR/mariadb.log"
MY_TLS_SOCK="$MY_TLS_DIR/mariadb.sock"
if ((${#MY_TLS_SOCK} > 100)); then MY_TLS_SOCK="/tmp/distlock-mariadbtls-$(echo "$ROOT" | md5sum | cut -c1-8).sock"; fi
my_tls_probe() { timeout 5 "$(my_bin mariadb-admin mysqladmin)" --no-defaults -S "$MY_TLS_SOCK" -uroot ping; }
my_tls_start() {
  mkdir -p "$MY_TLS_DIR/tmp"
  if [[ ! -d "$MY_TLS_DATA/mysql" ]]; then
    log "mariadb-tls: install-db $MY_TLS_DATA"
    rm -rf "$MY_TLS_DATA"
    "$(my_bin mariadb-install-db mysql_install_db)" --no-defaults --user=root \
      --datadir="$MY_TLS_DATA" --auth-root-authentication-method=socket --skip-test-db \
      >"$MY_TLS_DIR/install-db.log" 2>&1 ||
      {
        show_log "$MY_TLS_DIR/install-db.log"
        die "mariadb-install-db (mariadb-tls) failed"
      }
  fi
  spawn "$MY_TLS_DIR/mariadb.pid" "$MY_TLS_LOG" "$(my_bin mariadbd mysqld)" --no-defaults \
    --user=root --datadir="$MY_TLS_DATA" --tmpdir="$MY_TLS_DIR/tmp" --socket="$MY_TLS_SOCK" \
    --pid-file="$MY_TLS_DATA/mariadbd.pid" --port="$MYSQL_TLS_PORT" --bind-address="$HOST" \
    --skip-name-resolve --max-connections=100 --character-set-server=utf8mb4 \
    --collation-server=utf8mb4_unicode_ci --innodb-buffer-pool-size=16M \
    --innodb-flush-log-at-trx-commit=2 \
    --ssl-ca="$TLS_DIR/ca.pem" --ssl-cert="$TLS_DIR/server.pem" --ssl-key="$TLS_DIR/server.key" \
    --require-secure-transport=ON
}
my_tls_setup_db() {
  "$(my_bin mariadb mysql)" --no-defaults -S "$MY_TLS_SOCK" -uroot <<EOF
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
ALTER USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD' REQUIRE SSL;
CREATE USER IF NOT EXISTS '$TLS_USER'@'127.0.0.1';
ALTER USER '$TLS_USER'@'127.0.0.1' REQUIRE X509;
GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_USER'@'127.0.0.1', '$TLS_USER'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`${DB_NAME}\\_%\`.* TO '$DB_USER'@'127.0.0.1', '$TLS_USER'@'127.0.0.1';
FLUSH PRIVILEGES;
EOF
}

# ---------------------------------------------------------------------------
# What scripts/services.sh dispatches to (SVC is one of the names above, N is 1)
# ---------------------------------------------------------------------------
TLS_NODES=(redis-tls:1 zookeeper-tls:1 etcd-tls:1 postgres-tls:1 mariadb-tls:1)

tls_node_port() {
  case "$1" in
  redis-tls) echo "$REDIS_TLS_PORT" ;;
  zookeeper-tls) echo "$ZK_TLS_PORT" ;;
  etcd-tls) echo "$ETCD_TLS_CLIENT_PORT" ;;
  postgres-tls) echo "$PG_TLS_PORT" ;;
  mariadb-tls) echo "$MYSQL_TLS_PORT" ;;
  esac
}
tls_node_log() {
  case "$1" in
  redis-tls) echo "$REDIS_TLS_DIR/redis.log" ;;
  zookeeper-tls) echo "$ZK_TLS_DIR/zookeeper.log" ;;
  etcd-tls) echo "$ETCD_TLS_DIR/etcd.log" ;;
  postgres-tls) echo "$PG_TLS_LOG" ;;
  mariadb-tls) echo "$MY_TLS_LOG" ;;
  esac
}
tls_node_pattern() {
  case "$1" in
  redis-tls) echo "redis-server $HOST:$REDIS_TLS_PORT" ;;
  zookeeper-tls) echo "$ZK_TLS_DIR/zoo.cfg" ;;
  etcd-tls) echo "etcd-tls" ;;
  postgres-tls) echo "postgres" ;;
  mariadb-tls) echo "--datadir=$MY_TLS_DATA" ;;
  esac
}
tls_node_pidfile() {
  case "$1" in
  redis-tls) echo "$REDIS_TLS_DIR/redis.pid" ;;
  zookeeper-tls) echo "$ZK_TLS_DIR/zookeeper.pid" ;;
  etcd-tls) echo "$ETCD_TLS_DIR/etcd.pid" ;;
  postgres-tls) echo "$PG_TLS_DATA/postmaster.pid" ;;
  mariadb-tls) echo "$MY_TLS_DIR/mariadb.pid" ;;
  esac
}
tls_node_probe() {
  case "$1" in
  redis-tls) redis_tls_probe ;;
  zookeeper-tls) zk_tls_probe ;;
  etcd-tls) etcd_tls_probe ;;
  postgres-tls) pg_tls_probe ;;
  mariadb-tls) my_tls_probe ;;
  esac
}
tls_node_start() {
  case "$1" in
  redis-tls) redis_tls_start ;;
  zookeeper-tls) zk_tls_start ;;
  etcd-tls) etcd_tls_start ;;
  postgres-tls) pg_tls_start ;;
  mariadb-tls) my_tls_start ;;
  esac
}

tls_env() {
  cat <<EOF
export DISTLOCK_TLS_CA=$TLS_DIR/ca.pem
export DISTLOCK_TLS_CERT=$TLS_DIR/client.pem
export DISTLOCK_TLS_KEY=$TLS_DIR/client.key
export DISTLOCK_TLS_OTHER_CA=$TLS_DIR/other-ca.pem
export DISTLOCK_TLS_CERT_USER=$TLS_USER
export DISTLOCK_REDIS_TLS_URL=rediss://$HOST:$REDIS_TLS_PORT
export DISTLOCK_ZK_TLS_HOSTS=$HOST:$ZK_TLS_PORT
export DISTLOCK_ETCD_TLS_ENDPOINTS=$(etcd_tls_url)
export DISTLOCK_POSTGRES_TLS_URL=postgres://$DB_USER:$DB_PASSWORD@$HOST:$PG_TLS_PORT/$DB_NAME
export DISTLOCK_MYSQL_TLS_URL=mysql://$DB_USER:$DB_PASSWORD@$HOST:$MYSQL_TLS_PORT/$DB_NAME
EOF
}
