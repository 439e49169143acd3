package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/load"
	"github.com/stampede-dev/stampede/internal/shop/postgres"
	"github.com/stampede-dev/stampede/internal/shop/shoptest"
	"github.com/stampede-dev/stampede/internal/testenv"
)

var binary string

// TestMain builds the real binary once; the end-to-end tests run it as a
// user would.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stampede-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "stampede")
	// -buildvcs=auto stamps the commit, as make build does, whatever
	// GOFLAGS says.
	out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", binary, ".").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a running stampede.
type proc struct {
	cmd    *exec.Cmd
	stderr *strings.Builder
	mu     *sync.Mutex
}

// startShop runs `stampede shop ARGS…` and waits for its "serving" line.
func startShop(t *testing.T, args ...string) (*proc, *shoptest.Client) {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(binary, append([]string{"shop", "--addr", addr}, args...)...)
	stdout, _ := cmd.StdoutPipe()
	p := &proc{cmd: cmd, stderr: &strings.Builder{}, mu: &sync.Mutex{}}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "serving http://") {
				ready <- true
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			cmd.Wait()
			t.Fatalf("shop exited before serving: %s", p.stderrText())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("shop did not start within 60s")
	}
	t.Cleanup(func() { p.stop(t) })
	c := shoptest.NewClient("http://"+addr, 2500)
	t.Cleanup(c.Close)
	return p, c
}

func (p *proc) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// stop sends SIGTERM and expects a clean exit.
func (p *proc) stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("shop exited with %v after SIGTERM: %s", err, p.stderrText())
		}
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		t.Errorf("shop ignored SIGTERM for 30s")
	}
}

// TestMutexOversellsAcrossProcesses is the lesson of Phase 2: a lock held
// in each of four processes protects nothing between them.
func TestMutexOversellsAcrossProcesses(t *testing.T) {
	// A 20 ms window: with 2 ms a clean-clone CI run on a loaded machine
	// once sold exactly 100, the four workers never overlapping at the end.
	p, c := startShop(t, "--store", "sqlite:"+filepath.Join(t.TempDir(), "shop.db"), "--strategy", "mutex", "--procs", "4", "--gap", "20ms")
	id := c.CreateProduct(t, "phone", 100, 0)
	r := shoptest.Run(t, c, id, shoptest.Sale{Users: 500, Orders: 2000})
	prod := c.Product(t, id)
	t.Logf("mutex with 4 processes sold %d of 100", prod.Sold)
	if prod.Sold <= 100 {
		t.Errorf("mutex with 4 processes sold %d of 100 (outcomes %v); the lesson needs an oversell", prod.Sold, r.Outcomes)
	}
	if n := len(c.Orders(t, id)); int64(n) != prod.Sold {
		t.Errorf("%d orders persisted, sold says %d", n, prod.Sold)
	}
	if !strings.Contains(p.stderrText(), "warning: strategy mutex is safe only in one process") {
		t.Errorf("no warning about mutex with --procs 4 on stderr: %q", p.stderrText())
	}
}

// TestReserveHoldsAcrossProcesses runs the production design as four
// workers on one port, against PostgreSQL and Redis, and restarts a worker
// killed in the middle.
func TestReserveHoldsAcrossProcesses(t *testing.T) {
	url, prefix := testenv.Redis(t)
	_, c := startShop(t, "--store", testenv.Postgres(t), "--redis", url, "--redis-prefix", prefix, "--procs", "4")

	pids := map[float64]bool{}
	for range 40 {
		c.Close() // a new connection, so the kernel picks a worker again
		var h map[string]any
		c.Do(context.Background(), "GET", "/healthz", nil, nil, &h)
		if h["strategy"] != "reserve" {
			t.Fatalf("healthz %v, want strategy reserve", h)
		}
		pids[h["pid"].(float64)] = true
	}
	if len(pids) < 2 {
		t.Fatalf("40 connections all reached one worker (%v); SO_REUSEPORT should spread them", pids)
	}
	var victim int
	for pid := range pids {
		victim = int(pid)
		break
	}
	syscall.Kill(victim, syscall.SIGKILL)
	for syscall.Kill(victim, 0) == nil { // until the supervisor has reaped it
		time.Sleep(10 * time.Millisecond)
	}
	c.Close()

	id := c.CreateProduct(t, "phone", 100, 2)
	r := shoptest.Run(t, c, id, shoptest.Sale{Users: 500, Orders: 2000, Twins: 10})
	shoptest.CheckHeld(t, c, id, 100, 2, r)

	deadline := time.Now().Add(10 * time.Second)
	for {
		c.Close()
		var h map[string]any
		c.Do(context.Background(), "GET", "/healthz", nil, nil, &h)
		if pid, _ := h["pid"].(float64); pid != 0 && !pids[pid] {
			break // a restarted worker answers
		}
		if time.Now().After(deadline) {
			t.Fatal("no restarted worker answered within 10s of kill -9")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAcknowledgedOrdersSurviveKill9 kills the shop while a crowd buys and
// checks, after a restart, that every order it acknowledged is stored.
func TestAcknowledgedOrdersSurviveKill9(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "shop.db")
	p, c := startShop(t, "--store", db)
	id := c.CreateProduct(t, "phone", 100000, 0)

	var mu sync.Mutex
	acked := map[string]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				a, err := c.Order(ctx, id, "u"+strconv.Itoa(w), 1, "")
				if err == nil && a.Status == 201 {
					mu.Lock()
					acked[a.OrderID] = true
					mu.Unlock()
				}
			}
		}()
	}
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 500 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.cmd.Process.Kill()
	p.cmd.Wait()
	cancel()
	wg.Wait()

	_, c2 := startShop(t, "--store", db)
	stored := map[string]bool{}
	for _, o := range c2.Orders(t, id) {
		stored[o.ID] = true
	}
	for oid := range acked {
		if !stored[oid] {
			t.Errorf("order %s was acknowledged with 201 but lost by kill -9", oid)
		}
	}
	prod := c2.Product(t, id)
	if prod.Sold != int64(len(stored)) || prod.Stock+prod.Sold != 100000 {
		t.Errorf("after restart: stock %d sold %d, %d orders stored", prod.Stock, prod.Sold, len(stored))
	}
	t.Logf("%d acknowledged before kill -9, %d stored", len(acked), len(stored))
}

