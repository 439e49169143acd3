package parallel

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/trace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// childEnv starts this binary as a run of the workload: "KIND TASKS ITERS
// WAIT-MS TRACE-FILE SERIAL-ITERS" (TRACE-FILE "-" for no trace). A
// CPU-bound run first hashes SERIAL-ITERS alone, on one goroutine (the
// serial part), then starts the tasks. GOMAXPROCS comes from the
// environment, as the runtime reads it.
const childEnv = "STAMPEDE_PARALLEL_CHILD"

// childResult is what a child prints.
type childResult struct {
	WallNs     int64 `json:"wallNs"`
	SerialNs   int64 `json:"serialNs,omitempty"` // of WallNs, the serial part's
	GOMAXPROCS int   `json:"gomaxprocs"`
	SpinNs     int64 `json:"spinNs,omitempty"`
}

// sink keeps results alive, so the work is not optimised away; the
// goroutines doing it add to it atomically.
var sink atomic.Uint64

// hashWork hashes a 16 KiB block iters times: CPU-bound work with no
// system call and no allocation.
func hashWork(iters int) {
	var block [16 << 10]byte
	var sum [32]byte
	for range iters {
		block[0], block[1] = sum[0], sum[1]
		sum = sha256.Sum256(block[:])
	}
	sink.Add(uint64(sum[0]))
}

// itersPerMS measures how many hash iterations take a millisecond on one
// core here.
func itersPerMS() int { return perMS(hashWork, 16) }

// perMS measures how many units of work run(n) does in a millisecond: n
// doubles from start until a run takes 20 ms, then the best of three
// timings counts, as the others were slowed by whatever else the machine
// was doing.
func perMS(run func(n int), start int) int {
	n := start
	for {
		t := time.Now()
		run(n)
		if time.Since(t) > 20*time.Millisecond {
			break
		}
		n *= 2
	}
	best := time.Duration(math.MaxInt64)
	for range 3 {
		t := time.Now()
		run(n)
		best = min(best, time.Since(t))
	}
	return max(1, int(float64(n)/(float64(best)/float64(time.Millisecond))))
}

// die ends a child with one line on stderr and exit status 2.
func die(who string, err error) {
	fmt.Fprintf(os.Stderr, "%s child: %v\n", who, err)
	os.Exit(2)
}

// startTrace starts runtime/trace into a new file at path.
func startTrace(path string) (*os.File, error) {
	out, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := trace.Start(out); err != nil {
		out.Close()
		return nil, err
	}
	return out, nil
}

// stopTrace stops the trace and closes its file.
func stopTrace(out *os.File) error {
	trace.Stop()
	return out.Close()
}

// ChildMain runs the workload when this process was started as its
// child, and then exits; it reports false at once otherwise. Call it first
// in main.
func ChildMain() bool {
	if gmpChildMain() {
		return true
	}
	v := os.Getenv(childEnv)
	if v == "" {
		return false
	}
	fail := func(err error) { die("parallel", err) }
	f := strings.Fields(v)
	if len(f) != 6 || (f[0] != KindCPU && f[0] != KindWait) {
		fail(fmt.Errorf("bad %s=%q", childEnv, v))
	}
	tasks, err1 := strconv.Atoi(f[1])
	iters, err2 := strconv.Atoi(f[2])
	waitMS, err3 := strconv.Atoi(f[3])
	serialIters, err4 := strconv.Atoi(f[5])
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || tasks < 1 || serialIters < 0 {
		fail(fmt.Errorf("bad %s=%q", childEnv, v))
	}
	var out *os.File
	if f[4] != "-" {
		var err error
		if out, err = startTrace(f[4]); err != nil {
			fail(err)
		}
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	began := time.Now()
	var serial time.Duration
	if serialIters > 0 {
		trace.WithRegion(ctx, "serial part", func() { hashWork(serialIters) })
		serial = time.Since(began)
	}
	for i := range tasks {
		wg.Go(func() {
			trace.WithRegion(ctx, fmt.Sprintf("task %d", i), func() {
				if f[0] == KindCPU {
					hashWork(iters)
				} else {
					time.Sleep(time.Duration(waitMS) * time.Millisecond)
				}
			})
		})
	}
	wg.Wait()
	wall := time.Since(began)
	if out != nil {
		if err := stopTrace(out); err != nil {
			fail(err)
		}
	}
	json.NewEncoder(os.Stdout).Encode(childResult{WallNs: wall.Nanoseconds(), SerialNs: serial.Nanoseconds(), GOMAXPROCS: runtime.GOMAXPROCS(0)})
	os.Exit(0)
	return true
}
