package interleave

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// childEnv starts this binary as the deadlock child: "PROGRAM-ID TRIALS
// YIELD".
const childEnv = "STAMPEDE_INTERLEAVE_CHILD"

// RuntimeReport is what Go's runtime said about a program run with real
// sync.Mutex and channels, trial after trial, in a process of its own.
//
// The runtime's deadlock detector ("fatal error: all goroutines are
// asleep") stops such a process at the first trial in which every
// goroutine waits, but only in a binary without cgo: with C code linked
// in (a Go build with a C compiler at hand links the net package's cgo
// resolver), a C thread might yet wake a goroutine, so the runtime never
// calls it a deadlock. The parent then sees the trials stop, sends the
// child SIGQUIT, and shows the goroutine dump the runtime prints for it.
type RuntimeReport struct {
	// Trials is how many trials began; the last is the one that hung, if
	// one did.
	Trials   int  `json:"trials"`
	Deadlock bool `json:"deadlock"`
	// Detector is "runtime" when Go's runtime stopped the process itself,
	// "sigquit" when the parent saw it hang and asked for a dump, and ""
	// when every trial finished.
	Detector string `json:"detector,omitempty"`
	Cgo      bool   `json:"cgo"`
	Fatal    string `json:"fatal,omitempty"` // the runtime's first line
	// Goroutines lists the program's goroutines from the runtime's dump,
	// such as "goroutine 7 [chan send] in …interleave.goPrimitives.send".
	Goroutines []string `json:"goroutines,omitempty"`
	Exit       string   `json:"exit"`
	// Excerpt is the start of what the runtime wrote.
	Excerpt string `json:"excerpt,omitempty"`
}

// Bounds on the child: a program that neither finishes nor hangs in
// childTimeout is stopped; one whose trials stop for hangAfter is hung
// (a trial takes microseconds).
const (
	childTimeout = 20 * time.Second
	hangAfter    = 500 * time.Millisecond
)

// runChild runs the program id in the child for up to trials trials.
func runChild(ctx context.Context, exe, id string, trials int, yield bool) (RuntimeReport, error) {
	ctx, cancel := context.WithTimeout(ctx, childTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %t", childEnv, id, trials, yield), "GOTRACEBACK=all")
	cmd.WaitDelay = time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return RuntimeReport{}, err
	}
	if err := cmd.Start(); err != nil {
		return RuntimeReport{}, fmt.Errorf("the deadlock child: %w", err)
	}
	var began atomic.Int64   // the last trial the child began
	var moved atomic.Int64   // when, in UnixNano
	var finished atomic.Bool // every trial ended; the child is exiting
	moved.Store(time.Now().UnixNano())
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "done" {
				finished.Store(true)
			}
			if n, err := strconv.Atoi(sc.Text()); err == nil {
				began.Store(int64(n))
				moved.Store(time.Now().UnixNano())
			}
		}
	}()
	r := RuntimeReport{Cgo: cgo()}
	tick := time.NewTicker(hangAfter / 5)
	defer tick.Stop()
watch:
	for {
		select {
		case <-read:
			break watch
		case <-tick.C:
			if r.Detector == "" && !finished.Load() && time.Since(time.Unix(0, moved.Load())) > hangAfter {
				r.Detector = "sigquit"
				cmd.Process.Signal(syscall.SIGQUIT)
			}
		}
	}
	err = cmd.Wait()
	if errors.Is(ctx.Err(), context.Canceled) {
		return RuntimeReport{}, ctx.Err()
	}
	r.Trials = int(began.Load())
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		r.Exit = fmt.Sprintf("stopped after %s", childTimeout)
	case errors.As(err, &exit):
		r.Exit = exit.String()
	case err != nil:
		return RuntimeReport{}, fmt.Errorf("the deadlock child: %w", err)
	default:
		r.Exit = "exit status 0"
	}
	dump := stderr.String()
	first, _, _ := strings.Cut(dump, "\n")
	if strings.HasPrefix(first, "fatal error: ") || strings.HasPrefix(first, "SIGQUIT") {
		r.Fatal = first
	}
	if strings.Contains(first, "all goroutines are asleep") {
		r.Detector, r.Deadlock = "runtime", true
	}
	r.Goroutines = programGoroutines(dump)
	if r.Detector == "sigquit" {
		// Hung, and the dump shows every goroutine of the program waiting.
		r.Deadlock = len(r.Goroutines) > 0
		for _, g := range r.Goroutines {
			if !waitingState.MatchString(g) {
				r.Deadlock = false
			}
		}
	}
	if len(dump) > 4000 {
		dump = dump[:4000] + "\n…"
	}
	r.Excerpt = dump
	return r, nil
}