// TestCommandLineErrors checks that mistakes get one line and exit code 2.
func TestCommandLineErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"shop", "--store", "mysql://x"}, `stampede shop: --store "mysql://x": use sqlite:PATH or postgres://USER@HOST:PORT/DB`},
		{[]string{"shop", "--strategy", "magic"}, `stampede shop: unknown strategy "magic" (see stampede shop --list-strategies)`},
		{[]string{"shop", "--strategy", "reserve", "--procs", "2"}, "stampede shop: strategy reserve without --redis keeps stock in one process's memory and would oversell with --procs > 1; add --redis, or use atomic, row-lock, buckets or redis-lock"},
		{[]string{"shop", "--strategy", "redis-lock"}, "stampede shop: strategy redis-lock needs --redis redis://HOST:PORT"},
		{[]string{"shop", "--procs", "0"}, "stampede shop: --procs must be from 1 to 64, not 0"},
		{[]string{"shop", "extra"}, `stampede shop: unexpected argument "extra"`},
		{[]string{"fly"}, `stampede: unknown command "fly" (run 'stampede help')`},
		{[]string{"load"}, "stampede load: give one URL, or --targets FILE (run 'stampede load -h')"},
		{[]string{"load", "ftp://example.test/"}, `stampede load: "ftp://example.test/" is not an http:// or https:// URL`},
		{[]string{"load", "--output", "xml", "http://127.0.0.1:1/"}, `stampede load: --output must be text or json, not "xml"`},
		{[]string{"load", "--stages", "10s", "http://127.0.0.1:1/"}, `stampede load: --stages: stage "10s": want DURATION:TARGET, as in 10s:1000`},
		{[]string{"load", "--scenario", "flash-sale", "http://127.0.0.1:1/"}, "stampede load: --scenario flash-sale needs --product ID"},
		{[]string{"load", "-d", "1s", "http://127.0.0.1:1/"}, "stampede load: cannot connect to 127.0.0.1:1: connect: connection refused"},
		{[]string{"load", "-c", "x", "http://127.0.0.1:1/"}, `stampede load: invalid value "x" for flag -c: parse error (see stampede load -h)`},
		{[]string{"load", "--nope", "http://127.0.0.1:1/"}, `stampede load: flag provided but not defined: -nope (see stampede load -h)`},
		{[]string{"load", "--rate", "NaN", "http://127.0.0.1:1/"}, `stampede load: -rate must be from 0.001 to 10000000, not NaN`},
		{[]string{"load", "--rate", "1e12", "-d", "2s", "http://127.0.0.1:1/"}, `stampede load: -rate must be from 0.001 to 10000000, not 1000000000000`},
		{[]string{"load", "-c", "0", "http://127.0.0.1:1/"}, `stampede load: -c must be from 1 to 1000000, not 0`},
		{[]string{"load", "--think", "-1s", "http://127.0.0.1:1/"}, `stampede load: -think must be a positive duration, not -1s`},
		{[]string{"load", "--stages", "1s:NaN", "http://127.0.0.1:1/"}, `stampede load: --stages: stage "1s:NaN": target must be a number from 0 to 10000000`},
		{[]string{"load", "--stages", "1s:Inf", "http://127.0.0.1:1/"}, `stampede load: --stages: stage "1s:Inf": target must be a number from 0 to 10000000`},
		{[]string{"load", "--stages", "2s:1000000000", "http://127.0.0.1:1/"}, `stampede load: --stages: stage "2s:1000000000": target must be a number from 0 to 10000000`},
		{[]string{"load", "-H", "X-A: 1\r\nX-Injected: 1", "http://127.0.0.1:1/"}, `stampede load: header "X-A: 1\r\nX-Injected: 1": a value may not hold CR, LF or other control characters`},
		{[]string{"load", "-H", "Bad Name: 1", "http://127.0.0.1:1/"}, "stampede load: header \"Bad Name: 1\": want 'Name: value' with a name of letters, digits and !#$%&'*+-.^_`|~"},
		{[]string{"load", "--body-file", "/dev/zero", "http://127.0.0.1:1/"}, `stampede load: --body-file: /dev/zero is not a regular file`},
		{[]string{"load", "--sweep", "1,2,4", "-n", "10", "http://127.0.0.1:1/"}, `stampede load: --sweep runs the closed model by itself: not with --stages, -n or --procs`},
		{[]string{"load", "--sweep", "1,2,4", "--predict", "100000", "http://127.0.0.1:1/"}, `stampede load: there is no --predict: the plan's target is a crowd, --users N [--think Z], or an arrival rate, --rate R`},
		{[]string{"load", "--sweep", "1,2,4", "--rate", "10", "--users", "5", "http://127.0.0.1:1/"}, `stampede load: the plan's target is a crowd (--users, --think) or an arrival rate (--rate), not both`},
		{[]string{"load", "--sweep", "1,2,4", "--confirm", "http://127.0.0.1:1/"}, `stampede load: --confirm runs the target: give --users N [--think Z] or --rate R`},
		{[]string{"load", "--confirm", "http://127.0.0.1:1/"}, `stampede load: --confirm goes with --sweep (a run's page is stampede report --html)`},
		{[]string{"load", "-c", "5", "--users", "5", "http://127.0.0.1:1/"}, `stampede load: -c and --users both set the users: give one`},
		{[]string{"load", "--source-ips", "10.0.0.1-10.0.0.5", "http://127.0.0.1:1/"}, `stampede load: --source-ips: 10.0.0.1 is not an address of this machine: a connection can only start from one`},
		{[]string{"load", "--slo", "p99>1s", "http://127.0.0.1:1/"}, `stampede load: --slo "p99>1s": a latency objective is an upper bound (<)`},
		{[]string{"load", "--slo", "speed<1s", "http://127.0.0.1:1/"}, `stampede load: --slo "speed<1s": unknown metric "speed" (p50, p90, p95, p99, p99.9, mean, errors, rps)`},
		{[]string{"load", "--sweep", "1,x,4", "http://127.0.0.1:1/"}, `stampede load: --sweep "1,x,4": want concurrencies from 1 to 1000000, as 1,2,4,8`},
		{[]string{"load", "--sweep", "1,2", "http://127.0.0.1:1/"}, `stampede load: --sweep "1,2": want at least 3 concurrencies`},
		{[]string{"load", "--sweep", "1,2,2,4", "http://127.0.0.1:1/"}, `stampede load: --sweep "1,2,2,4": 2 is there twice`},
		{[]string{"load", "--warmup", "1s", "--stages", "1s:10", "http://127.0.0.1:1/"}, `stampede load: --warmup with --stages: let the first stage ramp up instead`},
		{[]string{"load", "--engine", "epoll", "--rate", "10", "http://127.0.0.1:1/"}, "stampede load: the epoll engine cannot run the open model (--rate); leave --engine out"},
		{[]string{"load", "--engine", "fibers", "http://127.0.0.1:1/"}, `stampede load: engine "fibers": epoll or goroutines`},
		{[]string{"bench", "flashsale-sweep", "-p", "levels=1,2"}, `stampede bench: levels: "1,2": want from 3 to 12 numbers of buyers`},
		{[]string{"lab", "--store", "mysql://x"}, `stampede lab: --store "mysql://x": want a postgres:// DSN; SQLite is the default`},
		{[]string{"bench", "flashsale", "--redis", "localhost:6379"}, `stampede bench: --redis "localhost:6379": want redis://HOST:PORT`},
		{[]string{"report"}, "stampede report: give one or more .stl files written by stampede load -o"},
		{[]string{"bench", "nope"}, "stampede bench: no experiment \"nope\" (have: costs, sched, schedstat, sync, lostupdate, isolation, ipc, async, eventloop, parallel, gmp, gmp-sim, interleave, interleave-real, flashsale, flashsale-sweep, reference)"},
		{[]string{"bench", "costs", "-p", "goroutines=2000000"}, "stampede bench: goroutines: 2000000 is out of range: allowed 1 to 1000000"},
		{[]string{"bench", "sync", "-p", "primitive=futex"}, "stampede bench: primitive: \"futex\" is not allowed: one of all, mutex, rwmutex, spin, spin-yield, cond, semaphore, chan-sem, atomic, queue-chan, queue-ring"},
		{[]string{"bench", "sched", "-p", "quantum"}, `stampede bench: invalid value "quantum" for flag -p: want key=value, got "quantum" (see stampede bench -h)`},
		{[]string{"bench", "sched", "-p", "speed=1"}, `stampede bench: unknown parameter "speed" (known: algorithm, compare, workload, tasks, seed, quantum, aging, quanta, slice, boost)`},
		{[]string{"bench", "sched", "costs"}, "stampede bench: one experiment at a time; got sched costs"},
		{[]string{"lab", "--addr", "127.0.0.1:99999"}, `stampede lab: --addr "127.0.0.1:99999": want HOST:PORT with a port from 0 to 65535, as in 127.0.0.1:8080`},
		{[]string{"lab", "--addr", "8080"}, `stampede lab: --addr "8080": want HOST:PORT with a port from 0 to 65535, as in 127.0.0.1:8080`},
		{[]string{"lab", "now"}, `stampede lab: unexpected argument "now"`},
		{[]string{"verify", "--faults", "kill-all@1s"}, `stampede verify: --faults: unknown fault "kill-all" (want kill-worker, kill-shop, redis-restart or pg-pause)`},
		{[]string{"verify", "--faults", "pg-pause@1s"}, "stampede verify: invalid verification: pg-pause needs a PostgreSQL that verify may freeze: --store postgres"},
		{[]string{"verify", "--stock", "0"}, "stampede verify: invalid verification: --stock must be from 1 to 1000000"},
		{[]string{"verify", "--strategy", "bogus"}, "stampede verify: invalid verification: --strategy \"bogus\": want one of naive, mutex, redis-lock, atomic, row-lock, buckets, reserve"},
		{[]string{"verify", "--store", "mysql://x"}, "stampede verify: invalid verification: --store \"mysql://x\": want sqlite (a file of the run's own), sqlite:PATH (a file that stays), postgres (a private server) or a postgres:// DSN"},
		{[]string{"verify", "--redis", "localhost:6379"}, "stampede verify: invalid verification: --redis \"localhost:6379\": want private (a private server) or a redis:// URL"},
		{[]string{"verify", "now"}, `stampede verify: unexpected argument "now" (see stampede verify -h)`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := exec.Command(binary, tc.args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
				t.Errorf("exit %v, want code 2", err)
			}
			got := strings.TrimSpace(stderr.String())
			if got != tc.want {
				t.Errorf("stderr:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
	// More users than this process may open files: refused before any
	// connection, naming the fixes.
	cmd := exec.Command(binary, "load", "-c", "1000000", "http://127.0.0.1:1/")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 ||
		!regexp.MustCompile(`^stampede load: 1000000 users need a connection each, and this process may open \d+ files: raise ulimit -n \(up to \d+ here\), cap --connections, or spread them over processes with --procs\n$`).Match(out) {
		t.Errorf("a million users: exit %v, %q", err, out)
	}
	// A store that cannot be opened is a failure of the work, code 1.
	cmd = exec.Command(binary, "shop", "--store", "postgres://nobody@127.0.0.1:1/x", "--addr", freeAddr(t))
	out, err = cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 ||
		!strings.HasPrefix(string(out), "stampede shop: connect to postgres at 127.0.0.1:1: ") {
		t.Errorf("unreachable store: exit %v, output %q", err, out)
	}
}

// TestLoadFlashSale drives the shop with stampede load's flash-sale
// scenario and checks the tool's own books against the shop's.
func TestLoadFlashSale(t *testing.T) {
	_, c := startShop(t, "--store", "sqlite:"+filepath.Join(t.TempDir(), "shop.db"))
	id := c.CreateProduct(t, "phone", 100, 2)
	stl := filepath.Join(t.TempDir(), "run.stl")
	out, err := exec.Command(binary, "load", "--scenario", "flash-sale", "--product", strconv.FormatInt(id, 10),
		"--user-ids", "500", "-c", "200", "-n", "2000", "--output", "json", "-o", stl, "--quiet", c.Base).Output()
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	var rep struct {
		Requests    int64            `json:"requests"`
		StatusCodes map[string]int64 `json:"status_codes"`
		FlashSale   struct {
			Acknowledged  int64 `json:"acknowledged"`
			SoldOut       int64 `json:"sold_out"`
			LimitExceeded int64 `json:"limit_exceeded"`
		} `json:"flash_sale"`
		Verdict load.Verdict `json:"sale_verdict"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("report %q: %v", out, err)
	}
	if rep.Requests != 2000 || rep.FlashSale.Acknowledged != 100 || rep.StatusCodes["201"] != 100 ||
		rep.FlashSale.SoldOut+rep.FlashSale.LimitExceeded != 1900 {
		t.Errorf("load saw %+v", rep)
	}
	if v := rep.Verdict; v.Line != "sold 100 of 100, 0 left: the books balance" || v.Oversold != 0 || v.Lost != 0 {
		t.Errorf("verdict %+v", v)
	}
	if p := c.Product(t, id); p.Sold != 100 || p.Stock != 0 {
		t.Errorf("shop: sold %d stock %d", p.Sold, p.Stock)
	}
	html := filepath.Join(t.TempDir(), "r.html")
	out, err = exec.Command(binary, "report", "--html", html, stl).Output()
	if err != nil || !strings.Contains(string(out), "flash sale    acknowledged 100,") {
		t.Errorf("report of the .stl: %v\n%s", err, out)
	}
	if page, err := os.ReadFile(html); err != nil || !strings.Contains(string(page), "<svg") {
		t.Errorf("html report: %v", err)
	}
}

// TestLoadSaysOversold: the load generator reads the books before and
// after, and a shop that sold more than it had fails the run (exit 1) with
// one line saying by how much.
func TestLoadSaysOversold(t *testing.T) {
	_, c := startShop(t, "--store", "sqlite:"+filepath.Join(t.TempDir(), "shop.db"), "--strategy", "naive", "--gap", "2ms")
	id := c.CreateProduct(t, "phone", 100, 0)
	cmd := exec.Command(binary, "load", "--scenario", "flash-sale", "--product", strconv.FormatInt(id, 10),
		"--user-ids", "500", "-c", "200", "-n", "2000", "--quiet", c.Base)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	p := c.Product(t, id)
	want := fmt.Sprintf("sold %d of 100: OVERSOLD by %d", p.Sold, p.Sold-100)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || p.Sold <= 100 ||
		stderr.String() != "stampede load: "+want+"\n" || !strings.Contains(string(out), "verdict       "+want+"\n") {
		t.Errorf("exit %v, sold %d; stderr %q; stdout:\n%s\nwant exit 1 and %q", err, p.Sold, stderr.String(), out, want)
	}
	// A product the shop does not have is a mistake of the command line.
	out, err = exec.Command(binary, "load", "--scenario", "flash-sale", "--product", "999", "-n", "10", c.Base).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 ||
		string(out) != "stampede load: product 999: the shop at "+c.Base+" has none; is the product id right?\n" {
		t.Errorf("missing product: exit %v, output %q", err, out)
	}
}

// TestLoadStopsOnSIGTERM: a run of two load processes told to last a minute
// ends promptly on SIGTERM, each child stopped and waited for, and still
// prints the report of what it did.
func TestLoadStopsOnSIGTERM(t *testing.T) {
	_, c := startShop(t, "--store", "sqlite:"+filepath.Join(t.TempDir(), "shop.db"))
	cmd := exec.Command(binary, "load", "--procs", "2", "-c", "4", "-d", "60s", "--output", "json", c.Base+"/healthz")
	var stdout strings.Builder
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	children := testenv.ChildPIDs(t, cmd.Process.Pid)
	if len(children) != 2 {
		t.Errorf("%d load processes running, want 2", len(children))
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var rep struct {
			Requests int64 `json:"requests"`
		}
		if err != nil || json.Unmarshal([]byte(stdout.String()), &rep) != nil || rep.Requests == 0 {
			t.Errorf("after SIGTERM: exit %v, report %q", err, stdout.String())
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatal("stampede load --procs 2 ran on 15 s after SIGTERM")
	}
	for _, pid := range children {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			t.Errorf("load process %d outlived its parent", pid)
		}
	}
}

// TestLoadProcsMerge splits a flash sale over two load processes, each
// spreading its connections over local source addresses, and checks the
// merged books.
func TestLoadProcsMerge(t *testing.T) {
	_, c := startShop(t, "--store", "sqlite:"+filepath.Join(t.TempDir(), "shop.db"))
	id := c.CreateProduct(t, "phone", 100, 0)
	out, err := exec.Command(binary, "load", "--procs", "2", "--scenario", "flash-sale", "--product", strconv.FormatInt(id, 10),
		"--user-ids", "500", "-c", "100", "-n", "1000", "--source-ips", "127.0.0.2-127.0.0.5", "--output", "json", c.Base).Output()
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	var rep struct {
		Requests  int64 `json:"requests"`
		FlashSale struct {
			Acknowledged int64 `json:"acknowledged"`
			SoldOut      int64 `json:"sold_out"`
		} `json:"flash_sale"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("report %q: %v", out, err)
	}
	if rep.Requests != 1000 || rep.FlashSale.Acknowledged != 100 || rep.FlashSale.SoldOut != 900 {
		t.Errorf("merged report %+v; want 1000 requests, 100 acknowledged, 900 sold out", rep)
	}
}

// TestUSL fits the R package usl's reference data from a file and from
// standard input, and refuses what is not measurements with one line.
func TestUSL(t *testing.T) {
	data := "concurrency,throughput\n1,1\n2,1.8868\n4,3.0769\n6,3.5294\n8,3.5398\n10,3.3557\n"
	file := filepath.Join(t.TempDir(), "m.csv")
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary, "usl", file).Output()
	if err != nil || !strings.Contains(string(out), "peak    7 users, 3.57/s\n") ||
		!strings.Contains(string(out), "Throughput peaks at about 7 concurrent users, at 3.57 requests/s.") {
		t.Errorf("usl FILE: %v\n%s", err, out)
	}
	cmd := exec.Command(binary, "usl", "--json", "--predict", "20", "-")
	cmd.Stdin = strings.NewReader(data)
	out, err = cmd.Output()
	var got struct {
		USL struct {
			Sigma, Kappa, Lambda float64
			Peak                 float64 `json:"peak_concurrency"`
			Predicted            struct {
				Concurrency, RPS float64
			}
		}
	}
	if err != nil || json.Unmarshal(out, &got) != nil {
		t.Fatalf("usl --json: %v\n%s", err, out)
	}
	u := got.USL
	if math.Abs(u.Sigma-0.02) > 0.0005 || math.Abs(u.Kappa-0.02) > 0.0005 || math.Abs(u.Lambda-1) > 0.005 ||
		math.Abs(u.Peak-7) > 0.05 || u.Predicted.Concurrency != 20 || math.Abs(u.Predicted.RPS-2.227) > 0.01 {
		t.Errorf("usl --json: %+v", u)
	}
	for _, tc := range []struct {
		stdin, want string
	}{
		{"n,x\n1,1\n", `stampede usl: -: header "n,x": want concurrency,throughput` + "\n"},
		{"concurrency,throughput\n1,1\n2,two\n", `stampede usl: -: line 3: "2,two" is not two numbers` + "\n"},
		{"concurrency,throughput\n1,1\n2,2\n", "stampede usl: -: need at least 3 measurements at 3 different concurrencies\n"},
	} {
		cmd := exec.Command(binary, "usl", "-")
		cmd.Stdin = strings.NewReader(tc.stdin)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || string(out) != tc.want {
			t.Errorf("usl of %q: exit %v, %q; want exit 2 and %q", tc.stdin, err, out, tc.want)
		}
	}
}

// TestLoadSweep runs a short sweep against the shop's /healthz and reads
// the points, the fitted law and the curve from the JSON report; with no
// target there is no plan.
func TestLoadSweep(t *testing.T) {
	_, c := startShop(t, "--store", "sqlite:"+filepath.Join(t.TempDir(), "shop.db"))
	cmd := exec.Command(binary, "load", "--sweep", "1,2,4,8", "-d", "500ms", "--warmup", "100ms", "--repeats", "2", "--quiet", "--output", "json", c.Base+"/healthz")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sweep: %v\n%s\nstderr: %s", err, out, stderr.String())
	}
	var rep struct {
		Sweep []load.SweepPoint
		USL   struct {
			Lambda, R2 float64
			Verdict    []string
		}
		Curve struct {
			Capacity float64 `json:"capacity_rps"`
			MaxN     int     `json:"measured_concurrency_max"`
		}
		Plan *json.RawMessage
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rep.Sweep) != 4 || rep.Sweep[0].Concurrency != 1 || rep.Sweep[3].Concurrency != 8 || rep.Sweep[0].RPS <= 0 ||
		len(rep.Sweep[0].RPSRuns) != 2 || rep.USL.Lambda <= 0 || len(rep.USL.Verdict) == 0 || rep.Curve.Capacity <= 0 || rep.Plan != nil {
		t.Errorf("sweep report %s", out)
	}
}

