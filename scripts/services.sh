#!/usr/bin/env bash
# Start, stop and inspect the Redis and PostgreSQL servers of the production profile, and the Redis
# Cluster of the cluster profile.
#
#   scripts/services.sh up|down|status
#
# All run from the OS packages (apt-get install -y redis-server postgresql), listen on 127.0.0.1 only,
# and keep their data and logs under the repo's git-ignored var/services/{redis,redis-cluster,postgres}.
# Ports, the PostgreSQL role, password and database, and the Redis password come from SETLIST_REDIS_URL
# and SETLIST_DATABASE_URL (the same defaults as setlist/settings.py), in the environment or the settings
# file (SETLIST_SETTINGS_FILE, read through .venv's Python). Every action is idempotent.
#
# The Redis Cluster (the cluster profile's online store) is three or more masters without replicas, on
# the ports of SETLIST_REDIS_CLUSTER_NODES (default 127.0.0.1:7001,7002,7003; each node's cluster bus
# takes its port + 10000), with the Redis password if SETLIST_REDIS_URL has one. It is started only when
# asked for: SETLIST_PROFILE=cluster (`SETLIST_PROFILE=cluster make services`) or
# SETLIST_SERVICES_CLUSTER=1; the production profile does not need it, and its ports stay free. The
# first start creates the cluster (redis-cli --cluster create), later ones let the nodes rejoin from
# their nodes.conf, and `up` returns once every node says cluster_state:ok. The nodes run with
# cluster-require-full-coverage no: when a master dies, the others keep serving their slots
# (docs/redis-cluster.md). `down` stops whatever of it runs, asked for or not.
#
# PostgreSQL refuses to run as root: as root, its files belong to, and its commands run as, an
# unprivileged user (SETLIST_PG_OS_USER, default `postgres`, which the Debian package creates).
#
# Optional: SETLIST_SERVICES_DIR (default <repo>/var/services), SETLIST_SERVICES_TIMEOUT (seconds to
# wait for readiness, default 30), SETLIST_PG_BIN (directory holding initdb/pg_ctl),
# SETLIST_SERVICES_CLUSTER (1: start the Redis Cluster too; 0: never; unset: with SETLIST_PROFILE=cluster).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A settings file is read by Python, as by every command: its profile and URLs count here too (the
# environment still wins over it).
if [[ -n "${SETLIST_SETTINGS_FILE:-}" ]]; then
  [[ -x "$ROOT/.venv/bin/python" ]] || { printf 'services: SETLIST_SETTINGS_FILE is set and only Python reads it: run make setup first\n' >&2; exit 1; }
  resolved="$(PYTHONPATH="$ROOT" "$ROOT/.venv/bin/python" -m setlist.settings \
    SETLIST_PROFILE SETLIST_REDIS_URL SETLIST_DATABASE_URL SETLIST_REDIS_CLUSTER_NODES)" || exit $?
  eval "$resolved"
fi
STATE="${SETLIST_SERVICES_DIR:-$ROOT/var/services}"
REDIS_URL="${SETLIST_REDIS_URL:-redis://127.0.0.1:6379/0}"
DATABASE_URL="${SETLIST_DATABASE_URL:-postgresql://setlist:setlist@127.0.0.1:5432/setlist}"
TIMEOUT="${SETLIST_SERVICES_TIMEOUT:-30}"
PG_OS_USER="${SETLIST_PG_OS_USER:-postgres}"
INSTALL_HINT="install them with: apt-get install -y redis-server postgresql"
CLUSTER_NODES="${SETLIST_REDIS_CLUSTER_NODES:-127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003}"
if [[ "${SETLIST_PROFILE:-}" == "cluster" ]]; then WITH_CLUSTER="${SETLIST_SERVICES_CLUSTER:-1}"; else WITH_CLUSTER="${SETLIST_SERVICES_CLUSTER:-0}"; fi
CLUSTER_NODE_TIMEOUT_MS=5000

