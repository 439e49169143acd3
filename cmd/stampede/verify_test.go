package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/backend"
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
	// --max-stall 8s: a bound a busy machine does not break, here where the
	// other packages' tests share the cores and the PostgreSQL; it still
	// catches the 10 s a dead worker's orders once waited for its
	// heartbeat to lapse. The 2 s default is measured, ten runs a fault,
	// by bench/faults-repeat.sh.
	sale := []string{"--stock", "150", "--purchases", "300", "--users", "100", "--limit", "2", "-d", "3s", "--max-stall", "8s"}
	scaled := []string{"--strategy", "reserve", "--redis", "private", "--procs", "2"}
	// The store is one the test can read after the run, where the fault
	// allows it (pg-pause must freeze a PostgreSQL of verify's own): its
	// rows are then counted with the database's own client and held to
	// what verify said.
	sqlite := func(t testing.TB) string { return "sqlite:" + filepath.Join(t.TempDir(), "shop.db") }
	for _, tc := range []struct {
		name  string
		store func(t testing.TB) string
		args  []string
	}{
		{"embedded, kill-shop", sqlite, []string{"--strategy", "reserve", "--faults", "kill-shop@1s"}},
		{"scaled, kill-worker", testenv.Postgres, append(scaled, "--faults", "kill-worker@1s")},
		{"scaled, kill-shop", testenv.Postgres, append(scaled, "--faults", "kill-shop@1s")},
		{"scaled, redis-restart", testenv.Postgres, append(scaled, "--faults", "redis-restart@1s")},
		{"scaled, pg-pause", nil, append(scaled, "--store", "postgres", "--faults", "pg-pause@1s/1500ms")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args, sale...)
			var store string
			if tc.store != nil {
				store = tc.store(t)
				args = append(args, "--store", store)
			}
			rep, code, stderr := verifyRun(t, args...)
			if store != "" {
				// orders, units in them, distinct keys; the product's stock and sold
				want := fmt.Sprintf("%d %d %d %d %d", rep.Outcomes.Stored, 150, rep.Outcomes.Stored, 0, 150)
				got := testenv.SQL(t, store, `SELECT count(*) || ' ' || coalesce(sum(quantity), 0) || ' ' || count(DISTINCT idempotency_key) || ' ' || (SELECT stock || ' ' || sold FROM products) FROM orders`)
				if got != want || rep.Outcomes.Stored != 150 {
					t.Errorf("counted with SQL: %q (orders, units, keys, stock, sold); verify said %d stored of 150 units", got, rep.Outcomes.Stored)
				}
			}
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
			if rep.Planned != 300 || rep.Sent != 300 || !(rep.LongestStall > 0 && rep.LongestStall <= 8) {
				t.Errorf("planned %d, sent %d, longest stall %.3fs", rep.Planned, rep.Sent, rep.LongestStall)
			}
		})
	}
}

// TestKill9LeavesNothing: kill -9 of verify in the middle of a sale, while
// its private PostgreSQL is frozen (its backends stopped, which no signal
// but SIGKILL ends), leaves no process and no folder: the reaper kills
// the servers and the shop and removes the run's folders.
func TestKill9LeavesNothing(t *testing.T) {
	testenv.Binary(t, "redis-server")
	testenv.Binary(t, "initdb")
	cmd, tmp, stdout, stderr := startInTempDir(t, "verify", "--strategy", "reserve", "--store", "postgres", "--redis", "private", "--procs", "2",
		"--stock", "100000", "--purchases", "100000", "--users", "100000", "-d", "20s", "--faults", "pg-pause@500ms/19s")
	go io.Copy(io.Discard, stdout)
	// The sale has begun once verify says so; the freeze comes 500 ms on.
	// A verify that never begins its sale is killed after a minute, which
	// ends the scan below.
	stall := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
	sc := bufio.NewScanner(stderr)
	var said []string
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "verify: sale:") {
		said = append(said, sc.Text())
	}
	if sc.Err() != nil || !strings.HasPrefix(sc.Text(), "verify: sale:") || !stall.Stop() {
		t.Fatalf("verify never began its sale: %v %q", sc.Err(), said)
	}
	go io.Copy(io.Discard, stderr)
	time.Sleep(1500 * time.Millisecond)
	owned := processTree(t, cmd.Process.Pid)
	pidFiles, _ := filepath.Glob(filepath.Join(tmp, "stampede-pg-*", "data", "postmaster.pid"))
	if len(pidFiles) != 1 {
		t.Fatalf("%d private PostgreSQL clusters under TMPDIR, want 1", len(pidFiles))
	}
	b, _ := os.ReadFile(pidFiles[0])
	postmaster, _ := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	owned = append(owned, processTree(t, postmaster)...)
	if len(owned) < 8 { // verify, its reaper, redis, the shop and 2 workers, the postmaster and its backends
		t.Fatalf("only %d processes under verify and its PostgreSQL: %v", len(owned), owned)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	nothingLeft(t, "verify", owned, tmp)
}

