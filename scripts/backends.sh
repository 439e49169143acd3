# Sourced by the test and bench scripts: finds or starts PostgreSQL and
# Redis and exports STAMPEDE_TEST_PG and STAMPEDE_TEST_REDIS. Expects say
# and die to be defined. Private servers it starts stop when the script exits.

state=$(mktemp -d /tmp/stampede-test.XXXXXX)
chmod 755 "$state"
stoppers=()
cleanup() {
  local s
  for s in "${stoppers[@]}"; do eval "$s" >/dev/null 2>&1 || true; done
  rm -rf "$state"
}
trap cleanup EXIT

# Packages are installed only as root on Debian, and never with
# STAMPEDE_NO_INSTALL=1; each caller first says what is missing and why.
can_apt() { [ -z "${STAMPEDE_NO_INSTALL:-}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
apt_updated=
apt_install() {
  can_apt || return 1
  if [ -z "$apt_updated" ]; then apt-get update -qq >/dev/null 2>&1 || true; apt_updated=1; fi
  say "installing $* with apt-get (STAMPEDE_NO_INSTALL=1 forbids it)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# open_port PORT: true if something listens on 127.0.0.1:PORT.
open_port() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local p
  for p in $(seq "$1" $(($1 + 200))); do
    open_port "$p" || { echo "$p"; return; }
  done
  die "no free port from $1"
}

redis_answers() {
  local line
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'PING\r\n' >&3
  IFS= read -r -t 3 line <&3 || true
  exec 3<&-
  [[ "$line" == +PONG* ]]
}

pg_bin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  command -v initdb >/dev/null && dirname "$(command -v initdb)"
}

# as_db_user CMD…: initdb and postgres refuse to run as root.
as_db_user() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

ensure_postgres() {
  if [ -n "${STAMPEDE_TEST_PG:-}" ]; then say "PostgreSQL from STAMPEDE_TEST_PG"; return; fi
  if open_port 5432 && command -v psql >/dev/null &&
     psql "postgres://postgres@127.0.0.1:5432/test?sslmode=disable" -qtAc 'select 1' >/dev/null 2>&1; then
    export STAMPEDE_TEST_PG="postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
    say "PostgreSQL: the running server on 127.0.0.1:5432"
    return
  fi
  local bin; bin=$(pg_bin || true)
  if [ -z "$bin" ]; then
    say "PostgreSQL is neither running on 127.0.0.1:5432 nor installed: the store's and verify's tests need one"
    apt_install postgresql || die "PostgreSQL is neither running on 127.0.0.1:5432 nor installed; install it (apt-get install postgresql) or set STAMPEDE_TEST_PG"
    bin=$(pg_bin) || die "postgresql installed but initdb not found"
  fi
  local port; port=$(free_port 55432)
  local dir="$state/pg"
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && { as_db_user true; chown postgres "$dir"; }
  as_db_user "$bin/initdb" -D "$dir/data" -U postgres -A trust >"$state/initdb.log" 2>&1 || { cat "$state/initdb.log" >&2; die "initdb failed"; }
  as_db_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null ||
    { cat "$dir/log" >&2; die "could not start a private PostgreSQL"; }
  stoppers+=("as_db_user '$bin/pg_ctl' -D '$dir/data' -m immediate stop")
  export STAMPEDE_TEST_PG="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
  say "PostgreSQL: a private server on 127.0.0.1:$port"
}

ensure_redis() {
  if [ -n "${STAMPEDE_TEST_REDIS:-}" ]; then say "Redis from STAMPEDE_TEST_REDIS"; return; fi
  if redis_answers 6379; then
    export STAMPEDE_TEST_REDIS="redis://127.0.0.1:6379/0"
    say "Redis: the running server on 127.0.0.1:6379"
    return
  fi
  if ! command -v redis-server >/dev/null; then
    say "Redis is neither running on 127.0.0.1:6379 nor installed: the multi-process shop's tests need one"
    apt_install redis-server || die "Redis is neither running on 127.0.0.1:6379 nor installed; install it (apt-get install redis-server) or set STAMPEDE_TEST_REDIS"
  fi
  local port; port=$(free_port 56379)
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --dir "$state" --pidfile "$state/redis.pid" --logfile "$state/redis.log" >/dev/null
  for _ in $(seq 50); do redis_answers "$port" && break; sleep 0.1; done
  redis_answers "$port" || die "could not start a private Redis"
  stoppers+=("kill \$(cat '$state/redis.pid')")
  export STAMPEDE_TEST_REDIS="redis://127.0.0.1:$port/0"
  say "Redis: a private server on 127.0.0.1:$port"
}

# drop_redis_keys PREFIX…: deletes what a bench run left in Redis under
# each prefix (a shop keeps a key per order for a day). Needs redis-cli.
drop_redis_keys() {
  local p
  command -v redis-cli >/dev/null || { say "redis-cli is missing: keys under $* stay in Redis"; return 0; }
  for p in "$@"; do
    redis-cli -u "$STAMPEDE_TEST_REDIS" --scan --pattern "$p*" | xargs -r -n 1000 redis-cli -u "$STAMPEDE_TEST_REDIS" unlink >/dev/null || true
  done
}


# ensure_chromium finds a headless-capable Chromium for the lab's browser
# tests, installing Debian's (with a font for the glossary's Chinese) when
# it is missing, and exports STAMPEDE_CHROMIUM.
ensure_chromium() {
  local c
  # Screenshots show the glossary's Chinese only with a CJK font.
  if command -v fc-list >/dev/null && [ -z "$(fc-list :lang=zh 2>/dev/null)" ]; then
    apt_install fonts-wqy-zenhei || say "no CJK font: screenshots will show boxes for Chinese"
  fi
  for c in "${STAMPEDE_CHROMIUM:-}" chromium chromium-browser google-chrome-stable google-chrome; do
    [ -n "$c" ] && command -v "$c" >/dev/null && { export STAMPEDE_CHROMIUM="$(command -v "$c")"; say "Chromium: $STAMPEDE_CHROMIUM"; return; }
  done
  say "Chromium is missing; installing Debian's chromium for the browser tests"
  apt_install chromium ||
    die "Chromium is not installed; install it (apt-get install chromium) or set STAMPEDE_CHROMIUM to a Chrome or Chromium binary"
  export STAMPEDE_CHROMIUM="$(command -v chromium)"
}

# ensure_commands WHY BIN:PACKAGE… finds each command on the PATH and
# installs Debian's package for those missing; WHY ends the message.
ensure_commands() {
  local why=$1 missing=() pair
  shift
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return
  say "missing: ${missing[*]} ($why)"
  apt_install "${missing[@]}" || die "install ${missing[*]} (apt-get install ${missing[*]}): $why"
}

# ensure_http_servers finds the HTTP servers the load generator's
# conformance tests count against (servers nobody here wrote).
ensure_http_servers() {
  ensure_commands "the load generator is tested against them" nginx:nginx-light lighttpd:lighttpd python3:python3 node:nodejs
}

# ensure_sql_clients finds psql and sqlite3, with which the tests count a
# store's rows from outside stampede's code.
ensure_sql_clients() {
  ensure_commands "the tests count stored rows with them" psql:postgresql-client sqlite3:sqlite3
}