// cgo reports whether this binary was built with cgo.
func cgo() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "CGO_ENABLED" {
			return s.Value == "1"
		}
	}
	return false
}

var (
	goroutineRE  = regexp.MustCompile(`(?m)^(goroutine \d+)(?: gp=\S+ m=\S+(?: mp=\S+)?)? (\[[^\]]*\]):\n((?:.+\n?)*)`)
	frameRE      = regexp.MustCompile(`(?m)^(\S+)\(`)
	waitingState = regexp.MustCompile(`\[(chan send|chan receive|sync\.Mutex\.Lock|semacquire|sync\.WaitGroup\.Wait)`)
)

// programGoroutines lists the goroutines of a dump that ran the program
// (those with a frame in this package), each as its header and the
// first such frame.
func programGoroutines(dump string) []string {
	var out []string
	for _, m := range goroutineRE.FindAllStringSubmatch(dump, 64) {
		for _, f := range frameRE.FindAllStringSubmatch(m[3], -1) {
			if strings.Contains(f[1], "/interleave.") {
				out = append(out, m[1]+" "+m[2]+" in "+f[1][strings.LastIndexByte(f[1], '/')+1:])
				break
			}
		}
	}
	return out
}

// ChildMain runs the deadlock child when this process was started as
// one, and then exits; it reports false at once otherwise. Call it first
// in main.
func ChildMain() bool {
	v := os.Getenv(childEnv)
	if v == "" {
		return false
	}
	f := strings.Fields(v)
	if len(f) != 3 {
		f = []string{"", "", ""}
	}
	trials, err := strconv.Atoi(f[1])
	yield, err2 := strconv.ParseBool(f[2])
	src, _, ok := lookup(f[0])
	if err != nil || err2 != nil || !ok || trials < 1 {
		fmt.Fprintf(os.Stderr, "interleave child: bad %s=%q\n", childEnv, v)
		os.Exit(2)
	}
	p, err := Parse(src)
	if err != nil {
		fmt.Fprintln(os.Stderr, "interleave child:", err)
		os.Exit(2)
	}
	// No timer, ticker or signal handler may be live here: the runtime
	// reports a deadlock only when nothing at all could wake a goroutine.
	for i := 1; i <= trials; i++ {
		os.Stdout.WriteString(strconv.Itoa(i) + "\n")
		runtimeTrial(p, yield)
	}
	os.Stdout.WriteString("done\n")
	os.Exit(0)
	return true
}

// runtimeTrial runs p once with Go's own sync.Mutex and channels.
func runtimeTrial(p *Program, yield bool) {
	vars := make([]atomic.Int64, len(p.Shared))
	for i, v := range p.Initial {
		vars[i].Store(v)
	}
	r := goPrimitives{locks: make([]sync.Mutex, len(p.Locks)), chans: make([]chan int64, len(p.Chans))}
	for i, c := range p.Caps {
		r.chans[i] = make(chan int64, c)
	}
	together(len(p.G), func(g int) { steps(p, g, vars, r, yield, nil) })
}

// goPrimitives are Go's own: a deadlock blocks for ever, and the runtime
// ends the process when every goroutine does.
type goPrimitives struct {
	locks []sync.Mutex
	chans []chan int64
}

func (r goPrimitives) lock(_, m int) bool       { r.locks[m].Lock(); return true }
func (r goPrimitives) unlock(_, m int) bool     { r.locks[m].Unlock(); return true }
func (r goPrimitives) send(c int, v int64) bool { r.chans[c] <- v; return true }
func (r goPrimitives) recv(c int) (int64, bool) { return <-r.chans[c], true }