REDIS_DIR="$STATE/redis"
REDIS_PIDFILE="$REDIS_DIR/redis.pid"
REDIS_LOG="$REDIS_DIR/redis.log"
CLUSTER_DIR="$STATE/redis-cluster"
PG_DIR="$STATE/postgres"
PG_DATA="$PG_DIR/data"
PG_RUN="$PG_DIR/run"
PG_LOG="$PG_DIR/postgres.log"

say() { printf '%s\n' "$*"; }
die() { printf 'services: %s\n' "$*" >&2; exit 1; }

# --- configuration from the URLs --------------------------------------------------------------------
is_loopback() { [[ "$1" == "127.0.0.1" || "$1" == "localhost" ]]; }

parse_urls() {
  local re_redis='^rediss?://(([^:@/]*)(:([^@/]*))?@)?([^:/@]*)(:([0-9]+))?(/[0-9]*)?$'
  [[ "$REDIS_URL" =~ $re_redis ]] || die "cannot parse SETLIST_REDIS_URL=$REDIS_URL (expected redis://[:password@]127.0.0.1:PORT/DB)"
  REDIS_PASSWORD="${BASH_REMATCH[4]}"
  REDIS_HOST="${BASH_REMATCH[5]:-127.0.0.1}"
  REDIS_PORT="${BASH_REMATCH[7]:-6379}"
  is_loopback "$REDIS_HOST" || die "SETLIST_REDIS_URL points at $REDIS_HOST; this script only starts local servers on 127.0.0.1"

  local re_pg='^postgres(ql)?(\+[a-z0-9]+)?://([^:@/]+)(:([^@/]*))?@([^:/@]*)(:([0-9]+))?/([^/?]+)(\?.*)?$'
  [[ "$DATABASE_URL" =~ $re_pg ]] || die "cannot parse SETLIST_DATABASE_URL=$DATABASE_URL (expected postgresql://USER:PASSWORD@127.0.0.1:PORT/DB)"
  PG_USER="${BASH_REMATCH[3]}"
  PG_PASSWORD="${BASH_REMATCH[5]}"
  PG_HOST="${BASH_REMATCH[6]:-127.0.0.1}"
  PG_PORT="${BASH_REMATCH[8]:-5432}"
  PG_DB="${BASH_REMATCH[9]}"
  is_loopback "$PG_HOST" || die "SETLIST_DATABASE_URL points at $PG_HOST; this script only starts local servers on 127.0.0.1"
  [[ -n "$PG_PASSWORD" ]] || die "SETLIST_DATABASE_URL needs a password: the server only accepts password logins over TCP"

  CLUSTER_PORTS=()
  local node nodes
  IFS=',' read -r -a nodes <<<"$CLUSTER_NODES"
  for node in "${nodes[@]}"; do
    node="${node//[[:space:]]/}"
    [[ -n "$node" ]] || continue
    [[ "$node" =~ ^([^:]+):([0-9]+)$ ]] || die "cannot parse '$node' in SETLIST_REDIS_CLUSTER_NODES=$CLUSTER_NODES (expected 127.0.0.1:PORT,127.0.0.1:PORT,…)"
    is_loopback "${BASH_REMATCH[1]}" || die "SETLIST_REDIS_CLUSTER_NODES names $node; this script only starts local servers on 127.0.0.1"
    (( BASH_REMATCH[2] > 0 && BASH_REMATCH[2] + 10000 <= 65535 )) || die "SETLIST_REDIS_CLUSTER_NODES: port ${BASH_REMATCH[2]} leaves no room for its cluster bus port (port + 10000)"
    CLUSTER_PORTS+=("${BASH_REMATCH[2]}")
  done
  [[ "$WITH_CLUSTER" != "1" ]] || (( ${#CLUSTER_PORTS[@]} >= 3 )) \
    || die "a Redis Cluster needs at least 3 masters; SETLIST_REDIS_CLUSTER_NODES=$CLUSTER_NODES names ${#CLUSTER_PORTS[@]}"
}

# --- binaries -----------------------------------------------------------------------------------------
find_redis() {
  REDIS_SERVER="$(command -v redis-server || true)"
  REDIS_CLI="$(command -v redis-cli || true)"
  [[ -n "$REDIS_SERVER" && -n "$REDIS_CLI" ]] || die "redis-server/redis-cli not found; $INSTALL_HINT"
}

find_postgres() {
  local dir candidates=()
  [[ -n "${SETLIST_PG_BIN:-}" ]] && candidates+=("$SETLIST_PG_BIN")
  if command -v pg_ctl >/dev/null 2>&1; then candidates+=("$(dirname "$(readlink -f "$(command -v pg_ctl)")")"); fi
  # Debian/Ubuntu keep the server binaries off PATH; prefer the newest installed major version.
  while IFS= read -r dir; do candidates+=("$dir"); done < <(
    ls -d /usr/lib/postgresql/*/bin /usr/pgsql-*/bin 2>/dev/null | sort -V -r)
  for dir in "${candidates[@]}"; do
    if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]]; then
      PG_BIN="$dir"
      PG_ISREADY="$dir/pg_isready"; [[ -x "$PG_ISREADY" ]] || PG_ISREADY="$(command -v pg_isready || true)"
      PSQL="$dir/psql"; [[ -x "$PSQL" ]] || PSQL="$(command -v psql || true)"
      [[ -n "$PG_ISREADY" && -n "$PSQL" ]] || die "pg_isready/psql not found next to $dir; $INSTALL_HINT"
      return 0
    fi
  done
  die "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or in /usr/lib/postgresql/*/bin; $INSTALL_HINT (or set SETLIST_PG_BIN)"
}

# Run a PostgreSQL command as the unprivileged owner when we are root, directly otherwise.
as_pg() {
  if [[ $EUID -ne 0 ]]; then "$@"; return; fi
  if command -v runuser >/dev/null 2>&1; then runuser -u "$PG_OS_USER" -- "$@"; return; fi
  su -s /bin/sh "$PG_OS_USER" -c "$(printf '%q ' "$@")"
}

check_pg_user() {
  [[ $EUID -ne 0 ]] && return 0
  id -u "$PG_OS_USER" >/dev/null 2>&1 || die "running as root, PostgreSQL needs an unprivileged OS user '$PG_OS_USER' (the postgresql package creates it: apt-get install -y postgresql; or set SETLIST_PG_OS_USER)"
}

# A daemonized server killed with -9 may stay a zombie (where nothing reaps orphans, as in some
# containers): kill -0 still succeeds on it, so a zombie counts as gone.
pid_alive() { kill -0 "$1" 2>/dev/null && [[ "$(ps -o stat= -p "$1" 2>/dev/null)" != Z* ]]; }
pid_gone() { ! pid_alive "$1"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1; }

wait_until() {  # wait_until COMMAND...: poll COMMAND every 0.2 s for at most $TIMEOUT seconds
  local deadline=$((SECONDS + TIMEOUT))
  until "$@"; do
    (( SECONDS < deadline )) || return 1
    sleep 0.2
  done
}

# --- Redis -------------------------------------------------------------------------------------------
redis_pid() {
  [[ -f "$REDIS_PIDFILE" ]] || return 1
  local pid; pid="$(cat "$REDIS_PIDFILE" 2>/dev/null)"
  [[ -n "$pid" ]] && pid_alive "$pid" && printf '%s' "$pid"
}

redis_ping() {
  [[ "$(REDISCLI_AUTH="$REDIS_PASSWORD" "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == "PONG" ]]
}

redis_up() {
  local pid
  if pid="$(redis_pid)"; then
    wait_until redis_ping || die "redis: pid $pid is running but 127.0.0.1:$REDIS_PORT does not answer PING; see $REDIS_LOG"
    say "redis: already running on 127.0.0.1:$REDIS_PORT (pid $pid)"; return 0
  fi
  if port_open "$REDIS_PORT"; then
    die "redis: port $REDIS_PORT is taken by another process (a system redis-server? stop it with 'service redis-server stop', or set SETLIST_REDIS_URL to another port)"
  fi
  mkdir -p "$REDIS_DIR"
  rm -f "$REDIS_PIDFILE"
  local args=(--bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes --dir "$REDIS_DIR"
              --daemonize yes --pidfile "$REDIS_PIDFILE" --logfile "$REDIS_LOG"
              --appendonly yes --appendfsync everysec --save "")
  if [[ -n "$REDIS_PASSWORD" ]]; then
    # Through stdin, so the password never shows in the process list.
    printf 'requirepass "%s"\n' "$REDIS_PASSWORD" | "$REDIS_SERVER" - "${args[@]}" >/dev/null
  else
    "$REDIS_SERVER" "${args[@]}" >/dev/null
  fi
  if ! wait_until redis_ping; then
    tail -n 20 "$REDIS_LOG" >&2 2>/dev/null || true
    die "redis: not ready on 127.0.0.1:$REDIS_PORT after ${TIMEOUT}s; see $REDIS_LOG"
  fi
  say "redis: started on 127.0.0.1:$REDIS_PORT (pid $(redis_pid), data and log in $REDIS_DIR)"
}

redis_down() {
  local pid
  if ! pid="$(redis_pid)"; then rm -f "$REDIS_PIDFILE"; say "redis: not running"; return 0; fi
  REDISCLI_AUTH="$REDIS_PASSWORD" "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" shutdown >/dev/null 2>&1 \
    || kill -TERM "$pid" 2>/dev/null || true
  if ! wait_until pid_gone "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
    say "redis: did not stop within ${TIMEOUT}s; killed pid $pid"
  fi
  rm -f "$REDIS_PIDFILE"
  say "redis: stopped"
}

redis_status() {
  local pid
  if pid="$(redis_pid)" && redis_ping; then say "redis: running on 127.0.0.1:$REDIS_PORT (pid $pid)"; return 0; fi
  if [[ -n "${pid:-}" ]]; then say "redis: pid $pid exists but does not answer PING on 127.0.0.1:$REDIS_PORT"; return 1; fi
  say "redis: stopped"; return 1
}

# --- Redis Cluster -----------------------------------------------------------------------------------
cnode_dir() { printf '%s/%s' "$CLUSTER_DIR" "$1"; }

cnode_pid() {
  local pidfile; pidfile="$(cnode_dir "$1")/redis.pid"
  [[ -f "$pidfile" ]] || return 1
  local pid; pid="$(cat "$pidfile" 2>/dev/null)"
  [[ -n "$pid" ]] && pid_alive "$pid" && printf '%s' "$pid"
}

ccli() {  # ccli PORT ARGS...: redis-cli against one cluster node (no redirections followed)
  local port="$1"; shift
  REDISCLI_AUTH="$REDIS_PASSWORD" "$REDIS_CLI" -h 127.0.0.1 -p "$port" "$@" 2>/dev/null
}

cnode_ping() { [[ "$(ccli "$1" ping)" == "PONG" ]]; }

cinfo() {  # cinfo PORT FIELD: one field of the node's CLUSTER INFO
  ccli "$1" cluster info | tr -d '\r' | sed -n "s/^$2://p"
}

cluster_ok() {  # every node: cluster_state:ok, knows every master, all 16384 slots assigned
  local port n="${#CLUSTER_PORTS[@]}"
  for port in "${CLUSTER_PORTS[@]}"; do
    [[ "$(cinfo "$port" cluster_state)" == "ok" ]] || return 1
    [[ "$(cinfo "$port" cluster_known_nodes)" == "$n" ]] || return 1
    [[ "$(cinfo "$port" cluster_slots_assigned)" == "16384" ]] || return 1
  done
}

cluster_fresh() {  # no node has met another or owns a slot: the cluster was never created
  local port
  for port in "${CLUSTER_PORTS[@]}"; do
    [[ "$(cinfo "$port" cluster_known_nodes)" == "1" && "$(cinfo "$port" cluster_slots_assigned)" == "0" ]] || return 1
  done
}

cnode_start() {
  local port="$1" dir; dir="$(cnode_dir "$port")"
  if port_open "$port"; then
    die "redis cluster: port $port is taken by another process (set SETLIST_REDIS_CLUSTER_NODES to other ports, or SETLIST_SERVICES_CLUSTER=0)"
  fi
  if port_open $((port + 10000)); then
    die "redis cluster: the cluster bus port $((port + 10000)) of node $port is taken by another process (set SETLIST_REDIS_CLUSTER_NODES to other ports)"
  fi
  mkdir -p "$dir"
  rm -f "$dir/redis.pid"
  local args=(--bind 127.0.0.1 --port "$port" --protected-mode yes --dir "$dir"
              --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
              --appendonly yes --appendfsync everysec --save ""
              --cluster-enabled yes --cluster-config-file nodes.conf
              --cluster-node-timeout "$CLUSTER_NODE_TIMEOUT_MS" --cluster-require-full-coverage no)
  if [[ -n "$REDIS_PASSWORD" ]]; then
    # Through stdin, so the password never shows in the process list (masterauth: for replicas added later).
    printf 'requirepass "%s"\nmasterauth "%s"\n' "$REDIS_PASSWORD" "$REDIS_PASSWORD" | "$REDIS_SERVER" - "${args[@]}" >/dev/null
  else
    "$REDIS_SERVER" "${args[@]}" >/dev/null
  fi
  if ! wait_until cnode_ping "$port"; then
    tail -n 20 "$dir/redis.log" >&2 2>/dev/null || true
    die "redis cluster: node $port not ready after ${TIMEOUT}s; see $dir/redis.log"
  fi
}

cluster_up() {
  local port pid started=()
  for port in "${CLUSTER_PORTS[@]}"; do
    if pid="$(cnode_pid "$port")"; then
      wait_until cnode_ping "$port" \
        || die "redis cluster: pid $pid is running but 127.0.0.1:$port does not answer PING; see $(cnode_dir "$port")/redis.log"
    else
      cnode_start "$port"
      started+=("$port")
    fi
  done
  local where; where="$(printf '127.0.0.1:%s,' "${CLUSTER_PORTS[@]}")"; where="${where%,}"
  if [[ ${#started[@]} -eq 0 ]] && cluster_ok; then
    say "redis cluster: already running, cluster_state:ok on $where"; return 0
  fi
  if cluster_fresh; then
    local hosts=(); for port in "${CLUSTER_PORTS[@]}"; do hosts+=("127.0.0.1:$port"); done
    # REDISCLI_AUTH only with a password: --cluster sends AUTH whenever it is set, even empty
    if ! ( if [[ -n "$REDIS_PASSWORD" ]]; then export REDISCLI_AUTH="$REDIS_PASSWORD"; else unset REDISCLI_AUTH; fi
           exec "$REDIS_CLI" --cluster create "${hosts[@]}" --cluster-replicas 0 --cluster-yes ) \
        >"$CLUSTER_DIR/create.log" 2>&1; then
      tail -n 20 "$CLUSTER_DIR/create.log" >&2 || true
      die "redis cluster: redis-cli --cluster create failed; see $CLUSTER_DIR/create.log"
    fi
    say "redis cluster: created, ${#CLUSTER_PORTS[@]} masters and no replicas, the 16384 slots split evenly"
  fi
  if ! wait_until cluster_ok; then
    for port in "${CLUSTER_PORTS[@]}"; do
      say "  127.0.0.1:$port cluster_state=$(cinfo "$port" cluster_state) known_nodes=$(cinfo "$port" cluster_known_nodes) slots_assigned=$(cinfo "$port" cluster_slots_assigned)" >&2
    done
    die "redis cluster: not cluster_state:ok after ${TIMEOUT}s (a node's data lost? 'scripts/services.sh down', then removing $CLUSTER_DIR recreates it, empty)"
  fi
  if [[ ${#started[@]} -gt 0 ]]; then
    say "redis cluster: started node(s) ${started[*]}; cluster_state:ok on $where (data and logs in $CLUSTER_DIR)"
  else
    say "redis cluster: running, cluster_state:ok on $where"
  fi
}

cluster_down() {
  [[ -d "$CLUSTER_DIR" ]] || return 0  # never started here
  local port pid any=0
  for port in "${CLUSTER_PORTS[@]}"; do
    if ! pid="$(cnode_pid "$port")"; then rm -f "$(cnode_dir "$port")/redis.pid"; continue; fi
    any=1
    ccli "$port" shutdown >/dev/null || kill -TERM "$pid" 2>/dev/null || true
    if ! wait_until pid_gone "$pid"; then
      kill -KILL "$pid" 2>/dev/null || true
      say "redis cluster: node $port did not stop within ${TIMEOUT}s; killed pid $pid"
    fi
    rm -f "$(cnode_dir "$port")/redis.pid"
  done
  if (( any )); then say "redis cluster: stopped"; else say "redis cluster: not running"; fi
}

cluster_any_running() {
  local port
  for port in "${CLUSTER_PORTS[@]}"; do cnode_pid "$port" >/dev/null && return 0; done
  return 1
}

cluster_status() {
  local port pid rc=0 running=0
  for port in "${CLUSTER_PORTS[@]}"; do
    if pid="$(cnode_pid "$port")" && cnode_ping "$port"; then
      running=$((running + 1))
      say "redis cluster: node 127.0.0.1:$port (pid $pid) cluster_state=$(cinfo "$port" cluster_state)"
    else
      rc=1
      say "redis cluster: node 127.0.0.1:$port stopped"
    fi
  done
  (( running > 0 )) || return 1
  cluster_ok || rc=1
  return "$rc"
}

# --- PostgreSQL --------------------------------------------------------------------------------------
pg_running() { [[ -f "$PG_DATA/PG_VERSION" ]] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }
pg_ready() { "$PG_ISREADY" -q -h 127.0.0.1 -p "$PG_PORT" -t 2 >/dev/null 2>&1; }
pg_pid() { head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null || true; }

pg_prepare_dirs() {
  mkdir -p "$PG_DATA" "$PG_RUN"
  chmod 700 "$PG_DATA" "$PG_RUN"
  if [[ $EUID -eq 0 ]]; then
    chown -R "$PG_OS_USER:" "$PG_DIR"
    as_pg test -w "$PG_DIR" || die "the '$PG_OS_USER' user cannot reach $PG_DIR (a parent directory is not traversable: make the path o+x, or run as a non-root user)"
  fi
}

pg_write_conf() {  # rewritten on every start so that a changed port takes effect
  local conf="$PG_DATA/setlist.conf"
  cat >"$conf" <<EOF
# Written by scripts/services.sh on every start; edit that script instead.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_RUN'
unix_socket_permissions = 0700
EOF
  [[ $EUID -ne 0 ]] || chown "$PG_OS_USER:" "$conf"
}

pg_init() {
  [[ -f "$PG_DATA/PG_VERSION" ]] && return 0
  say "postgres: initializing a new cluster in $PG_DATA"
  # Local (socket) logins are trusted, and the socket sits in a 0700 directory; TCP needs a password.
  as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --no-locale \
    --auth-local=trust --auth-host=scram-sha-256 >"$PG_DIR/initdb.log" 2>&1 \
    || { tail -n 20 "$PG_DIR/initdb.log" >&2; die "postgres: initdb failed; see $PG_DIR/initdb.log"; }
  echo "include_if_exists = 'setlist.conf'" | as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
}

pg_bootstrap_role() {  # idempotent: create the role and database if missing, keep the password in sync
  as_pg "$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$PG_PORT" -U postgres -d postgres \
    -v user="$PG_USER" -v pw="$PG_PASSWORD" -v db="$PG_DB" >/dev/null <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'user') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'user', :'pw') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
}

pg_up() {
  check_pg_user
  if pg_running; then
    wait_until pg_ready || die "postgres: running (pid $(pg_pid)) but not accepting connections on 127.0.0.1:$PG_PORT; see $PG_LOG"
    pg_bootstrap_role
    say "postgres: already running on 127.0.0.1:$PG_PORT (pid $(pg_pid))"; return 0
  fi
  if port_open "$PG_PORT"; then
    die "postgres: port $PG_PORT is taken by another process (a system PostgreSQL? stop it with 'service postgresql stop', or set SETLIST_DATABASE_URL to another port)"
  fi
  pg_prepare_dirs
  pg_init
  pg_write_conf
  touch "$PG_LOG"; [[ $EUID -ne 0 ]] || chown "$PG_OS_USER:" "$PG_LOG"
  # pg_ctl -w polls the new server and notices when it exits during start-up (bounded by -t).
  if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$TIMEOUT" start >/dev/null; then
    tail -n 20 "$PG_LOG" >&2 || true
    die "postgres: the server did not start; see $PG_LOG"
  fi
  if ! wait_until pg_ready; then
    tail -n 20 "$PG_LOG" >&2 || true
    die "postgres: not ready on 127.0.0.1:$PG_PORT after ${TIMEOUT}s; see $PG_LOG"
  fi
  pg_bootstrap_role
  say "postgres: started on 127.0.0.1:$PG_PORT (pid $(pg_pid), database '$PG_DB' for role '$PG_USER', data and log in $PG_DIR)"
}

pg_down() {
  if ! pg_running; then say "postgres: not running"; return 0; fi
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" stop -m fast -w -t "$TIMEOUT" >/dev/null \
    || die "postgres: did not stop within ${TIMEOUT}s; see $PG_LOG"
  say "postgres: stopped"
}

pg_status() {
  if pg_running; then
    if pg_ready; then say "postgres: running on 127.0.0.1:$PG_PORT (pid $(pg_pid))"; return 0; fi
    say "postgres: pid $(pg_pid) exists but is not accepting connections on 127.0.0.1:$PG_PORT"; return 1
  fi
  say "postgres: stopped"; return 1
}

# --- main ---------------------------------------------------------------------------------------------
usage() { say "usage: $0 up|down|status"; exit 2; }

# The production profile refuses to invent a pseudonymization key (every process must share it);
# for local use keep one next to the services' data. Real deployments pass SETLIST_HMAC_KEY.
hmac_key() {
  local key="$STATE/hmac.key"
  if [[ ! -s "$key" ]]; then
    mkdir -p "$STATE"
    (umask 077; od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$key")
    say "hmac key: created $key (SETLIST_HMAC_KEY_FILE; the Makefile uses it for SETLIST_PROFILE=production and cluster)"
  fi
}

main() {
  [[ $# -eq 1 ]] || usage
  parse_urls
  case "$1" in
    up)
      find_redis; find_postgres
      hmac_key; redis_up
      [[ "$WITH_CLUSTER" != "1" ]] || cluster_up
      pg_up ;;
    down)
      find_redis; find_postgres
      redis_down; cluster_down; pg_down ;;
    status)
      find_redis; find_postgres
      local rc=0
      redis_status || rc=3
      if [[ "$WITH_CLUSTER" == "1" ]] || cluster_any_running; then cluster_status || rc=3; fi
      pg_status || rc=3
      return "$rc" ;;
    *) usage ;;
  esac
}

main "$@"
