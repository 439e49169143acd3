package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunEndsWhateverTheRate: the open model at the highest rate it takes
// cannot keep up, yet the run ends when -d says: nothing is sent past
// the hard end, and what was due and not answered by then is unfinished.
// (A generous bound: this tests that the run ends, not how fast the
// machine is.)
func TestRunEndsWhateverTheRate(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	start := time.Now()
	res, err := Run(context.Background(), Config{Targets: target(t, srv.URL), Rate: MaxRate, MaxInFlight: 64,
		Duration: time.Second, KeepAlive: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("a 1 s run at %d requests/s took %v", MaxRate, took)
	}
	if res.Requests() == 0 {
		t.Error("no request was sent")
	}
	if res.Unfinished == 0 {
		t.Error("a schedule of 10 million requests a second left none unfinished")
	}
}

// TestRunStopsOnCancel: cancelling a run (what SIGINT and SIGTERM do)
// ends it promptly, with the result so far.
func TestRunStopsOnCancel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	for _, cfg := range []Config{
		{Rate: MaxRate, MaxInFlight: 64},
		{Users: 64},
	} {
		cfg.Targets, cfg.Duration, cfg.KeepAlive, cfg.Timeout = target(t, srv.URL), time.Minute, true, 5*time.Second
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		start := time.Now()
		res, err := Run(ctx, cfg)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 10*time.Second || res.Requests() == 0 {
			t.Errorf("rate %g, users %d: cancelled after 0.5 s, returned after %v with %d requests", cfg.Rate, cfg.Users, took, res.Requests())
		}
	}
}

// TestEndlessBodyCostsNoMemory: a server that never stops sending a body
// is read through a fixed buffer until the request timeout, over TLS (Go's
// client) and plain http (the epoll reactor and the goroutine engine
// alike); the load generator's live memory does not grow with what it
// reads. The heap is sampled throughout, and runs repeat until enough was
// read for the bound to mean something, however slow a loaded machine reads.
func TestEndlessBodyCostsNoMemory(t *testing.T) {
	chunk := make([]byte, 64<<10)
	endless := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	tlsSrv := httptest.NewTLSServer(endless)
	defer tlsSrv.Close()
	plain := httptest.NewServer(endless)
	defer plain.Close()
	for _, c := range []struct{ url, engine string }{
		{tlsSrv.URL, EngineAuto}, {plain.URL, EngineEpoll}, {plain.URL, EngineGoroutines},
	} {
		scheme, _, _ := strings.Cut(c.url, ":")
		t.Run(scheme+"-"+c.engine, func(t *testing.T) {
			readEndlessBodies(t, Config{Targets: target(t, c.url), Users: 4, Duration: 2 * time.Second,
				Timeout: time.Second, KeepAlive: true, Insecure: true, Engine: c.engine})
		})
	}
}

func readEndlessBodies(t *testing.T, cfg Config) {
	const enough, bound = 64 << 20, 16 << 20
	var base runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	var read, timeouts int64
	for run := 0; run < 10 && read < enough; run++ {
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		read += res.BytesIn
		timeouts += res.Errors[ErrTimeout]
	}
	close(stop)
	<-sampled
	if read < enough {
		t.Fatalf("read only %d MiB of the endless bodies in 10 runs; the test proves nothing", read>>20)
	}
	grew := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("read %d MiB; the heap in use grew by %d KiB at most", read>>20, grew>>10)
	if grew > bound {
		t.Errorf("reading %d MiB of body grew the heap in use by %d MiB (bound %d MiB)", read>>20, grew>>20, bound>>20)
	}
	if timeouts == 0 {
		t.Errorf("the endless bodies should end in timeouts")
	}
}
