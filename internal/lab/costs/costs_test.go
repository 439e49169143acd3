package costs

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/lab"
	"github.com/stampede-dev/stampede/internal/lab/labtest"
	"github.com/stampede-dev/stampede/internal/testenv"
)

func TestMain(m *testing.M) { labtest.Main(m, ChildMain) }

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
		// calls (on a busy machine, under -race, a dozen or more); a leak
		// of the experiment's own 50 shows far above.
		if g <= goroutines && th <= thr+24 && c == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind: %d goroutines (had %d), %d threads (had %d), %d child processes", g, goroutines, th, thr, c)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Small enough for the race detector's limit of 8,128 goroutines.
var small = map[string]any{"goroutines": "2000", "threads": "50", "processes": "5", "roundtrips": "2000"}

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
		// The figure is the median of the rounds, net of passing the
		// token with no switch.
		if s.RoundTrips != 400 || s.Rounds != switchRounds || s.BaseNs <= 0 || s.NsPerSwap >= s.RawNs ||
			s.MinNs > s.NsPerSwap || s.NsPerSwap > s.MaxNs {
			t.Errorf("switch %+v: want 5 rounds of 400 trips, a base taken off, the median within the range", s)
		}
		// The kernel switches threads and processes (2 or a little more per round
		// trip, one each side) but not goroutines.
		if k := s.KernelSwitches; (s.Kind == "goroutine" && k > 0.5) || (s.Kind != "goroutine" && s.Cores == 1 && (k < 1.5 || k > 4)) {
			t.Errorf("%s on %d core(s): the kernel counted %.2f switches per round trip", s.Kind, s.Cores, k)
		}
		wantWhat := map[bool]string{true: "context switch on one CPU", false: "cross-CPU wake-up (one side on each of two CPUs)"}[s.Cores == 1]
		if s.Kind != "goroutine" && s.What != wantWhat {
			t.Errorf("%s on %d core(s) is called %q, want %q", s.Kind, s.Cores, s.What, wantWhat)
		}
	}
	if len(res.Claims) != 5 {
		t.Errorf("%d claims, want 5", len(res.Claims))
	}
	for i, c := range res.Claims[:3] {
		// Under the race detector every channel operation is instrumented,
		// and a goroutine switch can cost no more than its base in a round
		// (its figure is then 0): there the goroutine's claim is held to
		// a range, not to a cost.
		if i == 2 && raceEnabled {
			if c.MinMeasured < 0 || c.MaxMeasured <= 0 || c.MaxMeasured < c.MinMeasured {
				t.Errorf("claim %+v: want the range of the rounds", c)
			}
			continue
		}
		if c.Measured <= 0 || c.MinMeasured <= 0 || c.MaxMeasured < c.MinMeasured || c.Kind == "unmeasured" {
			t.Errorf("claim %+v: want the median and the range of the rounds", c)
		}
	}
	if g := res.Creations[0]; g.WarmEachNs <= 0 || g.StackEach < 2048 || g.StackEach > 8192 {
		t.Errorf("goroutines: warm %v ns, stack %v bytes each; want a warm figure and Go's stack of 2 KiB and a little", g.WarmEachNs, g.StackEach)
	}
	if p := res.Creations[2]; p.SpawnNs <= 0 || p.SpawnWhat == "" || p.PrivateEach <= 0 || p.SharedEach <= 0 {
		t.Errorf("processes: spawn %v ns of %q, private %v, shared %v", p.SpawnNs, p.SpawnWhat, p.PrivateEach, p.SharedEach)
	}
	// The least a process can be: a few pages of its own, far below a Go
	// child's.
	if p := res.Creations[2]; runtime.GOARCH == "amd64" && (p.MinimalPrivate <= 0 || p.MinimalPrivate > 64<<10 || p.MinimalKernel <= 0 || p.MinimalPrivate >= p.PrivateEach) {
		t.Errorf("the minimal process: %v private, %v kernel; a Go child %v private", p.MinimalPrivate, p.MinimalKernel, p.PrivateEach)
	}
}