// queueServer answers each request after 10 ms of one of 4 workers,
// reached through one FIFO queue (a channel's waiting senders are served
// in turn): its capacity is exactly 400 a second, and N users thinking Z
// well past saturation wait N/400 − Z.
func queueServer(t *testing.T) string {
	workers := make(chan struct{}, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		workers <- struct{}{}
		time.Sleep(10 * time.Millisecond)
		<-workers
		w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestPlanOnAQueueServer: the question asked of a service the user
// brings. A sweep to 64 of the 400/s queue plans for 2,000 users thinking
// 1 s: capacity within 10 % of 400, saturates, the SLO p99 < 1 s broken
// (exit status 3), and the prediction within 20 % of the run of the
// target itself (--confirm). The page draws the plan.
func TestPlanOnAQueueServer(t *testing.T) {
	url := queueServer(t)
	page := filepath.Join(t.TempDir(), "plan.html")
	cmd := exec.Command(binary, "load", "--sweep", "1,2,4,8,16,32,64", "-d", "1s", "--warmup", "300ms", "--repeats", "2",
		"--users", "2000", "--think", "1s", "--slo", "p99<1s", "--confirm", "--html", page, "--quiet", "--output", "json", url)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("exit %v, want 3 (the SLO broken)\n%s\nstderr: %s", err, out, stderr.String())
	}
	var rep struct {
		Plan struct {
			Users      int
			Think      float64    `json:"think_seconds"`
			Capacity   float64    `json:"capacity_rps"`
			CapacityCI [2]float64 `json:"capacity_rps_ci"`
			Required   float64    `json:"required_rps"`
			RPS        float64    `json:"rps"`
			Latency    float64    `json:"latency_seconds"`
			Basis      string
			Verdict    string
			SLOMet     *bool `json:"slo_met"`
			Confirmed  *struct {
				RPS     float64 `json:"predicted_rps"`
				Latency float64 `json:"predicted_latency_seconds"`
				Basis   string  `json:"predicted_basis"`
				Run     load.Report
			}
		}
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	p := rep.Plan
	if p.Confirmed == nil {
		t.Fatalf("no confirmation: %s\nstderr: %s", out, stderr.String())
	}
	run := p.Confirmed.Run
	t.Logf("capacity %.1f %v; predicted %.1f/s, %.2fs (%s); measured %.1f/s, %.2fs (p99 %.2fs)",
		p.Capacity, p.CapacityCI, p.Confirmed.RPS, p.Confirmed.Latency, p.Confirmed.Basis, run.RPS, run.Latency.Mean, run.Latency.P99)
	if p.Users != 2000 || p.Think != 1 || math.Abs(p.Capacity-400) > 40 || p.Verdict != "saturates" || p.SLOMet == nil || *p.SLOMet ||
		p.Basis != "measured" || p.Confirmed.Basis != "bound" {
		t.Errorf("plan: %+v", p)
	}
	if math.Abs(p.Confirmed.Latency-run.Latency.Mean) > 0.2*run.Latency.Mean {
		t.Errorf("predicted %.2fs a request, the run took %.2fs: more than 20 %% apart", p.Confirmed.Latency, run.Latency.Mean)
	}
	if run.Users != 2000 || len(run.Errors) != 0 || run.RPS > 420 {
		t.Errorf("the target's run: %+v", run)
	}
	html, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Verdict: <strong>saturates</strong>", "SLO NOT met", `aria-label="throughput by requests at once"`,
		`aria-label="response time by requests at once"`, `class="band"`, `class="slo"`, `class="target"`} {
		if !strings.Contains(string(html), want) {
			t.Errorf("the plan's page lacks %q", want)
		}
	}
}

// TestLoadEndsOnTimeAndGates: -d is a hard end whatever is under way, the
// rate never counts what came after it, and --slo sets the exit status
// of a plain run: 0 when met, 3 when not.
func TestLoadEndsOnTimeAndGates(t *testing.T) {
	url := queueServer(t)
	start := time.Now()
	out, err := exec.Command(binary, "load", "-c", "400", "-d", "3s", "--quiet", "--output", "json", "--slo", "p99<5ms", url).Output()
	took := time.Since(start)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("exit %v, want 3: 400 users on a 400/s queue wait about a second\n%s", err, out)
	}
	var rep load.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	if took > 4*time.Second || rep.DurationSeconds != 3 || rep.RPS > 420 || rep.Unfinished == 0 || rep.Unfinished > 400 || len(rep.Errors) != 0 {
		t.Errorf("-d 3s took %v: %.1f req/s over %gs, %d unfinished, errors %v", took, rep.RPS, rep.DurationSeconds, rep.Unfinished, rep.Errors)
	}
	out, err = exec.Command(binary, "load", "-c", "2", "-d", "1s", "--quiet", "--slo", "p99<1s,errors<1%", url).Output()
	if err != nil || !strings.Contains(string(out), "slo           p99<1s met (") {
		t.Errorf("a run that meets its SLO: %v\n%s", err, out)
	}
}

