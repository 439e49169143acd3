package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"
)

// TestRunEndsWhateverTheRate: the open model at the highest rate it takes
// cannot keep up, yet the run ends about when -d says: slots more than
// lateGrace late are not sent. (A generous bound: this tests that the run
// ends, not how fast the machine is.)
func TestRunEndsWhateverTheRate(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	start := time.Now()
	res, err := Run(context.Background(), Config{Targets: target(t, srv.URL), Rate: MaxRate, MaxInFlight: 64,
		Duration: time.Second, KeepAlive: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("a 1 s run at %d requests/s took %v", MaxRate, took)
	}
	if res.Requests() == 0 {
		t.Error("no request was sent")
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

// TestEndlessHTTPSBodyCostsNoMemory: a server that never stops sending a
// body over TLS is read through a fixed buffer until the request timeout;
// the load generator's memory does not grow with what it reads.
func TestEndlessHTTPSBodyCostsNoMemory(t *testing.T) {
	chunk := make([]byte, 64<<10)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res, err := Run(context.Background(), Config{Targets: target(t, srv.URL), Users: 4, Duration: 2 * time.Second,
		Timeout: time.Second, KeepAlive: true, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if res.BytesIn < 50<<20 {
		t.Fatalf("read only %d bytes of the endless bodies; the test proves nothing", res.BytesIn)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > uint64(res.BytesIn/4) {
		t.Errorf("reading %d MiB of body allocated %d MiB", res.BytesIn>>20, grew>>20)
	}
	if res.Errors[ErrTimeout] == 0 {
		t.Errorf("errors %v: the endless bodies should end in timeouts", res.Errors)
	}
}
