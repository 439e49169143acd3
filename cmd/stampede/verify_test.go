package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stampede-dev/stampede/internal/testenv"
	"github.com/stampede-dev/stampede/internal/verify"
)

// verifyRun runs `stampede verify ARGS… --json -` and returns its report
// and exit code.
func verifyRun(t *testing.T, args ...string) (*verify.Report, int, string) {
	t.Helper()
	cmd := exec.Command(binary, append(append([]string{"verify", "-q", "--json", "-"}, args...), "--html", filepath.Join(t.TempDir(), "verify.html"))...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var rep verify.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("verify %v: exit %d, no report (%v): %s", args, code, err, stderr.String())
	}
	return &rep, code, strings.TrimSpace(stderr.String())
}

func verdicts(rep *verify.Report) map[string]verify.Verdict {
	out := make(map[string]verify.Verdict)
	for _, inv := range rep.Invariants {
		out[inv.Name] = inv.Verdict
	}
	return out
}

// The invariants every verification judges, in the order of the table.
var invariantNames = []string{
	"books balance", "never oversold", "sold matches the orders", "acknowledged orders stored once",
	"no order nobody sent", "no buyer charged and refused", "per-user limit", "every purchase settled",
	"no undersell", "retries replay the order", "stock reads linearizable", "the sale ran", "no stall",
}

// TestVerifyCatchesOverselling: verify must fail the strategies whose
// lesson is the oversell, naive in one process and mutex in four, each
// with a 20 ms race window and a crowd dense enough to use it.
func TestVerifyCatchesOverselling(t *testing.T) {
	sale := []string{"--stock", "200", "--purchases", "900", "--users", "600", "--limit", "2", "-d", "3s", "--gap", "20ms"}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"naive", []string{"--strategy", "naive"}},
		{"mutex with 4 processes", []string{"--strategy", "mutex", "--procs", "4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, code, stderr := verifyRun(t, append(tc.args, sale...)...)
			v := verdicts(rep)
			if code != 1 || v["never oversold"] != verify.Fail || v["stock reads linearizable"] != verify.Fail {
				t.Errorf("exit %d, verdicts %v: want exit 1 with never oversold and linearizability failed", code, v)
			}
			if !strings.HasPrefix(stderr, "stampede verify: the sale broke ") || strings.Count(stderr, "\n") != 0 {
				t.Errorf("stderr %q: want one line naming the broken invariants", stderr)
			}
			t.Logf("%s stored %d orders for 200 units", tc.name, rep.Outcomes.Stored)
			if rep.Outcomes.Stored <= 200 {
				t.Errorf("%d orders stored of 200 units: the strategy did not oversell", rep.Outcomes.Stored)
			}
		})
	}
}

// TestVerifyPassesReserveUnderFaults: the production design holds under
// every fault verify injects, in both of its setups: embedded (SQLite, one
// process) and scaled out (PostgreSQL and Redis, two processes), each
// backend private so that it may be killed or frozen.
func TestVerifyPassesReserveUnderFaults(t *testing.T) {
	testenv.Binary(t, "redis-server")
	testenv.Binary(t, "initdb")
	// --max-stall 4s: twice the default, so that a busy CI machine does
	// not fail it, and still far below the 10 s a dead worker's orders
	// waited for its heartbeat to lapse before they were taken over.
	sale := []string{"--stock", "150", "--purchases", "300", "--users", "100", "--limit", "2", "-d", "3s", "--max-stall", "4s"}
	scaled := []string{"--strategy", "reserve", "--store", "postgres", "--redis", "private", "--procs", "2"}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"embedded, kill-shop", []string{"--strategy", "reserve", "--faults", "kill-shop@1s"}},
		{"scaled, kill-worker", append(scaled, "--faults", "kill-worker@1s")},
		{"scaled, kill-shop", append(scaled, "--faults", "kill-shop@1s")},
		{"scaled, redis-restart", append(scaled, "--faults", "redis-restart@1s")},
		{"scaled, pg-pause", append(scaled, "--faults", "pg-pause@1s/1500ms")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, code, stderr := verifyRun(t, append(tc.args, sale...)...)
			var names []string
			for _, inv := range rep.Invariants {
				names = append(names, inv.Name)
				if inv.Verdict != verify.Pass {
					t.Errorf("%s: expected %s, observed %s", inv.Name, inv.Expected, inv.Observed)
				}
			}
			if strings.Join(names, ",") != strings.Join(invariantNames, ",") {
				t.Errorf("invariants %q, want %q", names, invariantNames)
			}
			if code != 0 || stderr != "" {
				t.Errorf("exit %d, stderr %q", code, stderr)
			}
			if o := rep.Outcomes; o.Acknowledged != 150 || o.Stored != 150 || o.Purchases != 300 || o.Acknowledged+o.SoldOut+o.LimitExceeded != 300 {
				t.Errorf("outcomes %+v: want 150 acknowledged and stored of 300 purchases, every one answered", o)
			}
			if len(rep.Events) != 1 || rep.Events[0].Err != "" || rep.Events[0].End <= rep.Events[0].Start {
				t.Errorf("the fault was not injected: %+v", rep.Events)
			}
			// Every planned purchase went out, and no buyer waited past
			// --max-stall beyond the fault's own window: a dead worker's
			// queued orders are taken over in about a second.
			t.Logf("longest stall %.3fs", rep.LongestStall)
			if rep.Planned != 300 || rep.Sent != 300 || !(rep.LongestStall > 0 && rep.LongestStall <= 4) {
				t.Errorf("planned %d, sent %d, longest stall %.3fs", rep.Planned, rep.Sent, rep.LongestStall)
			}
		})
	}
}