// TestLoadFailsOnErrors: a run in which more than 1 % of the requests
// failed exits 1 and says what failed, unless --allow-errors; a run under
// that share exits 0. Every third request of the server fails with 500.
func TestLoadFailsOnErrors(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%3 == 0 && r.URL.Path == "/flaky" {
			w.WriteHeader(500)
		}
	}))
	t.Cleanup(srv.Close)
	cmd := exec.Command(binary, "load", "-c", "3", "-n", "300", "--quiet", srv.URL+"/flaky")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 ||
		stderr.String() != "stampede load: 33.3% of the requests failed (500 100), over 1%: the service did not hold this load (--allow-errors to exit 0 all the same)\n" {
		t.Errorf("a third of the requests failing: %v, %q; want exit 1 and the share named", err, stderr.String())
	}
	if out, err := exec.Command(binary, "load", "-c", "3", "-n", "300", "--quiet", "--allow-errors", srv.URL+"/flaky").CombinedOutput(); err != nil {
		t.Errorf("--allow-errors: %v\n%s", err, out)
	}
	if out, err := exec.Command(binary, "load", "-c", "3", "-n", "300", "--quiet", srv.URL+"/fine").CombinedOutput(); err != nil {
		t.Errorf("no errors: %v\n%s", err, out)
	}
}

