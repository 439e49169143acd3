package verify

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestRunARealSale runs verify itself in this (race-detecting) test
// process against the real shop, built from ./cmd/stampede, with the shop
// killed and restarted mid-sale: the sale, the readers, the fault and the
// live seconds all run at once here, so the race detector watches them.
func TestRunARealSale(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "stampede")
	if out, err := exec.Command("go", "build", "-o", exe, "github.com/stampede-dev/stampede/cmd/stampede").CombinedOutput(); err != nil {
		t.Fatalf("build stampede: %v\n%s", err, out)
	}
	cfg := Defaults()
	cfg.Exe, cfg.Strategy = exe, "reserve"
	cfg.Stock, cfg.Purchases, cfg.Users, cfg.Limit, cfg.Duration = 60, 240, 120, 2, 2*time.Second
	cfg.Faults = []Fault{{Kind: KillShop, At: time.Second, For: 300 * time.Millisecond}}
	var seconds int
	cfg.Live = func(Live) { seconds++ }
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, inv := range rep.Invariants {
		if inv.Verdict != Pass {
			t.Errorf("%s: expected %s, observed %s", inv.Name, inv.Expected, inv.Observed)
		}
	}
	if o := rep.Outcomes; o.Acknowledged != 60 || o.Stored != 60 || o.Purchases != 240 {
		t.Errorf("outcomes %+v: want 60 acknowledged and stored of 240", o)
	}
	if len(rep.Events) != 1 || rep.Events[0].Err != "" || seconds < 2 || len(rep.History) < 240 {
		t.Errorf("events %+v, %d live seconds, %d operations in the history", rep.Events, seconds, len(rep.History))
	}
}
