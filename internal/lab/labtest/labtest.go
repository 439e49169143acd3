// Package labtest runs lab experiments in tests: to the end, or stopped
// partway, checking what they leave behind.
package labtest

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/lab"
	"github.com/stampede-dev/stampede/internal/testenv"
)

// Run checks raw against e's parameters, runs e with them and returns its
// result as T. It fails t when a parameter is refused, the run fails, or
// no result of type T arrives. Every event, the result included, is also
// passed to each when each is not nil.
func Run[T any](t testing.TB, e lab.Experiment, raw map[string]any, each func(lab.Event)) T {
	t.Helper()
	p, err := lab.Resolve(e.Info().Params, raw)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex // experiments may emit from several goroutines
		res T
		got bool
	)
	err = e.Run(context.Background(), p, func(ev lab.Event) {
		mu.Lock()
		defer mu.Unlock()
		if ev.Kind == lab.KindResult {
			res, got = ev.Data.(T)
		}
		if each != nil {
			each(ev)
		}
	})
	if err != nil {
		t.Fatalf("%s: %v", e.Info().ID, err)
	}
	if !got {
		t.Fatalf("%s: no result of type %T", e.Info().ID, res)
	}
	return res
}

// Executable is the running test binary, which lab experiments start as
// their children (each package's TestMain lets it be one).
func Executable(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// Stops runs e with raw, cancels it after `after`, and checks that Run
// reports the cancellation within `within` and leaves no child process
// behind.
func Stops(t testing.TB, e lab.Experiment, raw map[string]any, after, within time.Duration) {
	t.Helper()
	p, err := lab.Resolve(e.Info().Params, raw)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(after, cancel)
	began := time.Now()
	if err := e.Run(ctx, p, func(lab.Event) {}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if d := time.Since(began); d > within {
		t.Errorf("Run returned %v after it began, more than %v", d, within)
	}
	if n := testenv.ChildProcesses(t, os.Getpid()); n != 0 {
		t.Errorf("%d child processes left behind", n)
	}
}

// OpenFDs counts this process's open descriptors, after making sure Go's
// netpoller has opened its own (it does on first use, and would otherwise
// be counted as a leak of whatever used the network first).
func OpenFDs(t testing.TB) int {
	t.Helper()
	if l, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		l.Close()
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// Main is TestMain for a package whose experiment starts this binary as
// its children: in a child, child turns the process into one (and returns
// true); otherwise the tests run.
func Main(m *testing.M, child func() bool) {
	if child() {
		return
	}
	os.Exit(m.Run())
}