func TestCostsCancelLeavesNothing(t *testing.T) {
	e := New()
	p, err := lab.Resolve(e.Info().Params, map[string]any{"goroutines": "1000", "threads": "50", "processes": "200", "roundtrips": "500"})
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
		{Kind: "thread", RSSEach: 12 << 10, KernelEach: 4 << 10},
		{Kind: "process", PrivateEach: 1 << 20, SharedEach: 10 << 20},
	}}
	u := users(r, 100_000)
	if u.SavedBytes != 14<<10*100_000 || u.SavedPercent != 87.5 {
		t.Fatalf("saved %v bytes, %v%%", u.SavedBytes, u.SavedPercent)
	}
	want := "100,000 users with a thread each would hold 1.53 GiB of memory (kernel memory included); with a goroutine each, 195.3 MiB: goroutines save 1.34 GiB (88%). " +
		"A process each would hold 97.67 GiB: what each holds alone, and once what they share. " +
		"But 100,000 threads cannot run here at all: Go stops a program at 10,000 threads unless it raises the limit (debug.SetMaxThreads)."
	if u.Sentence != want {
		t.Errorf("sentence\n got %s\nwant %s", u.Sentence, want)
	}
	r.limits = limits{PidMax: 32768, ThreadsMax: 1_000_000, MaxMapCount: 65530}
	if got := threadLimits(100_000, r.limits); len(got) != 3 || got[0] != "kernel.pid_max is 32,768, and every thread takes an id" ||
		got[1] != "vm.max_map_count is 65,530 mappings per process, and each thread's stack takes two (the stack and its guard)" {
		t.Errorf("limits for 100,000 threads: %q", got)
	}
	if got := threadLimits(1000, r.limits); len(got) != 0 {
		t.Errorf("limits for 1,000 threads: %q", got)
	}
	r.Creations[2].MinimalPrivate, r.Creations[2].MinimalKernel, r.Creations[2].MinimalShared = 8<<10, 32<<10, 4<<10
	if u := users(r, 100_000); !strings.HasSuffix(strings.SplitN(u.Sentence, " But ", 2)[0],
		"A process each would hold 97.67 GiB: what each holds alone, and once what they share. (Most of that is Go's runtime: the least a process can be would still hold 3.81 GiB, its own pages and the kernel's.)") {
		t.Errorf("with a minimal process: %s", u.Sentence)
	}
	r.Creations[0].RSSEach = 32 << 10 // goroutines dearer: no saving is claimed
	if u := users(r, 10); u.SavedPercent != 0 || !strings.Contains(u.Sentence, "no saving") {
		t.Errorf("dearer goroutines: %+v", u)
	}
}

// TestVerdict: one figure, or a range over rounds, against the claimed
// band; a range across an edge of the band is inconclusive.
func TestVerdict(t *testing.T) {
	for _, c := range []struct {
		claim      Claim
		kind, want string
	}{
		{Claim{Low: 1e6, High: 1e7, Unit: "ns", Measured: 5e3}, "cheaper", "cheaper than claimed: 5.00 µs here, 200× below the low end"},
		{Claim{Low: 1e3, High: 1e4, Unit: "ns", Measured: 2e3}, "matches", "matches: 2.00 µs here"},
		{Claim{Low: 50, High: 200, Unit: "ns", Measured: 500}, "dearer", "dearer than claimed: 500 ns here, 2.5× above the high end"},
		{Claim{Low: 1 << 10, High: 4 << 10, Unit: "bytes", Measured: 2800}, "matches", "matches: 2.7 KiB here"},
		{Claim{Low: 1, High: 2, Unit: "ns", Measured: 0}, "unmeasured", "not measured"},
		{Claim{Low: 50, High: 200, Unit: "ns", Measured: 160, MinMeasured: 148, MaxMeasured: 313}, "inconclusive",
			"inconclusive: 160 ns here (median; 148 ns to 313 ns over the rounds), across an edge of the claimed 50 ns to 200 ns"},
		{Claim{Low: 50, High: 200, Unit: "ns", Measured: 160, MinMeasured: 148, MaxMeasured: 189}, "matches",
			"matches: 160 ns here (median; 148 ns to 189 ns over the rounds)"},
		{Claim{Low: 1e3, High: 1e4, Unit: "ns", Measured: 500, MinMeasured: 400, MaxMeasured: 600}, "cheaper",
			"cheaper than claimed: 500 ns here (median; 400 ns to 600 ns over the rounds), 2.0× below the low end"},
	} {
		if kind, got := Verdict(c.claim); kind != c.kind || got != c.want {
			t.Errorf("verdict(%+v) = %s, %q; want %s, %q", c.claim, kind, got, c.kind, c.want)
		}
	}
}

// TestExitELF: the program spawnCost starts runs and exits 0 on this
// machine's architecture.
func TestExitELF(t *testing.T) {
	elf := exitELF(runtime.GOARCH)
	if elf == nil {
		t.Skipf("no tiny program for %s; spawnCost uses /bin/true", runtime.GOARCH)
	}
	p := filepath.Join(t.TempDir(), "exit")
	if err := os.WriteFile(p, elf, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(p).Run(); err != nil {
		t.Fatalf("the %d-byte program: %v", len(elf), err)
	}
}
