#!/usr/bin/env bash
# The stampede this project is named for, on one machine: BUYERS one-shot
# buyers (default 100,000), each on a connection of its own, rush a shop of
# PROCS worker processes (default 8; reserve with Redis, on PostgreSQL) for
# STOCK units (default 10,000), one per buyer. The floor is the same
# connections, one GET each, against nginx with PROCS workers on one
# SO_REUSEPORT port, measured in the same run. Before the stampede, two
# sweeps of the same shop (SWEEP concurrencies, default 1 to 512, one run
# of 2 s each) measure the two answers the crowd gets: an order (a product
# with stock for all of it) and a sold-out answer (a product with none).
# The plan's bound, STOCK orders at the first capacity and the other
# buyers at the second, is printed beside the stampede's time. Prints both
# times and their ratio, the outcomes, p50/p99 and the shop's memory per
# connection.
#
#   bench/stampede.sh                 # or: BUYERS=20000 STOCK=2000 bench/stampede.sh
#
# As root it raises net.core.somaxconn and net.ipv4.tcp_max_syn_backlog to
# 65535 (beyond the backlog, SYNs are dropped and retried after 1, 3, 7 s)
# and installs nginx-light when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
buyers=${BUYERS:-100000}
stock=${STOCK:-10000}
procs=${PROCS:-8}
ips=127.0.0.2-127.0.0.101 # 100 source addresses: 1,000 connections each

if [ "$(id -u)" = 0 ]; then
  say "raising net.core.somaxconn and net.ipv4.tcp_max_syn_backlog to 65535 for the connect storm"
  sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535
  command -v nginx >/dev/null || { say "installing nginx-light"; apt-get update -qq >/dev/null 2>&1 || true;
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; }
fi
command -v nginx >/dev/null || die "nginx is missing (apt-get install nginx-light)"
[ "$(ulimit -Hn)" -ge $((buyers / procs + 1000)) ] || die "the open-file limit $(ulimit -Hn) is too small for $((buyers / procs)) connections a process; raise PROCS"
ulimit -n "$(ulimit -Hn)"
. scripts/backends.sh
ensure_postgres
ensure_redis

