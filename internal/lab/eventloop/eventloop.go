package eventloop

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/stampede-dev/stampede/internal/lab"
)

// childEnv starts this binary as one of the two servers: "reactor" or
// "nethttp". It prints its address, serves until its standard input
// closes, and (the reactor) answers GET /_record with its iterations.
const childEnv = "STAMPEDE_EVENTLOOP_CHILD"

// keep is how many iterations the reactor records in full.
const keep = 80

// ChildMain runs a server when this process was started as one, then
// exits; it reports false at once otherwise. Call it first in main.
func ChildMain() bool {
	kind := os.Getenv(childEnv)
	if kind == "" {
		return false
	}
	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
	switch kind {
	case "reactor":
		r, err := Listen(keep)
		if err != nil {
			fmt.Fprintln(os.Stderr, "eventloop child:", err)
			os.Exit(1)
		}
		r.Every("tick", 100*time.Millisecond)
		r.record = true
		fmt.Println(r.Addr)
		go func() { <-stop; r.Stop() }()
		r.Serve()
	case "nethttp":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, "eventloop child:", err)
			os.Exit(1)
		}
		fmt.Println(l.Addr())
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if ms, err := strconv.Atoi(req.URL.Query().Get("ms")); req.URL.Path == "/block" && err == nil && ms >= 0 && ms <= 5000 {
				time.Sleep(time.Duration(ms) * time.Millisecond)
			}
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte("ok"))
		})}
		go func() { <-stop; srv.Close() }()
		srv.Serve(l)
	default:
		fmt.Fprintln(os.Stderr, "eventloop child: no server", kind)
		os.Exit(2)
	}
	os.Exit(0)
	return true
}

// Experiment runs both servers.
type Experiment struct{ exe string }

// New returns the experiment; exe is this binary, started as the servers.
func New(exe string) *Experiment { return &Experiment{exe: exe} }

var _ lab.Experiment = (*Experiment)(nil)

// Info describes the experiment.
func (*Experiment) Info() lab.Info {
	return lab.Info{
		ID: "eventloop", Chapter: 5, Heavy: true,
		Title:   "The event loop: one thread, epoll, and a callback that blocks",
		Summary: "An epoll reactor serving HTTP/1.1 keep-alive connections on one thread, every iteration recorded, against net/http's goroutine per connection: requests per second, memory per idle connection, and one blocking callback.",
		Params: []lab.Param{
			{Name: "conns", Label: "Busy connections", Kind: lab.Int, Default: 50, Min: 1, Max: 1000},
			{Name: "seconds", Label: "Load per server", Unit: "s", Kind: lab.Int, Default: 2, Min: 1, Max: 10},
			{Name: "idle", Label: "Idle connections for the memory test", Kind: lab.Int, Default: 1000, Min: 10, Max: 5000},
			{Name: "block", Label: "One callback blocks for", Unit: "ms", Help: "halfway through the load; 0 leaves it out", Kind: lab.Int, Default: 200, Min: 0, Max: 2000},
		},
	}
}

// Window is the latency in one 50 ms slice of the load.
type Window struct {
	AtMS   float64 `json:"atMs"`
	MaxMS  float64 `json:"maxMs"`
	Served int     `json:"served"`
}

// Run is one server under load.
type Run struct {
	Server    string   `json:"server"`
	Requests  int      `json:"requests"`
	PerSecond float64  `json:"perSecond"`
	P50MS     float64  `json:"p50Ms"`
	P99MS     float64  `json:"p99Ms"`
	MaxMS     float64  `json:"maxMs"`
	Windows   []Window `json:"windows"`
	// BlockAtMS is when the blocking request was sent, from the start of
	// the load; -1 without one.
	BlockAtMS float64 `json:"blockAtMs"`
	// Idle memory: the server's resident memory, and the kernel's slab
	// (sockets, inodes, files), per idle connection.
	IdleConns     int     `json:"idleConns"`
	RSSPerConn    float64 `json:"rssPerConn"`    // bytes
	KernelPerConn float64 `json:"kernelPerConn"` // bytes, both ends of each connection
	Threads       int     `json:"threads"`
}

// Result is the experiment's result.
type Result struct {
	Runs       []Run       `json:"runs"`
	Iterations []Iteration `json:"iterations"`
	Totals     Totals      `json:"totals"`
}

// Run measures the reactor, then net/http.
func (e *Experiment) Run(ctx context.Context, p lab.Values, emit func(lab.Event)) error {
	if e.exe == "" {
		return errors.New("the eventloop experiment needs this binary to start its servers, and it could not be found")
	}
	var res Result
	for i, kind := range []string{"reactor", "nethttp"} {
		emit(lab.Progress("load on "+kind, int64(i), 2))
		run, rec, err := e.measure(ctx, kind, p.Int("conns"), time.Duration(p.Int("seconds"))*time.Second, p.Int("idle"), p.Int("block"))
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		res.Runs = append(res.Runs, run)
		if rec != nil {
			res.Iterations, res.Totals = rec.Iterations, rec.Totals
		}
	}
	emit(lab.Result(res))
	return nil
}

type record struct {
	Iterations []Iteration `json:"iterations"`
	Totals     Totals      `json:"totals"`
}

