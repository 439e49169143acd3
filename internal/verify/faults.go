package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kinds of fault, as --faults names them.
const (
	KillWorker   = "kill-worker"   // SIGKILL one worker process; the supervisor starts another
	KillShop     = "kill-shop"     // SIGKILL the supervisor and every worker; restart after For
	RedisRestart = "redis-restart" // SIGKILL the private Redis; start it empty after For
	PGPause      = "pg-pause"      // SIGSTOP the private PostgreSQL for For, then SIGCONT
)

// defaultFor is how long each kind of fault lasts unless told.
var defaultFor = map[string]time.Duration{
	KillWorker:   0,
	KillShop:     500 * time.Millisecond,
	RedisRestart: 500 * time.Millisecond,
	PGPause:      2 * time.Second,
}

// Fault is one fault on the schedule: Kind at At after the sale starts,
// lasting For (the time the shop or Redis stays down, or PostgreSQL frozen).
type Fault struct {
	Kind string        `json:"kind"`
	At   time.Duration `json:"at_ns"`
	For  time.Duration `json:"for_ns"`
}

func (f Fault) String() string {
	if f.For == 0 {
		return fmt.Sprintf("%s@%v", f.Kind, f.At)
	}
	return fmt.Sprintf("%s@%v/%v", f.Kind, f.At, f.For)
}

// ParseFaults reads a schedule: comma-separated KIND@AT[/FOR], as
// "kill-shop@1s,pg-pause@2.5s/2s". A KIND alone happens at 1s.
func ParseFaults(s string) ([]Fault, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []Fault
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		kind, when, hasAt := strings.Cut(item, "@")
		f := Fault{Kind: kind}
		d, ok := defaultFor[kind]
		if !ok {
			return nil, fmt.Errorf("unknown fault %q (want %s, %s, %s or %s)", kind, KillWorker, KillShop, RedisRestart, PGPause)
		}
		f.For = d
		if !hasAt {
			return nil, fmt.Errorf("fault %q: say when, after the sale's start: %s@1s", item, kind)
		}
		at, dur, hasFor := strings.Cut(when, "/")
		var err error
		if f.At, err = time.ParseDuration(at); err != nil || f.At < 0 || f.At > time.Hour {
			return nil, fmt.Errorf("fault %q: the time after @ must be a duration from 0 to 1h, as 1.5s", item)
		}
		if hasFor {
			if kind == KillWorker {
				return nil, fmt.Errorf("fault %q: a killed worker is restarted by the supervisor; it takes no /FOR", item)
			}
			if f.For, err = time.ParseDuration(dur); err != nil || f.For <= 0 || f.For > time.Minute {
				return nil, fmt.Errorf("fault %q: the time after / must be a duration from 1ns to 1m, as 2s", item)
			}
		}
		out = append(out, f)
	}
	return out, nil
}

// Event is a fault as it happened.
type Event struct {
	Fault
	Start time.Duration `json:"start_ns"` // since the sale started
	End   time.Duration `json:"end_ns"`   // when the shop or backend was back (or the worker killed)
	Err   string        `json:"error,omitempty"`
}

// inject runs one fault at its time; it returns when the fault is over.
// A fault due after the sale has ended is not injected.
func (r *run) inject(ctx context.Context, saleDone <-chan struct{}, f Fault) Event {
	select {
	case <-time.After(time.Until(r.start.Add(f.At))):
	case <-saleDone:
		return Event{Fault: f, Err: "not injected: the sale had ended"}
	case <-ctx.Done():
		return Event{Fault: f, Err: ctx.Err().Error()}
	}
	ev := Event{Fault: f, Start: time.Since(r.start)}
	var err error
	switch f.Kind {
	case KillWorker:
		err = r.shop.killWorker()
	case KillShop:
		r.shop.kill()
		err = pause(ctx, f.For)
		if err == nil {
			err = r.shop.start(ctx)
		}
	case RedisRestart:
		r.redis.Kill()
		err = pause(ctx, f.For)
		err = errors.Join(err, r.redis.Start(context.WithoutCancel(ctx)))
	case PGPause:
		if err = r.pg.Pause(); err == nil {
			pause(ctx, f.For)
			err = r.pg.Resume()
		}
	}
	ev.End = time.Since(r.start)
	if err != nil {
		ev.Err = err.Error()
	}
	return ev
}

func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
