// Package redis holds the shop strategies that coordinate several shop
// processes through Redis: a lock with a fencing token, and the atomic
// reservation with a durable queue (a Redis Stream) and group commit.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"
)

// Dial connects to a Redis URL (redis://host:port/db) and checks it answers.
func Dial(ctx context.Context, url string) (*goredis.Client, error) {
	opt, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis URL: %w", err)
	}
	c := goredis.NewClient(opt)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("connect to redis at %s: %w", opt.Addr, err)
	}
	return c, nil
}

func token() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func productKey(prefix, kind string, id int64) string {
	return prefix + kind + ":" + strconv.FormatInt(id, 10)
}

// DeletePrefix deletes every key that starts with prefix.
func DeletePrefix(ctx context.Context, c *goredis.Client, prefix string) error {
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		if err := c.Del(ctx, iter.Val()).Err(); err != nil {
			return err
		}
	}
	return iter.Err()
}