// processTree lists pid and its descendants, its reaper included.
func processTree(t *testing.T, pid int) []int {
	out := []int{pid}
	for _, c := range backend.Children(pid) {
		out = append(out, processTree(t, c)...)
	}
	return out
}

// nothingLeft waits up to 20 s for every process in owned to be gone and
// the folder tmp to be empty, after what made them was killed; it fails
// the test with what was left, and kills it.
func nothingLeft(t *testing.T, what string, owned []int, tmp string) {
	t.Helper()
	killed := time.Now()
	alive := func() (left []int) {
		for _, pid := range owned {
			if !backend.Gone(pid) {
				left = append(left, pid)
			}
		}
		return left
	}
	var left []int
	var files []os.DirEntry
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		left = alive()
		files, _ = os.ReadDir(tmp)
		if len(left) == 0 && len(files) == 0 {
			break
		}
	}
	t.Logf("%d processes and the folders gone %v after the kill", len(owned), time.Since(killed).Round(time.Millisecond))
	for _, pid := range left {
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		t.Errorf("process %d outlived %s: %s", pid, what, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		// Killed only if it is one of this test's: a pid seen 20 s ago
		// may be another process's now. The test's processes, and theirs,
		// carry its TMPDIR.
		if env, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ"); bytes.Contains(env, []byte("TMPDIR="+tmp+"\x00")) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, f := range files {
		t.Errorf("%s was left in TMPDIR", f.Name())
	}
}

// startInTempDir starts `stampede ARGS…` with TMPDIR a folder of the
// test's own, which the user postgres can reach (t.TempDir's are 0700; a
// private PostgreSQL runs as postgres when this is root), and kills it
// when the test ends. The caller reads both pipes.
func startInTempDir(t *testing.T, args ...string) (cmd *exec.Cmd, tmp string, stdout, stderr io.ReadCloser) {
	t.Helper()
	tmp = t.TempDir()
	for d := tmp; d != filepath.Dir(d) && strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	cmd = exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var err error
	if stdout, err = cmd.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	if stderr, err = cmd.StderrPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, tmp, stdout, stderr
}

// TestLabKill9MidSaleLeavesNothing: kill -9 of the lab while its flash
// sale runs (a shop of 2 processes and a private Redis) leaves no process
// and no folder.
func TestLabKill9MidSaleLeavesNothing(t *testing.T) {
	testenv.Binary(t, "redis-server")
	cmd, tmp, stdout, stderr := startInTempDir(t, "lab", "--addr", "127.0.0.1:0")
	go io.Copy(io.Discard, stderr)
	sc := bufio.NewScanner(stdout)
	var url string
	for url == "" && sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 2 && f[0] == "stampede" && f[1] == "lab:" {
			url = f[2]
		}
	}
	go io.Copy(io.Discard, stdout)
	if url == "" {
		t.Fatal("the lab did not print its URL")
	}
	resp, err := http.Post(url+"/api/experiments/flashsale/runs", "application/json",
		strings.NewReader(`{"strategy":"reserve","procs":2,"seconds":30,"buyers":100000,"users":100000,"stock":100000}`))
	if err != nil {
		t.Fatal(err)
	}
	var run struct{ Events string }
	json.NewDecoder(resp.Body).Decode(&run)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("create the sale: %d", resp.StatusCode)
	}
	events, err := http.Get(url + run.Events)
	if err != nil {
		t.Fatal(err)
	}
	defer events.Body.Close()
	// The sale has begun at its first "selling" progress event; a run that
	// cannot begin within 60 s fails the test rather than hanging it.
	began := make(chan error, 1)
	go func() {
		var seen []string
		es := bufio.NewScanner(events.Body)
		for es.Scan() {
			if strings.Contains(es.Text(), `"selling"`) {
				began <- nil
				io.Copy(io.Discard, events.Body)
				return
			}
			if es.Text() != "" {
				seen = append(seen, es.Text())
			}
		}
		began <- fmt.Errorf("the stream ended (%v) after %q", es.Err(), seen)
	}()
	select {
	case err := <-began:
		if err != nil {
			t.Fatalf("the sale never began: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the sale did not begin within 60 s")
	}
	owned := processTree(t, cmd.Process.Pid)
	if len(owned) < 5 { // the lab, its reaper, redis, the shop and its 2 workers
		t.Fatalf("only %d processes under the lab: %v", len(owned), owned)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	nothingLeft(t, "the lab", owned, tmp)
}
