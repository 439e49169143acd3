package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/stampede-dev/stampede/internal/testenv"
)

// startLab runs `stampede lab` on a free port and returns its URL. The lab
// is stopped with Ctrl-C when the test ends and must exit cleanly.
func startLab(t *testing.T) (url string, pid int) {
	t.Helper()
	cmd := exec.Command(binary, "lab", "--addr", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := regexp.MustCompile(`^stampede lab: (http://\S+) `).FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		if err := cmd.Wait(); err != nil {
			t.Errorf("lab exited with %v; stderr:\n%s", err, stderr.String())
		}
	})
	select {
	case u := <-urls:
		return u, cmd.Process.Pid
	case <-time.After(20 * time.Second):
		t.Fatalf("lab did not print its URL; stderr:\n%s", stderr.String())
	}
	return "", 0
}

// artifacts is where screenshots go: STAMPEDE_ARTIFACTS or
// testdata/artifacts at the repository root.
func artifacts(t *testing.T) string {
	dir := os.Getenv("STAMPEDE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "testdata", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts headless Chromium with the flags a closed network needs
// and collects console errors and uncaught exceptions.
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	path := testenv.Chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	var mu sync.Mutex
	var problems []string
	msgs := chromedp.Console(ctx) // subscribed from here on, before any page loads
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			switch m.Type {
			case chromedp.ConsoleError, chromedp.ConsoleWarning, chromedp.ConsoleException:
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s: %s", m.Type, m.Text))
				mu.Unlock()
			}
		}
	}()
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), problems...)
	}
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	// Quality 100 asks for PNG, anything less for JPEG.
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(artifacts(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// runExperiment sets parameters, presses the experiment's Run button and
// waits until the run has a result.
func runExperiment(ctx context.Context, id string, params map[string]string) error {
	var actions []chromedp.Action[chromedp.Void]
	for k, v := range params {
		actions = append(actions, chromedp.SetValue(chromedp.CSS(fmt.Sprintf("#p-%s-%s", id, k)), v))
	}
	actions = append(actions, chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[data-run="%s"]`, id))))
	if err := chromedp.Do(ctx, actions...); err != nil {
		return err
	}
	// A run that does not finish within 2 minutes fails with what the
	// page says, rather than using up the browser's time.
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	err := chromedp.Do(wctx, chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`form[data-experiment="%s"][data-state="done"]`, id))))
	if err != nil {
		said, _ := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(
			`(() => { const f = document.querySelector('form[data-experiment="%s"]'); return f ? f.dataset.state + ": " + f.parentElement.innerText.slice(0, 600) : "no form"; })()`, id)))
		return fmt.Errorf("%s did not finish: %w; the page: %s", id, err, said)
	}
	return nil
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return s
}

func mustMatch(t *testing.T, what, pattern, got string) {
	t.Helper()
	if !regexp.MustCompile(pattern).MatchString(got) {
		t.Errorf("%s: %q does not match %s", what, got, pattern)
	}
}

// TestBrowserLab loads every chapter in real headless Chromium, runs its
// demos from the page, checks the numbers that appear and that the
// console stayed clean, and saves a screenshot of each chapter.
func TestBrowserLab(t *testing.T) {
	url, labPID := startLab(t)
	ctx, problems := browser(t)
	nav := func(hash string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(url+hash), chromedp.WaitReady(chromedp.CSS("#main"))); err != nil {
			t.Fatalf("open %s: %v", hash, err)
		}
	}

	t.Run("home", func(t *testing.T) {
		nav("#/")
		if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.Search(`//p[@id="machine"][contains(., "cores")]`))); err != nil {
			t.Fatal(err)
		}
		mustMatch(t, "machine line", `^This lab runs on .+, \d+ cores, .+, go1\.\d+.*, GOMAXPROCS \d+, (not )?virtualised`, text(t, ctx, "#machine"))
		mustMatch(t, "the guide named", `^"The guide" below is the concurrency guide this lab is built around, Concurrency, Async, and Multithreading:`, text(t, ctx, "#guide"))
		// At 1280 px the header is one row: the first and last links of
		// the chapters, and the theme button, sit at the same height.
		rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`new Set([...document.querySelectorAll("header nav a, #theme")].map((e) => Math.round(e.getBoundingClientRect().top / 10))).size`))
		if err != nil {
			t.Fatal(err)
		}
		if rows != 1 {
			t.Errorf("the header takes %d rows at 1280 px, want 1", rows)
		}
		screenshot(t, ctx, "lab-home.png")
	})

	t.Run("chapter 1: costs", func(t *testing.T) {
		nav("#/costs")
		if err := runExperiment(ctx, "costs", map[string]string{"goroutines": "20000", "threads": "200", "processes": "10", "roundtrips": "2000"}); err != nil {
			t.Fatal(err)
		}
		creations := text(t, ctx, "#table-creations tbody")
		for _, kind := range []string{"goroutine", "thread", "process"} {
			mustMatch(t, kind+" row", kind+`\s+[\d,]+\s+[\d.]+ (ns|µs|ms)( cold, [\d.]+ (ns|µs) warm)?\s+[\d.]+ (B|KiB|MiB)`, creations)
		}
		switches := text(t, ctx, "#table-switches tbody")
		mustMatch(t, "switch table", `goroutine\s+1\s+goroutine switch on one P\s+400 × 5\s+[\d.]+ (ns|µs)\s+[\d.]+ (ns|µs) to [\d.]+ (ns|µs)`, switches)
		mustMatch(t, "switch table", `thread\s+1\s+context switch on one CPU\s+400 × 5\s+[\d.]+ (ns|µs)`, switches)
		mustMatch(t, "switch table", `goroutine\s+2\s+channel ping-pong with GOMAXPROCS 2 \(the runtime picks the Ps; often both on one\)`, switches)
		mustMatch(t, "switch table", `process\s+2\s+cross-CPU wake-up \(one side on each of two CPUs\)`, switches)
		claims := text(t, ctx, "#table-claims tbody")
		if n := strings.Count(claims, "takes about"); n != 5 {
			t.Errorf("claims table has %d claims, want 5:\n%s", n, claims)
		}
		mustMatch(t, "verdicts", `(matches|cheaper than claimed|dearer than claimed|inconclusive): [\d.]+ (ns|µs|ms) here \(median; [\d.]+ (ns|µs|ms) to [\d.]+ (ns|µs|ms) over the rounds\)`, claims)
		mustMatch(t, "thread stack verdict", `A thread's stack takes about 1 MB\s+[\d.]+ (KiB|MiB)\s+.*(stack mapping|no stack mapping of their own)`, claims)
		mustMatch(t, "creation notes", `Starting (a static \d+-byte program that only exits|/bin/true.*) takes [\d.]+ (µs|ms)`, text(t, ctx, "#creation-notes"))
		mustMatch(t, "100,000 users", `^100,000 users with a thread each would hold [\d.]+ (KiB|MiB|GiB) of memory \(kernel memory included\); with a goroutine each, [\d.]+ (KiB|MiB|GiB): goroutines save [\d.]+ (KiB|MiB|GiB) \(\d+%\)\..* But 100,000 threads cannot run here at all: .*Go stops a program at 10,000 threads`, text(t, ctx, "#users-line"))
		mustMatch(t, "machine", `^Measured on .+, \d+ cores`, text(t, ctx, "#machine-costs"))
		screenshot(t, ctx, "lab-chapter1-costs.png")
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#theme"))); err != nil {
			t.Fatal(err)
		}
		screenshot(t, ctx, "lab-chapter1-costs-other-theme.png")
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#theme"))); err != nil {
			t.Fatal(err)
		}

		// Stop while hundreds of child processes are starting: the page says
		// so, and the lab leaves no child behind.
		err := chromedp.Do(ctx,
			chromedp.SetValue(chromedp.CSS("#p-costs-processes"), "500"),
			chromedp.Click(chromedp.CSS(`button[data-run="costs"]`)),
			chromedp.WaitVisible(chromedp.Search(`//span[@id="status-costs"][contains(., "starting processes")]`)),
			chromedp.Click(chromedp.CSS(`form[data-experiment="costs"] button.stop`)),
			chromedp.WaitVisible(chromedp.CSS(`form[data-experiment="costs"][data-state="failed"]`)),
		)
		if err != nil {
			t.Fatal(err)
		}
		if got := text(t, ctx, "#status-costs"); got != "stopped" {
			t.Errorf("status after Stop: %q", got)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			n := testenv.ChildProcesses(t, labPID)
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d child processes of the lab are left 10 s after Stop", n)
			}
		}
	})

	t.Run("chapter 2: scheduling", func(t *testing.T) {
		nav("#/scheduling")
		// Operating System Concepts' round-robin example, quantum 4, against
		// FCFS: average waiting 17/3 = 5.67 and 17.
		workload := "P1 0 24\nP2 0 3\nP3 0 3\n"
		err := runExperiment(ctx, "sched", map[string]string{"workload": workload, "algorithm": "rr", "compare": "fcfs", "quantum": "4"})
		if err != nil {
			t.Fatal(err)
		}
		mustMatch(t, "rr averages", `average\s+5\.67\s+15\.67\s+3\.67`, text(t, ctx, "#table-sched-rr"))
		mustMatch(t, "fcfs averages", `average\s+17\.00\s+27\.00\s+17\.00`, text(t, ctx, "#table-sched-fcfs"))
		for range 5 {
			if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#sched-step"))); err != nil {
				t.Fatal(err)
			}
		}
		tick, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#sched-tick")))
		if err != nil {
			t.Fatal(err)
		}
		if tick != "5" {
			t.Errorf("after five steps the tick is %s, want 5", tick)
		}
		// At tick 5 round robin runs P2 with P3 then P1 waiting. Ticks spent
		// waiting so far, this one included: P1 2 (ticks 4, 5), P2 4 (0-3),
		// P3 6 (0-5).
		mustMatch(t, "rr queues at tick 5", `Running:\s*P2\s*Ready:\s*P3\s*P1[\s\S]*Waited so far:\s*P1 2\s*P2 4\s*P3 6`, text(t, ctx, `[data-algorithm="rr"] .queues`))
		// Predict, then reveal: the finishing ticks are asked for first
		// (round robin, quantum 4: P2 at 7, P3 at 10, P1 at 30).
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#sched-predict")),
			chromedp.SendKeys(chromedp.CSS(`#table-sched-rr input[data-task="P1"]`), "30"),
			chromedp.SendKeys(chromedp.CSS(`#table-sched-rr input[data-task="P2"]`), "7"),
			chromedp.SendKeys(chromedp.CSS(`#table-sched-rr input[data-task="P3"]`), "11"),
			chromedp.Click(chromedp.CSS(`button[data-reveal="rr"]`))); err != nil {
			t.Fatal(err)
		}
		if got := text(t, ctx, "#sched-score-rr"); got != "You placed 2 of 3 finishing ticks right." {
			t.Errorf("prediction score: %q", got)
		}
		mustMatch(t, "the wrong guess", `P3\s+0\s+3\s+7\s+10 \(you: 11 ✗\)`, text(t, ctx, "#table-sched-rr tbody"))
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#sched-predict"))); err != nil {
			t.Fatal(err)
		}
		// The lottery shows each draw: tickets counted in queue order.
		if err := runExperiment(ctx, "sched", map[string]string{"workload": "A 0 6 1 3\nB 0 6 1 1\n", "algorithm": "lottery", "compare": "none", "quantum": "1"}); err != nil {
			t.Fatal(err)
		}
		mustMatch(t, "lottery draw", `^Lottery draw: ticket [0-3] of 4 \(A 0–2, B 3–3\): [AB] runs$`, text(t, ctx, "#sched-draw-lottery"))
		// A new seed generates a new workload instead of replaying the last.
		box := func() string {
			v, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#p-sched-workload")))
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#p-sched-seed"), "7")); err != nil {
			t.Fatal(err)
		}
		if w := box(); w != "" {
			t.Errorf("after a new seed the workload box still holds %q", w)
		}
		if err := runExperiment(ctx, "sched", map[string]string{"algorithm": "rr", "compare": "fcfs", "tasks": "4"}); err != nil {
			t.Fatal(err)
		}
		if w := box(); w == "" || strings.HasPrefix(w, "P1 0 24") {
			t.Errorf("the seed's workload: %q; want one generated from seed 17, not the textbook case", w)
		}
		if err := runExperiment(ctx, "schedstat", map[string]string{"threads": "4", "ms": "300"}); err != nil {
			t.Fatal(err)
		}
		mustMatch(t, "schedstat summary", `^4 busy threads on \d+ cores: each got \d+% to \d+% of a core`, text(t, ctx, "#schedstat-summary"))
		if rows := strings.Count(text(t, ctx, "#table-schedstat tbody"), "T"); rows != 4 {
			t.Errorf("schedstat table has %d threads, want 4", rows)
		}
		// Twenty threads: the live chart shows their spread, not 20 lines.
		if err := runExperiment(ctx, "schedstat", map[string]string{"threads": "20", "ms": "300"}); err != nil {
			t.Fatal(err)
		}
		mustMatch(t, "schedstat spread", `CPU time so far: the most, the median and the fewest of 20 threads`, text(t, ctx, "#schedstat-live"))
		mustMatch(t, "schedstat histogram", `How the 20 threads shared the cores`, text(t, ctx, "#result-schedstat"))
		screenshot(t, ctx, "lab-chapter2-scheduling.png")
	})

	t.Run("chapter 3: sync", func(t *testing.T) {
		nav("#/sync")
		if err := runExperiment(ctx, "sync", map[string]string{"goroutines": "4", "ms": "20", "runs": "3"}); err != nil {
			t.Fatal(err)
		}
		if got := text(t, ctx, "#sync-check"); got != "Every operation of all 30 points, 3 runs each, was counted exactly once." {
			t.Errorf("sync check: %q", got)
		}
		mustMatch(t, "mutex row", `sync\.Mutex\s+[\d.]+ \([\d.]+–[\d.]+\)`, text(t, ctx, "#table-sync tbody"))
		// Strict turns are fair by construction: Jain's index 1.00 from the
		// second goroutine on.
		mustMatch(t, "fairness", `sync\.Cond hand-off \(strict turns\)\s+1\.00 \(1\.00–1\.00\)\s+1\.00 \(`, text(t, ctx, "#table-fairness tbody"))
		// A legend entry hides its series when clicked and shows it again.
		hiddenSeries := func() int {
			n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#sync-chart [data-series].off").length`))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#sync-chart .legend li[data-name="sync.Mutex"]`))); err != nil {
			t.Fatal(err)
		}
		if n := hiddenSeries(); n != 1 {
			t.Errorf("after a click on sync.Mutex in the legend %d series are hidden, want 1", n)
		}
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#sync-chart .legend li[data-name="sync.Mutex"]`))); err != nil {
			t.Fatal(err)
		}
		if n := hiddenSeries(); n != 0 {
			t.Errorf("after a second click %d series are hidden, want 0", n)
		}
		// Yielding between the read and the write makes the loss certain.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#p-lostupdate-yield"))); err != nil {
			t.Fatal(err)
		}
		if err := runExperiment(ctx, "lostupdate", map[string]string{"goroutines": "4", "increments": "10000"}); err != nil {
			t.Fatal(err)
		}
		lost := text(t, ctx, "#table-lostupdate tbody")
		mustMatch(t, "read-then-write loses", `read, then write \(x = x \+ 1\)\s+40,000\s+[\d,]+\s+[1-9][\d,]* \(`, lost)
		mustMatch(t, "mutex total", `sync\.Mutex around x = x \+ 1\s+40,000\s+40,000\s+0`, lost)
		mustMatch(t, "atomic total", `atomic add\s+40,000\s+40,000\s+0\s+5 of 5\s+0 – 0`, lost)
		mustMatch(t, "lost-update trials", `^Read, then write lost (updates in every one of 5 trials|nothing in [1-4] of 5 trials)`, text(t, ctx, "#lostupdate-verdict"))
		screenshot(t, ctx, "lab-chapter3-sync.png")
	})

	t.Run("chapter 4: processes", func(t *testing.T) {
		nav("#/isolation")
		if err := runExperiment(ctx, "isolation", map[string]string{"children": "3"}); err != nil {
			t.Fatal(err)
		}
		mustMatch(t, "verdict", `^3 processes, one address \(0x[0-9a-f]+\), 3 different values: each process has its own memory\.$`, text(t, ctx, "#isolation-verdict"))
		mustMatch(t, "values", `1,000\s+1,000\s+3\s.*2,000\s+2,000\s+3\s.*3,000\s+3,000\s+3\s`, strings.Join(strings.Fields(text(t, ctx, "#table-isolation tbody")), " "))
		if got := text(t, ctx, "#isolation-shared"); got != "The shared counter reads 3 in every child: the one page they all mapped with MAP_SHARED." {
			t.Errorf("shared: %q", got)
		}
		mustMatch(t, "crash", `^The crashing child: exit status 2; \[signal SIGSEGV: segmentation violation`, text(t, ctx, "#isolation-crash"))
		mustMatch(t, "counting", `^They were counting milliseconds when it died, and went on: [\d,]+ ticks, \d+ ms before the crash to \d+ ms after; [\d,]+ ticks, .*; [\d,]+ ticks, \d+ ms before the crash to \d+ ms after\.$`, text(t, ctx, "#isolation-counting"))
		mustMatch(t, "panic", `^One goroutine's panic: the process ended \(exit status 2\) with its four goroutines at \d+, \d+, \d+, \d+ counts\. panic: goroutine 4 gives up$`, text(t, ctx, "#isolation-panic"))
		mustMatch(t, "maps", `rw-p .*the global\n.*r-xp .*the code`, text(t, ctx, "#isolation-maps"))
		screenshot(t, ctx, "lab-chapter4-isolation.png")
		// The doors: every mechanism in every placement, intact.
		if err := runExperiment(ctx, "ipc", map[string]string{"trips": "200", "mib": "2", "limit": "1000"}); err != nil {
			t.Fatal(err)
		}
		rows := text(t, ctx, "#table-ipc tbody")
		for _, m := range []string{"pipe \\(two, one each way\\)", "Unix socket, stream", "Unix socket, datagram", "TCP over loopback", "POSIX message queue \\(two, one each way\\)", "shared memory, futex hand-off"} {
			mustMatch(t, "ipc "+m, m+`\s+one core\s+200\s+[\d.]+ µs\s+[\d.]+ µs\s+[\d,]+ MiB/s`, rows)
		}
		mustMatch(t, "ipc signal", `signal \(SIGUSR1 each way, through Go's signal\.Notify\)\s+one core\s+200\s+[\d.]+ µs\s+[\d.]+ µs\s+– \(no data\)`, rows)
		mustMatch(t, "ipc verdicts", `^Shared memory "fastest": (true|not so) for bulk data here`, text(t, ctx, "#ipc-verdicts li"))
		screenshot(t, ctx, "lab-chapter4-ipc.png")
	})

	t.Run("chapter 5: waiting", func(t *testing.T) {
		nav("#/async")
		// Delays 50, 100 … 200 ms: one after another takes their sum (625),
		// all at once about the slowest (200).
		if err := runExperiment(ctx, "async", map[string]string{"tasks": "4", "delay": "50", "spread": "150", "limit": "2", "spin": "200"}); err != nil {
			t.Fatal(err)
		}
		if got := text(t, ctx, "#async-summary"); got != "The delays add up to 500 ms and the slowest is 200 ms." {
			t.Errorf("summary: %q", got)
		}
		runs := text(t, ctx, "#table-async tbody")
		mustMatch(t, "sequential", `One after another\s+(49\d|5\d\d|6\d\d) ms\s+1\.\d\d×`, runs)
		mustMatch(t, "all at once", `All at once \(errgroup\)\s+(199|2\d\d) ms\s+0\.\d\d×\s+1\.\d\d×`, runs)
		mustMatch(t, "limited", `A few at a time \(errgroup\.SetLimit\), 2\s+\d+ ms`, runs)
		for _, mode := range []string{"sequential", "all", "limited"} {
			if n := strings.Count(text(t, ctx, "#async-gantt-"+mode), "T"); n < 4 {
				t.Errorf("%s timeline names %d tasks, want 4", mode, n)
			}
		}
		mustMatch(t, "trap, preemption on", `^Preemption on: the loop ran \d+ ms; the sleepers woke at worst [\d.]+ ms late\.$`, text(t, ctx, `p[data-preemption="true"]`))
		mustMatch(t, "trap, preemption off", `^Preemption off: the loop ran \d+ ms; the sleepers woke at worst [\d.]+ ms late\.$`, text(t, ctx, `p[data-preemption="false"]`))
		if got := text(t, ctx, "#async-pipeline"); !strings.HasPrefix(got, "2 producers of 5 values each, 2 consumers: 10 received, summing to 45 (every value once), in ") {
			t.Errorf("pipeline: %q", got)
		}
		screenshot(t, ctx, "lab-chapter5-async.png")

		// The event loop against net/http, one callback blocking 150 ms.
		if err := runExperiment(ctx, "eventloop", map[string]string{"conns": "10", "seconds": "1", "idle": "200", "block": "150"}); err != nil {
			t.Fatal(err)
		}
		rows := text(t, ctx, "#table-eventloop tbody")
		mustMatch(t, "loop row", `epoll loop, one thread\s+[\d,]+\s+[\d.]+ ms\s+[\d.]+ ms\s+(1[5-9]\d|[2-9]\d\d|\d{4,})\.\d ms`, rows)
		mustMatch(t, "net/http row", `net/http, a goroutine per connection\s+[\d,]+\s+[\d.]+ ms`, rows)
		mustMatch(t, "block", `^On the loop, the slowest request took \d+ ms: the sleeping callback held the only thread`, text(t, ctx, "#eventloop-block"))
		mustMatch(t, "totals", `^[\d,]+ iterations: [\d,]+ ms waiting in epoll_wait`, text(t, ctx, "#eventloop-totals"))
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#eventloop-next"))); err != nil {
			t.Fatal(err)
		}
		mustMatch(t, "stepper", `^iteration 2 of the first \d+`, text(t, ctx, "#eventloop-iter-label"))
		screenshot(t, ctx, "lab-chapter5-eventloop.png")
	})

	t.Run("chapter 6: parallelism", func(t *testing.T) {
		nav("#/parallel")
		if err := runExperiment(ctx, "parallel", map[string]string{"tasks": "4", "work": "20", "procs": "2", "rounds": "1"}); err != nil {
			t.Fatal(err)
		}
		mustMatch(t, "verdict", `^CPU-bound: 4 tasks of 20 ms took [\d,]+ ms on one P \([\d.]+× one task: one after another\) and [\d,]+ ms on 2 \(a speed-up of [\d.]+×\)\. Waiting: [\d,]+ ms on one P \([\d.]+× one task: all at once, without a second core\)\.$`, text(t, ctx, "#parallel-verdict"))
		rows := strings.Join(strings.Fields(text(t, ctx, "#table-parallel tbody")), " ")
		// work, Ps, wall, serial part, speed-up, the tasks' speed-up, the
		// granularity ceiling, Amdahl, × one task, tasks that moved P
		mustMatch(t, "table", `^CPU-bound \(hashing\) 1 [\d.]+ ms 0\.0 ms 1\.00× 1\.00× 1\.00× 1\.00× [\d.]+ 0 CPU-bound \(hashing\) 2 [\d.]+ ms 0\.0 ms [\d.]+× [\d.]+× 2\.00× [\d.]+× [\d.]+ \d+ waiting .* 1 [\d.]+ ms — 1\.00× 1\.00× — — [\d.]+ 0 waiting .* 2 `, rows)
		mustMatch(t, "amdahl", `^Serial part set: 0\.00\. Fitted with the tasks' own speed-up: s = 0\.000\. Fitted to the whole run's speed-ups: s = [\d.]+ from 1 speed-up, interference and uneven shares included: `, text(t, ctx, "#parallel-amdahl"))
		// One lane at GOMAXPROCS 1, two at 2, each with the tasks' bars.
		for id, lanes := range map[string][]string{"cpu-1": {"P0"}, "cpu-2": {"P0", "P1"}, "wait-1": {"P0"}} {
			got := text(t, ctx, "#parallel-trace-"+id)
			for _, l := range lanes {
				if !strings.Contains(got, l) {
					t.Errorf("trace %s lacks lane %s: %q", id, l, got)
				}
			}
			if strings.Contains(got, "P"+strconv.Itoa(len(lanes))) {
				t.Errorf("trace %s has a lane too many: %q", id, got)
			}
		}
		bars, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#parallel-trace-cpu-2 rect.bar").length`))
		if err != nil {
			t.Fatal(err)
		}
		if bars < 4 {
			t.Errorf("the two-P trace draws %d bars, want one per task at least", bars)
		}
		screenshot(t, ctx, "lab-chapter6-parallel.png")

		// The scheduler in a real trace.
		if err := runExperiment(ctx, "gmp", map[string]string{"procs": "2", "burst": "100", "syscalls": "2", "spin": "40"}); err != nil {
			t.Fatal(err)
		}
		mustMatch(t, "gmp summary", `^GOMAXPROCS 2: 100 goroutines in a burst, 2 blocking system calls and a 40 ms spin took [\d,]+ ms\.$`, text(t, ctx, "#gmp-summary"))
		mustMatch(t, "gmp table", `goroutines created\s+\d{3}`, text(t, ctx, "#table-gmp"))
		mustMatch(t, "gmp lanes", `P0.*\n?.*P1`, text(t, ctx, "#gmp-trace"))
		mustMatch(t, "gmp queues", `global run queue`, text(t, ctx, "#gmp-queues"))

		// The model: one P, six spawns: the newest in runnext, the rest in
		// the local queue in order.
		if err := runExperiment(ctx, "gmp-sim", map[string]string{"scenario": "burst", "procs": "1", "queue": "256"}); err != nil {
			t.Fatal(err)
		}
		for range 6 {
			if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#gmp-step"))); err != nil {
				t.Fatal(err)
			}
		}
		board := strings.Join(strings.Fields(text(t, ctx, "#gmp-board")), " ")
		mustMatch(t, "after six spawns", `P0 runs main \(6 ms\) runnext: w6 local \(5\): w1 ?w2 ?w3 ?w4 ?w5 schedtick: 1 `, board)
		mustMatch(t, "the rule", `w6 goes to P0's runnext; w5, displaced, to the tail of its local queue`, text(t, ctx, "#gmp-events"))
		screenshot(t, ctx, "lab-chapter6-gmp.png")
	})

	t.Run("chapter 7: races", func(t *testing.T) {
		nav("#/interleave")
		if err := runExperiment(ctx, "interleave", map[string]string{"program": "lost-update"}); err != nil {
			t.Fatal(err)
		}
		if got := text(t, ctx, "#interleave-summary"); got != "18 of 20 schedules fail (90.0 %)." {
			t.Errorf("summary: %q", got)
		}
		if got := text(t, ctx, "#interleave-checks"); got != "Must hold at the end: x == 2" {
			t.Errorf("checks: %q", got)
		}
		mustMatch(t, "outcomes", `x=1\s+broken: x == 2\s+18\s+90\.0 %.*x=2\s+holds\s+2\s+10\.0 %`, strings.Join(strings.Fields(text(t, ctx, "#table-interleave tbody")), " "))
		mustMatch(t, "fixes", `mutex 2 0 .*atomic 2 0 `, strings.Join(strings.Fields(text(t, ctx, "#table-interleave-fixes tbody")), " ")+" ")
		// Play the lost update: both load 0 before either stores.
		for _, g := range []string{"0", "1", "0", "0", "1"} {
			if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#interleave-moves button.move[data-g="`+g+`"]`))); err != nil {
				t.Fatal(err)
			}
		}
		if got := strings.Join(strings.Fields(text(t, ctx, "#interleave-shared")), " "); got != "Shared: x = 1" {
			t.Errorf("after G1's store: %q", got)
		}
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#interleave-moves button.move[data-g="1"]`))); err != nil {
			t.Fatal(err)
		}
		if got := text(t, ctx, "#interleave-end"); got != "Finished: x=1. Broken: x == 2." {
			t.Errorf("the end of the game: %q", got)
		}
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#interleave-undo"))); err != nil {
			t.Fatal(err)
		}
		if got := text(t, ctx, "#interleave-step"); got != "step 5" {
			t.Errorf("after undo: %q", got)
		}
		// Back at step 0 nothing but the stepper is under the moves: no
		// stray "null" where the history would be.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#interleave-restart"))); err != nil {
			t.Fatal(err)
		}
		tail, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector(".stepper").parentElement.lastChild.textContent`))
		if err != nil {
			t.Fatal(err)
		}
		if got := text(t, ctx, "#interleave-step"); got != "step 0" || strings.Contains(tail, "null") {
			t.Errorf("after restart: %q, and %q after the stepper", got, tail)
		}
		screenshot(t, ctx, "lab-chapter7-interleave.png")
		// The lock-order deadlock, replayed from its row: two steps.
		if err := runExperiment(ctx, "interleave", map[string]string{"program": "lock-order"}); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#table-interleave button[data-outcome="0"]`)),
			chromedp.WaitVisible(chromedp.CSS("#interleave-end"))); err != nil {
			t.Fatal(err)
		}
		if got := text(t, ctx, "#interleave-end"); got != `Deadlock: G1 at "lock b", G2 at "lock a" — each waits for what another holds, and none can move.` {
			t.Errorf("the replayed deadlock: %q", got)
		}
		// Real goroutines: the fix never fails; the channel deadlock always does.
		if err := runExperiment(ctx, "interleave-real", map[string]string{"program": "lost-update+mutex", "trials": "2000"}); err != nil {
			t.Fatal(err)
		}
		mustMatch(t, "real fix", `^2,000 runs of lost-update\+mutex on real goroutines \(GOMAXPROCS \d+\) in [\d,]+ ms: none went wrong\.$`, text(t, ctx, "#interleave-real-summary"))
		if err := runExperiment(ctx, "interleave-real", map[string]string{"program": "channel-deadlock", "trials": "200"}); err != nil {
			t.Fatal(err)
		}
		mustMatch(t, "real deadlock", `: 200 went wrong \(100\.0 %\)\.$`, text(t, ctx, "#interleave-real-summary"))
		mustMatch(t, "runtime", `(Go's runtime stopped the process itself at run 1: fatal error: all goroutines are asleep - deadlock!|Run 1 hung\. This binary links cgo)`, text(t, ctx, "#interleave-runtime"))
		mustMatch(t, "runtime goroutines", `goroutine \d+ \[chan send\].*\n.*goroutine \d+ \[chan send\]`, text(t, ctx, "#interleave-goroutines"))
		screenshot(t, ctx, "lab-chapter7-interleave-real.png")
	})

	t.Run("chapter 8: flash sale", func(t *testing.T) {
		nav("#/flashsale")
		sale := map[string]string{"stock": "100", "buyers": "800", "users": "500", "seconds": "2"}
		// Phase 4, coroutines that read then write with 20 ms of work
		// between: oversold in one process.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#preset-phase4"))); err != nil {
			t.Fatal(err)
		}
		if err := runExperiment(ctx, "flashsale", sale); err != nil {
			t.Fatal(err)
		}
		mustMatch(t, "naive verdict", `^OVERSOLD by [1-9]\d*: [\d,]+ orders stored for 100 units\.$`, text(t, ctx, "#flashsale-verdict"))
		mustMatch(t, "naive checks", `checks failed: .*never oversold`, text(t, ctx, "#flashsale-summary"))
		screenshot(t, ctx, "lab-chapter8-flashsale-naive.png")
		// Phase 2 with the guide's fix: four processes, a lock in Redis (a
		// private redis-server): the books balance.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#preset-phase2lock"))); err != nil {
			t.Fatal(err)
		}
		if err := runExperiment(ctx, "flashsale", map[string]string{"stock": "100", "buyers": "300", "users": "300", "seconds": "2"}); err != nil {
			t.Fatal(err)
		}
		if got := text(t, ctx, "#flashsale-verdict"); got != "Sold 100 of 100: nothing oversold." {
			t.Errorf("redis-lock verdict: %q", got)
		}
		evolution := text(t, ctx, "#table-evolution tbody")
		mustMatch(t, "evolution: the lock", `2 · Multi-process \+ distributed lock\s+multi-process \+ distributed lock\s+10K\s+.*redis-lock × 4, 5 ms work\s+[\d.]+ ms / [\d.]+ ms\s+balanced \((\d+) of (\d+) checks\)`, evolution)
		mustMatch(t, "evolution: coroutines", `4 · Coroutine\s+async I/O\s+100K\+\s+.*naive × 1, 20 ms work\s+[\d.]+ ms / [\d.]+ ms\s+OVERSOLD by [1-9]`, evolution)
		mustMatch(t, "evolution: not run", `5 · Hybrid\s+multi-process \+ coroutines\s+1M\+\s+architectural complexity\s+reserve × 4\s+not run yet`, evolution)
		// Phase 5, the reservation, with the whole shop killed halfway:
		// exactly the stock, every check held.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#preset-phase5")),
			chromedp.SetValue(chromedp.CSS("#p-flashsale-fault"), "kill-shop")); err != nil {
			t.Fatal(err)
		}
		if err := runExperiment(ctx, "flashsale", sale); err != nil {
			t.Fatal(err)
		}
		if got := text(t, ctx, "#flashsale-verdict"); got != "Sold 100 of 100: nothing oversold." {
			t.Errorf("reserve verdict: %q", got)
		}
		if got := text(t, ctx, "#flashsale-summary"); got != "All 13 checks held." {
			t.Errorf("reserve checks: %q", got)
		}
		mustMatch(t, "the crash", `kill-shop at 1\.\d\d s, back at \d\.\d\d s\.`, text(t, ctx, "#result-flashsale"))
		screenshot(t, ctx, "lab-chapter8-flashsale-reserve.png")
		// Where reserve peaks: a short sweep, and the law fitted to it.
		if err := runExperiment(ctx, "flashsale-sweep", map[string]string{"levels": "1,2,4,8", "step": "500", "repeats": "1"}); err != nil {
			t.Fatal(err)
		}
		mustMatch(t, "sweep table", `^1\s+[\d.,]+\s+[\d.,]+\s+[\d.]+ ms\s+[\d.]+ ms\s+0\s*\n2\s+.*\n4\s+.*\n8\s+`, text(t, ctx, "#table-flashsale-sweep tbody"))
		mustMatch(t, "sweep verdict", `^(Measured capacity: [\d.,k]+ requests/s at \d at once|No plan: )`, text(t, ctx, "#flashsale-sweep-verdict"))
		mustMatch(t, "sweep plan", `^Plan for 100,000 buyers at once: (HOLDS|SATURATES|COLLAPSES) \(bound\)\.$`, text(t, ctx, "#flashsale-sweep-plan"))
		screenshot(t, ctx, "lab-chapter8-flashsale-sweep.png")
		for deadline := time.Now().Add(10 * time.Second); testenv.ChildProcesses(t, labPID) != 0; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d child processes of the lab are left after the sale", testenv.ChildProcesses(t, labPID))
			}
		}
	})

	t.Run("reference", func(t *testing.T) {
		nav("#/reference")
		if err := runExperiment(ctx, "reference", nil); err != nil {
			t.Fatal(err)
		}
		costs := text(t, ctx, "#reference-costs tbody")
		// A duration is shown in its own unit: a fast machine's quickest
		// process switch reads "904 ns".
		const dur = `[\d.]+ (?:ns|µs|ms)`
		mustMatch(t, "process switch", `Switch overhead\s+~1–10 ms\s+`+dur+` \(`+dur+` to `+dur+`\)\s+cheaper than claimed`, costs)
		mustMatch(t, "scheduler", `Scheduler\s+OS\s+[\d.]+ kernel switches per round trip\s+agrees: [\s\S]*user program / runtime\s+0\.\d\d kernel switches per round trip\s+agrees: the kernel saw almost no switch`, costs)
		mustMatch(t, "crash", `controllable\s+not in Go`, costs)
		mustMatch(t, "ipc", `pipe \(two, one each way\)\s+medium\s+[\d.]+ µs median`, text(t, ctx, "#reference-ipc tbody"))
		mustMatch(t, "sync", `Atomic operations\s+lock-free, highest performance\s+[\d.]+ Mops/s with 8 goroutines\s+(agrees|disagrees): the highest throughput`, text(t, ctx, "#reference-sync tbody"))
		mustMatch(t, "selection", `Web service gateway\s+coroutine \+ async I/O\s+high concurrent connections, low memory footprint\s+a goroutine held [\d.]+ KiB here`, text(t, ctx, "#reference-selection tbody"))
		screenshot(t, ctx, "lab-reference.png")
	})

	t.Run("glossary", func(t *testing.T) {
		nav("#/glossary")
		g := text(t, ctx, "#glossary")
		for _, term := range []string{"进程", "线程", "协程", "上下文切换", "互斥锁", "信号量", "工作窃取", "零拷贝", "C10K", "I/O 多路复用"} {
			if !strings.Contains(g, term) {
				t.Errorf("glossary lacks %s", term)
			}
		}
		screenshot(t, ctx, "lab-glossary.png")
	})

	if p := problems(); len(p) > 0 {
		t.Errorf("the page reported %d problem(s):\n%s", len(p), strings.Join(p, "\n"))
	}
}