// TestVersion: stampede --version names the build's commit and Go.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, err := exec.Command(binary, args...).Output()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !regexp.MustCompile(`^stampede \S+ \(commit [0-9a-f]{12}(, modified)?(, \S+)?\) go1\.\d+`).Match(out) {
			t.Errorf("%v printed %q", args, out)
		}
	}
}

// TestBench runs lab experiments from the shell, as the README shows.
func TestBench(t *testing.T) {
	out, err := exec.Command(binary, "bench").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"costs", "sched", "schedstat", "sync", "lostupdate", "isolation", "ipc", "async", "eventloop", "parallel", "gmp", "gmp-sim", "interleave", "interleave-real", "flashsale", "flashsale-sweep", "reference"} {
		if !strings.Contains(string(out), "\n  "+id+" ") {
			t.Errorf("bench list lacks %s:\n%s", id, out)
		}
	}
	// The same textbook case as the page's, as JSON.
	cmd := exec.Command(binary, "bench", "sched", "-p", "workload=P1 0 24\nP2 0 3\nP3 0 3", "-p", "algorithm=rr", "-p", "quantum=4", "--json")
	out, err = cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Experiment string
		Machine    struct{ Cores int }
		Result     struct {
			Runs []struct {
				AvgWaiting float64
				Slices     []struct {
					Task       string
					Start, End int
				}
			}
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if got.Experiment != "sched" || got.Machine.Cores < 1 || len(got.Result.Runs) != 1 {
		t.Fatalf("bench --json: %s", out)
	}
	r := got.Result.Runs[0]
	if len(r.Slices) != 4 || r.Slices[1].Task != "P2" || r.Slices[1].Start != 4 || r.Slices[1].End != 7 || r.AvgWaiting < 5.66 || r.AvgWaiting > 5.67 {
		t.Errorf("round robin q=4: %+v", r)
	}
	// The flash sale from the shell: the database decides, in two
	// processes; exactly the stock sold and every check held.
	out, err = exec.Command(binary, "bench", "flashsale", "-p", "strategy=atomic", "-p", "procs=2", "-p", "stock=50",
		"-p", "buyers=200", "-p", "users=150", "-p", "seconds=1", "--json").Output()
	if err != nil {
		t.Fatalf("bench flashsale: %v %s%s", err, out, stderrOf(err))
	}
	var sale struct {
		Result struct {
			Oversold int64
			Report   struct {
				Invariants []struct{ Name, Verdict string }
				Outcomes   struct {
					Stored int `json:"stored_orders"`
				}
			}
		}
	}
	if err := json.Unmarshal(out, &sale); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	rep := sale.Result.Report
	if sale.Result.Oversold != 0 || rep.Outcomes.Stored != 50 || len(rep.Invariants) != 13 {
		t.Errorf("bench flashsale atomic: oversold %d, %d stored, %d checks; want 0, 50, 13", sale.Result.Oversold, rep.Outcomes.Stored, len(rep.Invariants))
	}
	for _, inv := range rep.Invariants {
		if inv.Verdict != "pass" {
			t.Errorf("bench flashsale atomic: %s %s", inv.Name, inv.Verdict)
		}
	}
	// Where atomic peaks, from the shell: a sweep of three steps, every
	// purchase answered, the law fitted (or the reason it could not be).
	out, err = exec.Command(binary, "bench", "flashsale-sweep", "-p", "strategy=atomic", "-p", "levels=1,2,4", "-p", "step=300", "-p", "repeats=1", "--json").Output()
	if err != nil {
		t.Fatalf("bench flashsale-sweep: %v %s%s", err, out, stderrOf(err))
	}
	var sw struct {
		Result struct {
			Strategy string
			Points   []struct {
				Concurrency int
				RPS         float64
				Errors      int64
			}
			Curve *struct {
				Capacity float64 `json:"capacity_rps"`
			}
			Plan *struct {
				Users int
				Basis string
			}
			Verdict []string
		}
	}
	if err := json.Unmarshal(out, &sw); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if r := sw.Result; r.Strategy != "atomic" || len(r.Points) != 3 || len(r.Verdict) == 0 {
		t.Errorf("bench flashsale-sweep: %s", out)
	} else {
		for i, p := range r.Points {
			if p.Concurrency != 1<<i || p.RPS <= 0 || p.Errors != 0 {
				t.Errorf("sweep step %d: %+v, want %d buyers answered without error", i, p, 1<<i)
			}
		}
		// Three steps of one run each fit; 100,000 buyers at once lie
		// far past 4× the 4 measured: bounds only.
		if r.Curve == nil || r.Curve.Capacity <= 0 || r.Plan == nil || r.Plan.Users != 100000 || r.Plan.Basis != "bound" {
			t.Errorf("the curve and the plan: %s", out)
		}
	}
	// The default program of chapter 7 enumerated: 20 schedules of two
	// goroutines of three steps, 18 of which lose an update.
	out, err = exec.Command(binary, "bench", "interleave", "--json").Output()
	if err != nil {
		t.Fatalf("bench interleave: %v %s", err, out)
	}
	var il struct {
		Result struct {
			Program string
			Model   struct {
				Schedules, Failing uint64
				Outcomes           []struct {
					Label     string
					Schedules uint64
				}
			}
		}
	}
	if err := json.Unmarshal(out, &il); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if m := il.Result.Model; il.Result.Program != "lost-update" || m.Schedules != 20 || m.Failing != 18 || len(m.Outcomes) != 2 ||
		m.Outcomes[0].Label != "x=1" || m.Outcomes[0].Schedules != 18 || m.Outcomes[1].Label != "x=2" || m.Outcomes[1].Schedules != 2 {
		t.Errorf("bench interleave --json: %s", out)
	}
	// Text output, with the machine it was measured on.
	out, err = exec.Command(binary, "bench", "lostupdate", "-p", "goroutines=4", "-p", "increments=1000", "-p", "yield=true").Output()
	if err != nil {
		t.Fatal(err)
	}
	words := strings.Join(strings.Fields(string(out)), " ")
	for _, want := range []string{"measured on: ", "sync.Mutex around x = x + 1 4000 4000 0 0.00", "atomic add 4000 4000 0 0.00"} {
		if !strings.Contains(words, want) {
			t.Errorf("bench lostupdate output lacks %q:\n%s", want, out)
		}
	}
}

