// Package redis holds the shop strategies that coordinate several shop
// processes through Redis: a lock with a fencing token, and the atomic
// reservation with a durable queue (a Redis Stream) and group commit.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"
)

// Client is a pool of connections to one Redis server. Its zero value is
// not usable: get one from Dial.
type Client struct{ rdb *goredis.Client }

// Dial connects to a Redis URL (redis://host:port/db) and checks it answers.
func Dial(ctx context.Context, url string) (*Client, error) {
	opt, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis URL: %w", err)
	}
	c := goredis.NewClient(opt)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("connect to redis at %s: %w", opt.Addr, err)
	}
	return &Client{rdb: c}, nil
}

// Close closes the pool.
func (c *Client) Close() error { return c.rdb.Close() }

// Do sends one command, as in Do(ctx, "DEL", key), and returns Redis's
// answer; a missing key's answer is (nil, nil). For tests and tools.
func (c *Client) Do(ctx context.Context, args ...any) (any, error) {
	v, err := c.rdb.Do(ctx, args...).Result()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	return v, err
}

func token() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func productKey(prefix, kind string, id int64) string {
	return prefix + kind + ":" + strconv.FormatInt(id, 10)
}

// DeletePrefix deletes every key that starts with prefix, a page of the
// scan at a time: a shop that took a million orders leaves a million keys.
func (c *Client) DeletePrefix(ctx context.Context, prefix string) error {
	var cursor uint64
	for {
		keys, next, err := c.rdb.Scan(ctx, cursor, prefix+"*", 1000).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := c.rdb.Unlink(ctx, keys...).Err(); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}
