# Sourced by bench/shop.sh and bench/usl.sh: starts a shop pinned to core
# 0 for one setup and stops it. Expects say, die, dir (with the stampede
# binary), port, and STAMPEDE_TEST_PG / STAMPEDE_TEST_REDIS from
# scripts/backends.sh; PostgreSQL schemas and Redis keys it makes are
# dropped by drop_stores.

shop_pid=
schemas=()
redis_prefixes=()
pg_sep='?'; [[ "${STAMPEDE_TEST_PG:-}" == *\?* ]] && pg_sep='&'

# start_shop NAME STORE [SHOP-FLAGS…]: STORE is sqlite or postgres, each a
# fresh database; a --redis flag gets a key prefix of its own. Sets
# shop_pid and product (a product with ample stock).
start_shop() {
  local name=$1 kind=$2; shift 2
  local store=("--store" "sqlite:$dir/shop-$RANDOM$RANDOM.db")
  if [ "$kind" = postgres ]; then
    local schema="stampede_bench_$$_$RANDOM$RANDOM"; schemas+=("$schema")
    psql "$STAMPEDE_TEST_PG" -qc "CREATE SCHEMA $schema" >/dev/null
    store=("--store" "$STAMPEDE_TEST_PG${pg_sep}search_path=$schema")
  fi
  local flags=("$@")
  if [[ " ${flags[*]} " == *" --redis "* ]]; then
    redis_prefixes+=("bench$$$RANDOM:")
    flags+=("--redis-prefix" "${redis_prefixes[-1]}")
  fi
  : >"$dir/shop.out"
  taskset -c 0 "$dir/stampede" shop --addr "127.0.0.1:$port" "${store[@]}" "${flags[@]}" >"$dir/shop.out" 2>"$dir/shop.err" &
  shop_pid=$!
  for _ in $(seq 100); do grep -q serving "$dir/shop.out" 2>/dev/null && break; sleep 0.1; done
  grep -q serving "$dir/shop.out" || { cat "$dir/shop.err" >&2; die "$name: the shop did not start"; }
  product=$(curl -fs -XPOST "127.0.0.1:$port/api/products" -d '{"name":"phone","stock":1000000000}' | sed 's/.*"id":\([0-9]*\).*/\1/')
}

stop_shop() {
  [ -n "$shop_pid" ] && { kill "$shop_pid" 2>/dev/null; wait "$shop_pid" 2>/dev/null || true; }
  shop_pid=
}

drop_stores() {
  local s
  for s in "${schemas[@]}"; do psql "$STAMPEDE_TEST_PG" -qc "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1 || true; done
  [ ${#redis_prefixes[@]} -eq 0 ] || drop_redis_keys "${redis_prefixes[@]}"
}