// measure starts one server, loads it, weighs its idle connections and
// stops it.
func (e *Experiment) measure(ctx context.Context, kind string, conns int, d time.Duration, idle, block int) (Run, *record, error) {
	cmd := exec.CommandContext(ctx, e.exe)
	cmd.Env = append(os.Environ(), childEnv+"="+kind)
	cmd.WaitDelay = time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return Run{}, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return Run{}, nil, err
	}
	if err := cmd.Start(); err != nil {
		return Run{}, nil, err
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return Run{}, nil, fmt.Errorf("the server did not start: %w", err)
	}
	addr = strings.TrimSpace(addr)
	run := Run{Server: kind, BlockAtMS: -1}
	if err := load(ctx, addr, conns, d, block, &run); err != nil {
		return Run{}, nil, err
	}
	if err := weigh(ctx, addr, cmd.Process.Pid, idle, &run); err != nil {
		return Run{}, nil, err
	}
	var rec *record
	if kind == "reactor" {
		rec = &record{}
		if err := getJSON(addr, "/_record", rec); err != nil {
			return Run{}, nil, err
		}
	}
	return run, rec, nil
}

// request sends one keep-alive GET and reads the answer.
func request(c net.Conn, br *bufio.Reader, path string) error {
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: lab\r\n\r\n", path); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err
}

// load keeps conns connections busy for d, one request at a time each,
// and sends one blocking request halfway.
func load(ctx context.Context, addr string, conns int, d time.Duration, block int, run *Run) error {
	type sample struct{ at, took time.Duration }
	var mu sync.Mutex
	var all []sample
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	errs := make(chan error, conns+1)
	for range conns {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			var mine []sample
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t := time.Now()
				if err := request(c, br, "/"); err != nil {
					errs <- err
					return
				}
				mine = append(mine, sample{t.Sub(start), time.Since(t)})
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
	}
	if block > 0 {
		wg.Go(func() {
			time.Sleep(d / 2)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			run.BlockAtMS = float64(time.Since(start).Microseconds()) / 1000
			if err := request(c, bufio.NewReader(c), fmt.Sprintf("/block?ms=%d", block)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case err := <-errs:
		return err
	default:
	}
	if len(all) == 0 {
		return errors.New("no request was answered")
	}
	slices.SortFunc(all, func(a, b sample) int { return int(a.took - b.took) })
	ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
	run.Requests = len(all)
	run.PerSecond = float64(len(all)) / d.Seconds()
	run.P50MS, run.P99MS, run.MaxMS = ms(all[len(all)/2].took), ms(all[len(all)*99/100].took), ms(all[len(all)-1].took)
	const w = 50 * time.Millisecond
	run.Windows = make([]Window, int(d/w)+1)
	for i := range run.Windows {
		run.Windows[i].AtMS = ms(time.Duration(i) * w)
	}
	for _, s := range all {
		i := min(len(run.Windows)-1, int((s.at+s.took)/w))
		run.Windows[i].Served++
		run.Windows[i].MaxMS = max(run.Windows[i].MaxMS, ms(s.took))
	}
	return nil
}

// weigh opens idle keep-alive connections (each answered once) and reads
// what they cost: the server's resident memory and the kernel's slab.
func weigh(ctx context.Context, addr string, pid, n int, run *Run) error {
	rss0, threads0, err := procStatus(pid)
	if err != nil {
		return err
	}
	k0, err := slab()
	if err != nil {
		return err
	}
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("open idle connection %d: %w", len(conns)+1, err)
		}
		conns = append(conns, c)
		if err := request(c, bufio.NewReader(c), "/"); err != nil {
			return err
		}
	}
	time.Sleep(100 * time.Millisecond) // let the server settle
	rss1, threads1, err := procStatus(pid)
	if err != nil {
		return err
	}
	k1, err := slab()
	if err != nil {
		return err
	}
	run.IdleConns = n
	run.RSSPerConn = float64(rss1-rss0) / float64(n)
	run.KernelPerConn = float64(k1-k0) / float64(n)
	run.Threads = max(threads0, threads1)
	return nil
}

// procStatus reads a process's resident memory (bytes) and thread count.
func procStatus(pid int) (rss int64, threads int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			rss = kb << 10
		}
		if len(f) >= 2 && f[0] == "Threads:" {
			threads, _ = strconv.Atoi(f[1])
		}
	}
	return rss, threads, nil
}

// slab reads the kernel's slab memory, in bytes, from /proc/meminfo:
// where its socket, inode and file structures live. It is system-wide, so
// it counts both ends of a loopback connection.
func slab() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "Slab:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no Slab line in /proc/meminfo")
}

func getJSON(addr, path string, v any) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: lab\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// WriteText prints both servers side by side.
func (r Result) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\trequests/s\tp50 ms\tp99 ms\tmax ms\tRSS per idle conn\tkernel per idle conn\tthreads\t")
	for _, run := range r.Runs {
		fmt.Fprintf(tw, "%s\t%.0f\t%.3f\t%.3f\t%.1f\t%.0f B\t%.0f B\t%d\t\n", run.Server, run.PerSecond, run.P50MS, run.P99MS, run.MaxMS, run.RSSPerConn, run.KernelPerConn, run.Threads)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	t := r.Totals
	_, err := fmt.Fprintf(w, "\nThe reactor: %d iterations, %.0f ms in epoll_wait, %.0f ms running callbacks, %d callbacks, %d timers, %d accepts.\n",
		t.Iterations, t.WaitMS, t.WorkMS, t.Callbacks, t.Timers, t.Accepted)
	return err
}
