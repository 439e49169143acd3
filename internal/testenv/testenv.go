// Package testenv gives integration tests their real backends, each run
// its own: a fresh PostgreSQL schema and a fresh Redis key prefix.
//
// The servers come from STAMPEDE_TEST_PG and STAMPEDE_TEST_REDIS, which
// the test command (scripts/test.sh) sets after starting or finding them;
// without them the project's usual local addresses are tried. A backend
// that cannot be reached skips the test, except under CI=true or
// STAMPEDE_REQUIRE_BACKENDS=1, where it fails it: in CI nothing skips.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/backend"
	"github.com/stampede-dev/stampede/internal/shop/postgres"
	"github.com/stampede-dev/stampede/internal/shop/redis"
)

func required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("STAMPEDE_REQUIRE_BACKENDS") == "1"
}

func unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if required() {
		t.Fatalf("%s is required here (CI or STAMPEDE_REQUIRE_BACKENDS=1) but unreachable: %v; run the tests with 'make test', which starts it", what, err)
	}
	t.Skipf("%s unreachable (%v); 'make test' starts one", what, err)
}

// Name returns a fresh name for a test's schema or key prefix.
func Name() string {
	var b [6]byte
	rand.Read(b[:])
	return "stampede_t_" + hex.EncodeToString(b[:])
}

// Postgres returns a DSN whose search_path is a schema made for this test
// and dropped when it ends.
func Postgres(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("STAMPEDE_TEST_PG")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	schema := Name()
	scoped, err := postgres.CreateSchema(ctx, dsn, schema)
	if err != nil {
		unavailable(t, "PostgreSQL", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := postgres.DropSchema(ctx, dsn, schema); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return scoped
}

// Redis returns a Redis URL and a key prefix of this test's own; its keys
// are deleted when the test ends.
func Redis(t testing.TB) (url, prefix string) {
	t.Helper()
	url = os.Getenv("STAMPEDE_TEST_REDIS")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := redis.Dial(ctx, url)
	if err != nil {
		unavailable(t, "Redis", err)
	}
	prefix = Name() + ":"
	t.Cleanup(func() {
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.DeletePrefix(ctx, prefix); err != nil {
			t.Errorf("delete redis keys %s*: %v", prefix, err)
		}
	})
	return url, prefix
}

// Chromium returns the path of a Chromium or Chrome for browser tests:
// STAMPEDE_CHROMIUM, or the first of the usual names on PATH.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("STAMPEDE_CHROMIUM"); p != "" {
		return p
	}
	var err error
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"} {
		var p string
		if p, err = exec.LookPath(name); err == nil {
			return p
		}
	}
	unavailable(t, "Chromium", err)
	return ""
}

// ChildProcesses counts the processes, running or zombie, whose parent is
// pid, from /proc: a test's check that nothing was left behind.
func ChildProcesses(t testing.TB, pid int) int {
	t.Helper()
	return len(ChildPIDs(t, pid))
}

// ChildPIDs lists the processes, running or zombie, whose parent is pid,
// but for its reaper (which lives as long as pid does, and is not
// something it left behind).
func ChildPIDs(t testing.TB, pid int) []int {
	t.Helper()
	var out []int
	for _, c := range backend.Children(pid) {
		if !backend.IsReaper(c) {
			out = append(out, c)
		}
	}
	return out
}

// RedisServer is a private redis-server a test may kill and restart: never
// the machine's shared one. It keeps nothing on disk, so a restart comes
// back empty, as a crashed Redis without persistence does.
type RedisServer struct {
	URL string
	r   *backend.Redis
}

// PrivateRedis starts a redis-server on a free loopback port and stops it
// when the test ends.
func PrivateRedis(t testing.TB) *RedisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		unavailable(t, "redis-server (to start a private Redis)", err)
	}
	r, err := backend.StartRedis(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Kill)
	return &RedisServer{URL: r.URL, r: r}
}

// Start starts the server again and waits until it answers.
func (s *RedisServer) Start(t testing.TB) {
	t.Helper()
	if err := s.r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Kill stops the server with SIGKILL, as a crash would.
func (s *RedisServer) Kill(t testing.TB) { s.r.Kill() }

// PrivatePostgres starts a PostgreSQL cluster of the test's own, which it
// may freeze with Pause, and removes it when the test ends.
func PrivatePostgres(t testing.TB) *backend.Postgres {
	t.Helper()
	p, err := backend.StartPostgres(context.Background())
	if err != nil {
		unavailable(t, "a private PostgreSQL", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// Binary finds a program the test needs, on the PATH or, for PostgreSQL's,
// where Debian keeps them; without it the test skips (fails in CI).
func Binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name); len(m) > 0 {
			return m[len(m)-1]
		}
		unavailable(t, name, err)
	}
	return p
}

// SQL runs query against a shop's store with the database's own client
// (psql for a postgres:// DSN, sqlite3 for "sqlite:PATH") and returns its
// one-line answer: a count made from outside stampede's code, to hold the
// shop's and verify's figures to.
func SQL(t testing.TB, store, query string) string {
	t.Helper()
	var cmd *exec.Cmd
	if path, ok := strings.CutPrefix(store, "sqlite:"); ok {
		cmd = exec.Command(Binary(t, "sqlite3"), "-bail", path, query)
	} else {
		u, err := url.Parse(store)
		if err != nil {
			t.Fatalf("store %q: %v", store, err)
		}
		// psql knows no search_path in a URI: it goes in PGOPTIONS.
		q := u.Query()
		path := q.Get("search_path")
		q.Del("search_path")
		u.RawQuery = q.Encode()
		cmd = exec.Command(Binary(t, "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", u.String(), "-c", query)
		cmd.Env = os.Environ()
		if path != "" {
			cmd.Env = append(cmd.Env, "PGOPTIONS=-c search_path="+path)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v: %s", filepath.Base(cmd.Path), query, err, out)
	}
	return strings.TrimSpace(string(out))
}
