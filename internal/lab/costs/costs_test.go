package costs

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/lab"
	"github.com/stampede-dev/stampede/internal/lab/labtest"
	"github.com/stampede-dev/stampede/internal/testenv"
)

func TestMain(m *testing.M) {
	if ChildMain() { // the experiment starts this test binary as its children
		return
	}
	os.Exit(m.Run())
}

func threads(t *testing.T) int64 {
	t.Helper()
	st, err := readStatus("self")
	if err != nil {
		t.Fatal(err)
	}
	return st.Threads
}

// settled waits until goroutines, threads and children are back to what
// they were, and fails the test if they do not come back.
func settled(t *testing.T, goroutines int, thr int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g, th, c := runtime.NumGoroutine(), threads(t), testenv.ChildProcesses(t, os.Getpid())
		// The runtime keeps idle threads it started for blocked system
		// calls; a leak of the experiment's (50 or more) shows far above.
		if g <= goroutines && th <= thr+10 && c == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind: %d goroutines (had %d), %d threads (had %d), %d child processes", g, goroutines, th, thr, c)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Small enough for the race detector's limit of 8,128 goroutines.
var small = map[string]any{"goroutines": "2000", "threads": "50", "processes": "5", "roundtrips": "500"}

func TestCostsMeasuresAndCleansUp(t *testing.T) {
	g0, th0 := runtime.NumGoroutine(), threads(t)
	res := labtest.Run[Result](t, New(), small, nil)
	settled(t, g0, th0)

	if len(res.Creations) != 3 {
		t.Fatalf("%d creations, want 3", len(res.Creations))
	}
	for i, want := range []struct {
		kind string
		n    int
	}{{"goroutine", 2000}, {"thread", 50}, {"process", 5}} {
		c := res.Creations[i]
		if c.Kind != want.kind || c.N != want.n || c.EachNs <= 0 || c.TotalNs <= 0 {
			t.Errorf("creation %d: %+v, want %s × %d with times", i, c, want.kind, want.n)
		}
	}
	if p := res.Creations[2]; p.RSSEach <= 0 || p.PSSEach <= 0 || p.PSSEach > p.RSSEach || len(p.LatenciesUs) != 5 {
		t.Errorf("process memory: RSS %v PSS %v, %d latencies", p.RSSEach, p.PSSEach, len(p.LatenciesUs))
	}
	if th := res.Creations[1]; th.VirtEach <= th.RSSEach {
		t.Errorf("a thread reserves %v of address space but holds %v resident: reserve should be larger", th.VirtEach, th.RSSEach)
	}
	if !strings.Contains(res.Creations[1].Note, ": 50 distinct kernel threads, ") {
		t.Errorf("thread note: %q", res.Creations[1].Note)
	}
	wantSwitches := 3 * len(coreSettings())
	if len(res.Switches) != wantSwitches {
		t.Fatalf("%d switch measurements, want %d", len(res.Switches), wantSwitches)
	}
	for _, s := range res.Switches {
		if s.NsPerSwap <= 0 || s.RoundTrips != 500 {
			t.Errorf("switch %+v", s)
		}
	}
	if len(res.Claims) != 5 {
		t.Errorf("%d claims, want 5", len(res.Claims))
	}
	for _, c := range res.Claims {
		if c.Measured <= 0 && c.Unit == "ns" || c.Verdict == "" || c.Verdict == "not measured" && c.Unit == "ns" {
			t.Errorf("claim %+v", c)
		}
	}
}

func TestCostsCancelLeavesNothing(t *testing.T) {
	e := New()
	p, err := lab.Resolve(e.Info().Params, map[string]any{"goroutines": "1000", "threads": "20", "processes": "200", "roundtrips": "500"})
	if err != nil {
		t.Fatal(err)
	}
	g0, th0 := runtime.NumGoroutine(), threads(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err = e.Run(ctx, p, func(ev lab.Event) {
		// Cancel with processes alive: the tenth one is starting.
		if ev.Kind == lab.KindProgress && ev.Message == "starting processes" && ev.Done == 10 {
			if c := testenv.ChildProcesses(t, os.Getpid()); c != 10 {
				t.Errorf("%d children alive at the tenth start, want 10", c)
			}
			cancel()
		}
		if ev.Kind == lab.KindResult {
			t.Error("a cancelled run produced a result")
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	settled(t, g0, th0)
}

func TestUsersSentence(t *testing.T) {
	r := Result{Creations: []Creation{
		{Kind: "goroutine", RSSEach: 2 << 10},
		{Kind: "thread", RSSEach: 16 << 10},
		{Kind: "process", PSSEach: 1 << 20},
	}}
	u := users(r, 100_000)
	if u.SavedBytes != 14<<10*100_000 || u.SavedPercent != 87.5 {
		t.Fatalf("saved %v bytes, %v%%", u.SavedBytes, u.SavedPercent)
	}
	want := "100,000 users with a thread each would hold 1.53 GiB of memory; with a goroutine each, 195.3 MiB: goroutines save 1.34 GiB (88%). A process each would hold 97.66 GiB."
	if u.Sentence != want {
		t.Errorf("sentence\n got %s\nwant %s", u.Sentence, want)
	}
	r.Creations[0].RSSEach = 32 << 10 // goroutines dearer: no saving is claimed
	if u := users(r, 10); u.SavedPercent != 0 || !strings.Contains(u.Sentence, "no saving") {
		t.Errorf("dearer goroutines: %+v", u)
	}
}

func TestVerdict(t *testing.T) {
	for _, c := range []struct {
		claim Claim
		want  string
	}{
		{Claim{Low: 1e6, High: 1e7, Unit: "ns", Measured: 5e3}, "cheaper than claimed: 5.00 µs here, 200× below the low end"},
		{Claim{Low: 1e3, High: 1e4, Unit: "ns", Measured: 2e3}, "matches: 2.00 µs here"},
		{Claim{Low: 50, High: 200, Unit: "ns", Measured: 500}, "dearer than claimed: 500 ns here, 2.5× above the high end"},
		{Claim{Low: 1 << 10, High: 4 << 10, Unit: "bytes", Measured: 2800}, "matches: 2.7 KiB here"},
		{Claim{Low: 1, High: 2, Unit: "ns", Measured: 0}, "not measured"},
	} {
		if got := verdict(c.claim); got != c.want {
			t.Errorf("verdict(%+v) = %q, want %q", c.claim, got, c.want)
		}
	}
}
