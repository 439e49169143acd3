package isolation

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// childEnv starts this binary as one of the experiment's children; its
// value is the child's mode.
const childEnv = "STAMPEDE_ISOLATION_CHILD"

// cell is the global every child writes its own value into: the same
// virtual address in each, a different page behind it.
var cell atomic.Int64

// Report is what a value child says about itself, as one JSON line.
type Report struct {
	PID     int    `json:"pid"`
	Addr    string `json:"addr"`    // &cell, in hex
	Wrote   int64  `json:"wrote"`   // the value it stored
	Read    int64  `json:"read"`    // what it read back after the others had written theirs
	Shared  int64  `json:"shared"`  // the MAP_SHARED counter after every child added 1
	MapLine string `json:"mapLine"` // the /proc/self/maps line holding cell
	Text    string `json:"text"`    // the maps line of the program's code
	// From /proc/self/smaps_rollup, KiB.
	PrivateKiB int64 `json:"privateKiB"`
	SharedKiB  int64 `json:"sharedKiB"`
	PssKiB     int64 `json:"pssKiB"`
	// The child counts milliseconds for countFor after storing its value,
	// across the moment its sibling crashes: Counted ticks from CountFrom
	// to CountTo (Unix nanoseconds).
	Counted   int64 `json:"counted"`
	CountFrom int64 `json:"countFrom"`
	CountTo   int64 `json:"countTo"`
}

// countFor is how long each value child counts; the crashing child dies
// crashAfter into it.
const (
	countFor   = 600 * time.Millisecond
	crashAfter = 200 * time.Millisecond
)

// ChildMain runs a child when this process was started as one, then
// exits; it reports false at once otherwise. Call it first in main.
//
// Modes: "value:N:K" stores N in cell, adds 1 to the shared counter on
// file descriptor 3 (a MAP_SHARED mapping), waits until K children have,
// counts milliseconds for 600 ms, and reports; "segv" prints the time and
// reads through a nil pointer after 200 ms; "panic"
// runs four counting goroutines and lets one panic after 100 ms.
func ChildMain() bool {
	mode := os.Getenv(childEnv)
	if mode == "" {
		return false
	}
	switch {
	case strings.HasPrefix(mode, "value:"):
		valueChild(mode)
	case mode == "segv":
		time.Sleep(crashAfter)
		fmt.Println(time.Now().UnixNano()) // when, for the parent to set beside the others' counting
		var p *int64
		fmt.Println(*p) // the kernel sends SIGSEGV; Go's runtime reports it and exits 2
	case mode == "panic":
		panicChild()
	}
	os.Exit(2)
	return true
}

func valueChild(mode string) {
	parts := strings.Split(mode, ":")
	n, _ := strconv.ParseInt(parts[1], 10, 64)
	k, _ := strconv.ParseInt(parts[2], 10, 64)
	cell.Store(n)
	shared, err := unix.Mmap(3, 0, 8, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mmap:", err)
		os.Exit(1)
	}
	counter := (*atomic.Int64)(unsafe.Pointer(&shared[0]))
	counter.Add(1)
	// Count, while a sibling crashes: nothing of it reaches this process.
	var r Report
	r.CountFrom = time.Now().UnixNano()
	for end := time.Now().Add(countFor); time.Now().Before(end); r.Counted++ {
		time.Sleep(time.Millisecond)
	}
	r.CountTo = time.Now().UnixNano()
	for deadline := time.Now().Add(5 * time.Second); counter.Load() < k && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the others have written their cells too
	addr := uintptr(unsafe.Pointer(&cell))
	r.PID, r.Addr, r.Wrote, r.Read, r.Shared = os.Getpid(), fmt.Sprintf("%#x", addr), n, cell.Load(), counter.Load()
	r.MapLine, r.Text = mapsLines(addr)
	r.PrivateKiB, r.SharedKiB, r.PssKiB = rollup()
	json.NewEncoder(os.Stdout).Encode(r)
	os.Exit(0)
}

// mapsLines finds the /proc/self/maps line whose range holds addr, and
// the first executable line (the program's code).
func mapsLines(addr uintptr) (holding, text string) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return "", ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil {
			continue
		}
		if uint64(addr) >= a && uint64(addr) < b {
			holding = line
		}
		if text == "" && strings.Contains(fields[1], "x") {
			text = line
		}
	}
	return holding, text
}

// rollup reads private, shared and proportional memory, in KiB.
func rollup() (private, shared, pss int64) {
	b, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		return 0, 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "Private_Clean:", "Private_Dirty:":
			private += v
		case "Shared_Clean:", "Shared_Dirty:":
			shared += v
		case "Pss:":
			pss = v
		}
	}
	return private, shared, pss
}

// panicChild counts in four goroutines and prints their counts every 20 ms;
// after 100 ms the fourth panics, unrecovered, and takes the process down.
func panicChild() {
	var counts [4]atomic.Int64
	for i := range 4 {
		go func() {
			start := time.Now()
			for {
				counts[i].Add(1)
				time.Sleep(time.Millisecond)
				if i == 3 && time.Since(start) > 100*time.Millisecond {
					panic("goroutine 4 gives up")
				}
			}
		}()
	}
	for {
		time.Sleep(20 * time.Millisecond)
		fmt.Printf("%d %d %d %d\n", counts[0].Load(), counts[1].Load(), counts[2].Load(), counts[3].Load())
	}
}
