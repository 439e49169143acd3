package isolation

import (
	"os"
	"strings"
	"testing"

	"github.com/stampede-dev/stampede/internal/lab/labtest"
	"github.com/stampede-dev/stampede/internal/testenv"
)

// TestMain lets this test binary be the children, as the stampede binary
// is in the lab.
func TestMain(m *testing.M) { labtest.Main(m, ChildMain) }

func TestWallsAndDoors(t *testing.T) {
	exe := labtest.Executable(t)
	r := labtest.Run[*Result](t, New(exe), map[string]any{"children": 5}, nil)
	if len(r.Children) != 5 || !r.SameAddress || !r.OwnValues {
		t.Fatalf("children %+v, same address %v, own values %v", r.Children, r.SameAddress, r.OwnValues)
	}
	pids := map[int]bool{}
	for i, c := range r.Children {
		if c.Wrote != int64(1000*(i+1)) || c.Read != c.Wrote || c.Shared != 5 || c.Exit != "exit status 0" || pids[c.PID] {
			t.Errorf("child %d: %+v; want its own value read back, the shared counter at 5, exit 0, a pid of its own", i, c)
		}
		pids[c.PID] = true
		if !strings.Contains(c.MapLine, " rw-p ") || !strings.Contains(c.Text, " r-xp ") {
			t.Errorf("child %d maps: global %q, code %q", i, c.MapLine, c.Text)
		}
	}
	if r.Crashed.Exit != "exit status 2" || !strings.HasPrefix(r.Crashed.Signal, "[signal SIGSEGV: segmentation violation") {
		t.Errorf("the crashing child: %+v", r.Crashed)
	}
	// Each other child was counting when its sibling crashed, and went on.
	for i, c := range r.Children {
		if r.CrashedAt == 0 || c.CountFrom >= r.CrashedAt || c.CountTo <= r.CrashedAt || c.Counted < 1 {
			t.Errorf("child %d counted %d ticks from %d to %d; the crash was at %d", i, c.Counted, c.CountFrom, c.CountTo, r.CrashedAt)
		}
	}
	if r.Panic.Exit != "exit status 2" || r.Panic.Reason != "panic: goroutine 4 gives up" || len(r.Panic.Counts) != 4 {
		t.Errorf("the panic: %+v", r.Panic)
	}
	if n := testenv.ChildProcesses(t, os.Getpid()); n != 0 {
		t.Errorf("%d child processes left behind", n)
	}
}
