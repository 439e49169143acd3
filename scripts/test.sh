#!/usr/bin/env bash
# The project's one test command (make test): it finds or starts the
# PostgreSQL and Redis the integration tests need, the Chromium the lab's
# browser tests drive, the HTTP servers the load generator is counted
# against and the psql and sqlite3 clients the tests count stored rows
# with (installing them with apt-get when root on Debian and nothing
# else works), then runs the format
# check, go vet, every test under -race, and a short fuzz of the order
# decoder. In this script's runs no integration test may skip.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'test: %s\n' "$*" >&2; }
die() { printf 'test: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "Go is not installed; get it from https://go.dev/dl and run again"
. scripts/backends.sh

ensure_postgres
ensure_redis
ensure_chromium
ensure_http_servers
ensure_sql_clients
export STAMPEDE_REQUIRE_BACKENDS=1

# Every step runs, whatever the one before it did, and the end lists
# every step that failed: one failing package must not hide the others.
failed=()
step() {
  local name=$1; shift
  say "$name"
  "$@" || failed+=("$name")
}
gofmt_clean() {
  local unformatted
  unformatted=$(gofmt -l cmd internal)
  [ -z "$unformatted" ] || { say "gofmt would change: $unformatted (run gofmt -w cmd internal)"; return 1; }
}
step "gofmt" gofmt_clean
step "go vet" go vet ./...
# The lab's experiments load the machine on purpose (spinning children,
# full-speed loops); they run on their own, after the rest, so they do not
# skew the load generator's and the shop's timing-sensitive tests.
step "go test -race (all but the lab's experiments)" go test -race -count=1 -timeout 30m $(go list ./... | grep -v '/internal/lab/')
step "go test -race (the lab's experiments)" go test -race -count=1 -timeout 30m ./internal/lab/...
step "fuzz the order decoder for 10s" go test -run '^$' -fuzz '^FuzzDecodeOrder$' -fuzztime 10s ./internal/shop/api
if [ ${#failed[@]} -gt 0 ]; then
  for f in "${failed[@]}"; do say "FAILED: $f"; done
  exit 1
fi
say "all passed"
