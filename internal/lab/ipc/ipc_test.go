package ipc

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/lab/labtest"
	"github.com/stampede-dev/stampede/internal/testenv"
)

// TestMain lets this test binary be both ends, as the stampede binary is
// in the lab.
func TestMain(m *testing.M) { labtest.Main(m, ChildMain) }

// Every mechanism carries every round trip intact in every placement,
// and every one but signals streams its data.
func TestEveryMechanism(t *testing.T) {
	exe := labtest.Executable(t)
	// A limit long enough that no mechanism meets it on a loaded machine,
	// but for the busy-wait on one core, which is meant to.
	r := labtest.Run[Result](t, New(exe), map[string]any{"trips": 100, "mib": 1, "limit": 5000}, nil)
	places := len(r.Placements)
	if len(r.Rows) != places*len(Mechanisms) {
		t.Fatalf("%d rows for %d placements", len(r.Rows), places)
	}
	for _, row := range r.Rows {
		want := row.Trips == 100
		if row.Mechanism == "shm-spin" && row.Placement == "one core" {
			// Each side spins out its whole time slice before the other
			// runs: milliseconds a trip, so the time limit may end it.
			want = row.Trips > 0 && row.Trips <= 100
		}
		if !want || row.Corrupt != 0 || row.MedianUS <= 0 || row.P99US < row.MedianUS {
			t.Errorf("%s, %s: %+v; want 100 intact round trips", row.Name, row.Placement, row)
		}
		wantMiB := 1.0
		if row.Mechanism == "signal" {
			wantMiB = 0
		}
		if row.MiB != wantMiB || (wantMiB > 0) != (row.MiBps > 0) {
			t.Errorf("%s, %s: streamed %v MiB at %v MiB/s; want %v MiB", row.Name, row.Placement, row.MiB, row.MiBps, wantMiB)
		}
	}
	if len(r.Verdicts) < 4 || !strings.HasPrefix(r.Verdicts[0], `Shared memory "fastest": `) {
		t.Errorf("verdicts %q", r.Verdicts)
	}
	if n := testenv.ChildProcesses(t, os.Getpid()); n != 0 {
		t.Errorf("%d child processes left behind", n)
	}
}

// Stop ends the run promptly and leaves no child process and no
// descriptor behind.
func TestStopLeavesNothing(t *testing.T) {
	before := labtest.OpenFDs(t)
	labtest.Stops(t, New(labtest.Executable(t)), map[string]any{"trips": 1_000_000, "mib": 8192, "limit": 10_000}, 300*time.Millisecond, 5*time.Second)
	if after := labtest.OpenFDs(t); after != before {
		t.Errorf("%d descriptors open after the run, %d before", after, before)
	}
}
