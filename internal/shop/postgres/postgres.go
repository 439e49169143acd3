// Package postgres opens the shop's PostgreSQL store through a bounded
// pgx/v5 connection pool.
package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stampede-dev/stampede/internal/shop/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DefaultMaxConns bounds the pool when the DSN sets no pool_max_conns: more
// connections than this only queue on the hot product row.
const DefaultMaxConns = 16

// Open connects to dsn (postgres://…; pool_max_conns and search_path may be
// set in it) and migrates the schema. Processes starting together migrate
// one at a time under an advisory lock.
func Open(ctx context.Context, dsn string) (*sqlstore.Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres DSN: %w", err)
	}
	if cfg.MaxConns == 4 || cfg.MaxConns == 0 { // pgxpool's default: max(4, cores)
		cfg.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres at %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	db := stdlib.OpenDBFromPool(pool)
	sub, _ := fs.Sub(migrations, "migrations")
	s, err := sqlstore.Open(ctx, db, db, sqlstore.Dialect{
		Name:           "postgres",
		Numbered:       true,
		ForUpdate:      " FOR UPDATE",
		LockMigrations: "SELECT pg_advisory_xact_lock(7355608)",
		Migrations:     sub,
	})
	if err != nil {
		db.Close()
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s.OnClose(pool.Close)
	return s, nil
}

// CreateSchema creates a schema on the server dsn names and returns dsn
// with its search_path set to it, so that a test run has tables of its own.
func CreateSchema(ctx context.Context, dsn, schema string) (string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return "", err
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + schema, nil
}

// DropSchema drops a schema made by CreateSchema, with its tables.
func DropSchema(ctx context.Context, dsn, schema string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	return err
}
