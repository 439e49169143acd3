// Package labtest runs lab experiments to the end in tests.
package labtest

import (
	"context"
	"sync"
	"testing"

	"github.com/stampede-dev/stampede/internal/lab"
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