// TestLabWarnsOffLoopback: listening beyond loopback is the user's choice,
// and it is said out loud.
func TestLabWarnsOffLoopback(t *testing.T) {
	cmd := exec.Command(binary, "lab", "--addr", "0.0.0.0:0")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if !strings.HasPrefix(line, "stampede lab: http://[::]:") && !strings.HasPrefix(line, "stampede lab: http://0.0.0.0:") {
		t.Errorf("first line %q", line)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Errorf("lab exit: %v", err)
	}
	if want := "warning: the lab listens on 0.0.0.0:0, so anyone who can reach this machine can run experiments on it\n"; !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("stderr %q, want the warning first", stderr.String())
	}
}

// TestShopRefusesMoreConnectionsThanPostgresAllows: workers whose pools
// together would pass the server's max_connections are a start-up error of
// one line, not "too many clients" for buyers in the middle of a sale.
func TestShopRefusesMoreConnectionsThanPostgresAllows(t *testing.T) {
	dsn := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := postgres.ReadBudget(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	pool := b.Max/2 + 1 // four processes of this size need twice what the server has
	out, err := exec.Command(binary, "shop", "--store", dsn, "--procs", "4", "--pool", strconv.Itoa(pool), "--addr", freeAddr(t)).CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	want := fmt.Sprintf("stampede shop: 4 process(es) × %d connections = %d, but the server allows %d connections: ", pool, 4*pool, b.Max)
	if !ok || ee.ExitCode() != 1 || strings.Count(string(out), "\n") != 1 || !strings.HasPrefix(string(out), want) ||
		!strings.HasSuffix(string(out), "; lower --procs or --pool, or raise max_connections\n") {
		t.Errorf("exit %v, output %q; want exit 1 and one line starting %q", err, out, want)
	}
}

// TestStampede is the project's question at a size CI can afford: 20,000
// one-shot buyers, each on a connection of its own from two load
// processes, rush a shop of two worker processes (reserve with Redis, on
// PostgreSQL) for 2,000 units, one per buyer. Every buyer must get a
// definitive answer, with no 5xx and no transport error, and the books
// must be exact.
func TestStampede(t *testing.T) {
	const buyers, stock = 20000, 2000
	redisURL, prefix := testenv.Redis(t)
	_, c := startShop(t, "--store", testenv.Postgres(t), "--redis", redisURL, "--redis-prefix", prefix, "--procs", "2")
	id := c.CreateProduct(t, "phone", stock, 1)
	stl := filepath.Join(t.TempDir(), "stampede.stl")
	cmd := exec.Command(binary, "load", "--scenario", "flash-sale", "--product", strconv.FormatInt(id, 10),
		"--user-ids", strconv.Itoa(buyers), "-c", strconv.Itoa(buyers), "-n", strconv.Itoa(buyers), "--procs", "2",
		"--source-ips", "127.0.0.2-127.0.0.41", "--timeout", "60s", "--output", "json", "-o", stl, c.Base)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("load: %v\n%s", err, stderr.String())
	}
	var rep struct {
		Requests    int64            `json:"requests"`
		StatusCodes map[string]int64 `json:"status_codes"`
		Errors      map[string]int64 `json:"errors"`
		FlashSale   load.SaleCounts  `json:"flash_sale"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("report %q: %v", out, err)
	}
	s := rep.FlashSale
	if s.Acknowledged != stock || s.SoldOut != buyers-stock || s.LimitExceeded+s.Unsettled+s.Other != 0 {
		t.Errorf("outcomes %+v; want %d acknowledged and %d sold out, nothing else", s, stock, buyers-stock)
	}
	if len(rep.Errors) != 0 || len(rep.StatusCodes) != 2 || rep.StatusCodes["201"] != stock || rep.StatusCodes["409"] != buyers-stock || rep.Requests != buyers {
		t.Errorf("%d requests, status codes %v, transport errors %v; want exactly %d × 201 and %d × 409",
			rep.Requests, rep.StatusCodes, rep.Errors, stock, buyers-stock)
	}
	p := c.Product(t, id)
	orders := c.Orders(t, id)
	if p.Sold != stock || p.Stock != 0 || len(orders) != stock {
		t.Errorf("shop: sold %d, stock %d, %d orders stored; want %d, 0, %d", p.Sold, p.Stock, len(orders), stock, stock)
	}
	res, err := load.ReadFile(stl)
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]bool{}
	for _, o := range orders {
		if !res.Orders[o.ID] {
			t.Errorf("order %s is stored but its buyer was not told", o.ID)
		}
		if users[o.UserID] {
			t.Errorf("user %s holds two units; the limit is one", o.UserID)
		}
		users[o.UserID] = true
	}
	t.Logf("%d buyers: %+v; %d retries", buyers, s, s.Retries)
}

// stderrOf is what a command that failed said on stderr (Output keeps it).
func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return "\nstderr: " + string(ee.Stderr)
	}
	return ""
}