dir=$(mktemp -d /tmp/stampede-bench.XXXXXX)
schema="stampede_bench_$$"
shop_pid=
finish() {
  [ -n "$shop_pid" ] && kill "$shop_pid" 2>/dev/null && wait "$shop_pid" 2>/dev/null
  [ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null
  psql "$STAMPEDE_TEST_PG" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  drop_redis_keys "bench$$:"
  rm -rf "$dir"
  cleanup
}
trap finish EXIT

go build -o "$dir/stampede" ./cmd/stampede
free_tcp() { local p; for p in $(seq "$1" $(($1 + 200))); do open_port "$p" || { echo "$p"; return; }; done; die "no free port"; }

# The floor: nginx, PROCS workers on one port.
printf 'ok\n' >"$dir/index.html"
nport=$(free_tcp 18180)
cat >"$dir/nginx.conf" <<CONF
worker_processes $procs;
worker_rlimit_nofile 200000;
daemon on;
pid $dir/nginx.pid;
error_log $dir/nginx.err;
events { worker_connections 50000; }
http {
  access_log off;
  server { listen 127.0.0.1:$nport reuseport backlog=65535; root $dir; }
}
CONF
nginx -c "$dir/nginx.conf" -p "$dir" -e "$dir/nginx.err"
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$nport/index.html" >/dev/null 2>&1 && break; sleep 0.1; done

# settle waits for the TIME_WAIT sockets of the last run to drop below a
# few thousand, so that each run starts from the same state.
settle() {
  for _ in $(seq 70); do
    [ "$(ss -tan state time-wait | wc -l)" -lt 5000 ] && return
    sleep 1
  done
}

say "floor: $buyers connections, one GET each, against nginx ($procs workers)"
settle
start=$(date +%s.%N)
"$dir/stampede" load -c "$buyers" -n "$buyers" --procs "$procs" --source-ips "$ips" --timeout 60s --allow-errors \
  --output json "http://127.0.0.1:$nport/index.html" >"$dir/nginx.json"
nginx_s=$(echo "$(date +%s.%N) - $start" | bc)

# The shop.
psql "$STAMPEDE_TEST_PG" -qc "CREATE SCHEMA $schema" >/dev/null
sep='?'; [[ "$STAMPEDE_TEST_PG" == *\?* ]] && sep='&'
dsn="$STAMPEDE_TEST_PG${sep}search_path=$schema"
sport=$(free_tcp 18181)
"$dir/stampede" shop --addr "127.0.0.1:$sport" --store "$dsn" --redis "$STAMPEDE_TEST_REDIS" \
  --redis-prefix "bench$$:" --procs "$procs" --strategy reserve >"$dir/shop.out" 2>"$dir/shop.err" &
shop_pid=$!
for _ in $(seq 100); do grep -q serving "$dir/shop.out" 2>/dev/null && break; sleep 0.1; done
grep -q serving "$dir/shop.out" || { cat "$dir/shop.err" >&2; die "the shop did not start"; }
id=$(curl -fs -XPOST "127.0.0.1:$sport/api/products" -d "{\"name\":\"phone\",\"stock\":$stock,\"per_user_limit\":1}" | sed 's/.*"id":\([0-9]*\).*/\1/')
# The plan: sweeps of the same shop, every purchase a new user's, for the
# crowd's two answers; each plans for BUYERS at once (bounds only, so far
# past the sweep).
sweep() { # NAME STOCK: prints the capacity measured
  local id
  id=$(curl -fs -XPOST "127.0.0.1:$sport/api/products" -d "{\"name\":\"$1\",\"stock\":$2,\"per_user_limit\":0}" | sed 's/.*"id":\([0-9]*\).*/\1/')
  say "plan: sweeping ${SWEEP:-1,2,4,8,16,32,64,128,256,512} buyers at once for $1"
  "$dir/stampede" load --sweep "${SWEEP:-1,2,4,8,16,32,64,128,256,512}" -d 2s --repeats 1 --warmup 500ms --quiet --output json \
    --scenario flash-sale --product "$id" --user-ids 1000000000 --users "$buyers" --check=false "http://127.0.0.1:$sport" >"$dir/plan-$1.json" || true
  sed -n 's/.*"capacity_rps": \([0-9.e+-]*\).*/\1/p' "$dir/plan-$1.json" | head -1
}
capacity=$(sweep orders 1000000000)
soldout_capacity=$(sweep soldout 0)
workers() { pgrep -P "$shop_pid" | tr '\n' ' '; }
rss_kib() { local t=0 p; for p in $(workers); do t=$((t + $(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo "$t"; }
idle_rss=$(rss_kib)
( peak=0; while :; do r=$(rss_kib); [ "$r" -gt "$peak" ] && peak=$r && echo "$peak" >"$dir/peak"; sleep 0.05; done ) &
sampler=$!

say "stampede: $buyers buyers for $stock units against the shop ($procs workers, reserve + Redis, PostgreSQL)"
settle
start=$(date +%s.%N)
"$dir/stampede" load --scenario flash-sale --product "$id" --user-ids "$buyers" -c "$buyers" -n "$buyers" --procs "$procs" \
  --source-ips "$ips" --timeout 60s --allow-errors --output json "http://127.0.0.1:$sport" >"$dir/shop.json"
shop_s=$(echo "$(date +%s.%N) - $start" | bc)
kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
peak_rss=$(cat "$dir/peak" 2>/dev/null || echo "$idle_rss")
product=$(curl -fs "127.0.0.1:$sport/api/products/$id")
stored=$(curl -fs "127.0.0.1:$sport/api/products/$id/orders" | wc -l)

num() { sed -n "s/.*\"$2\": \([0-9.e+-]*\).*/\1/p" "$1" | head -1; }
lat() { awk -v k="\"$2\":" '$1 == k {gsub(",", "", $2); printf "%.1f", $2 * 1000; exit}' "$1"; }
printf '\nmachine: %s, %s cores, %s; %s buyers, %s units, %s processes a side\n\n' \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" "$(nproc)" "$(go version | cut -d' ' -f3)" "$buyers" "$stock" "$procs"
printf '| | seconds | × nginx | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|\n'
printf '| nginx, one GET each | %.2f | 1.00 | %s | %s |\n' "$nginx_s" "$(lat "$dir/nginx.json" p50)" "$(lat "$dir/nginx.json" p99)"
printf '| shop, one purchase each | %.2f | %.2f | %s | %s |\n' "$shop_s" "$(echo "$shop_s / $nginx_s" | bc -l)" "$(lat "$dir/shop.json" p50)" "$(lat "$dir/shop.json" p99)"
if [ -n "$capacity" ] && [ -n "$soldout_capacity" ]; then
  bound=$(echo "$stock / $capacity + ($buyers - $stock) / $soldout_capacity" | bc -l)
  printf '\nplan from the sweeps, on kept-alive connections: %.0f orders/s and %.0f sold-out answers/s measured, so %s orders and %s sold-out answers take at least %.2f s; measured %.2f s (%.2f× the bound)\n' \
    "$capacity" "$soldout_capacity" "$stock" "$((buyers - stock))" "$bound" "$shop_s" "$(echo "$shop_s / $bound" | bc -l)"
  printf 'had every buyer paid for an order, the bound would be %.2f s\n' "$(echo "$buyers / $capacity" | bc -l)"
else
  printf '\nplan: a sweep gave no capacity (see %s)\n' "$dir"
fi
printf '\nshop answers: acknowledged %s, sold_out %s, limit_exceeded %s, unsettled %s, other %s, retries %s\n' \
  "$(num "$dir/shop.json" acknowledged)" "$(num "$dir/shop.json" sold_out)" "$(num "$dir/shop.json" limit_exceeded)" \
  "$(num "$dir/shop.json" unsettled)" "$(num "$dir/shop.json" other)" "$(num "$dir/shop.json" retries)"
printf 'status codes: %s\n' "$(tr -d ' \n' <"$dir/shop.json" | sed -n 's/.*"status_codes":{\([^}]*\)}.*/\1/p')"
printf 'transport errors: shop %s, nginx %s\n' "$(tr -d ' \n' <"$dir/shop.json" | sed -n 's/.*"errors":{\([^}]*\)}.*/\1/p')" \
  "$(tr -d ' \n' <"$dir/nginx.json" | sed -n 's/.*"errors":{\([^}]*\)}.*/\1/p')"
printf 'the shop says: %s; %s orders stored\n' "$product" "$stored"
printf 'shop memory: %d MiB idle, %d MiB at the peak: %.1f KiB per connection\n' \
  $((idle_rss / 1024)) $((peak_rss / 1024)) "$(echo "($peak_rss - $idle_rss) / $buyers" | bc -l)"
