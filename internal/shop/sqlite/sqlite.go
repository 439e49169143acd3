// Package sqlite opens the shop's embedded store: a SQLite file in WAL mode
// through modernc.org/sqlite, a pure-Go driver, so the binary needs no cgo.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"net/url"
	"runtime"

	"github.com/stampede-dev/stampede/internal/shop/sqlstore"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// Open opens (creating if needed) the SQLite database at path and migrates
// it. Writes go through one connection, as SQLite allows one writer at a
// time anyway; reads use a pool. Several processes may open the same file:
// they queue for the write lock for up to ten seconds.
//
// synchronous=NORMAL in WAL mode keeps every committed transaction across a
// crash of the process (kill -9); a power cut may lose the last commits.
//
// Each connection keeps SQLite's default page cache (2 MiB): when a commit
// rebalances B-tree pages it swaps their numbers through the number of the
// page at 1 GiB, past the end of the file, and at its end walks the whole
// cache to drop that number. With a 64 MiB cache the walk
// took 8 % of a group commit's CPU. Temp files (a statement journal past
// 64 KiB) stay in memory.
func Open(ctx context.Context, path string) (*sqlstore.Store, error) {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(NORMAL)", "busy_timeout(10000)", "foreign_keys(ON)", "mmap_size(268435456)", "temp_store(MEMORY)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	dsn := "file:" + path + "?" + q.Encode()

	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %q: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %q: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %q: %w", path, err)
	}
	n := 2 * runtime.GOMAXPROCS(0)
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)

	sub, _ := fs.Sub(migrations, "migrations")
	s, err := sqlstore.Open(ctx, w, r, sqlstore.Dialect{Name: "sqlite", Migrations: sub, Embedded: true})
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open sqlite %q: %w", path, err)
	}
	return s, nil
}
