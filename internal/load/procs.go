package load

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a child process has to write its result after
// SIGTERM before it is killed.
const stopGrace = 5 * time.Second

// RunProcesses runs n copies of this executable, process i with the
// arguments args(i, file), each of which must write its Result to file
// (stampede load -o file), and merges their results exactly. When ctx
// ends, every child gets SIGTERM, writes what it has and is waited for
// (killed after stopGrace), and the merged result so far is returned.
func RunProcesses(ctx context.Context, n int, args func(i int, file string) []string) (*Result, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "stampede-load")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	file := func(i int) string { return filepath.Join(dir, strconv.Itoa(i)+".stl") }
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		cmd := exec.CommandContext(ctx, exe, args(i, file(i))...)
		cmd.Stderr = os.Stderr
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = stopGrace
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = cmd.Run()
		}()
	}
	wg.Wait()
	total := NewResult()
	for i := range n {
		r, err := ReadFile(file(i))
		if err != nil {
			return nil, fmt.Errorf("load process %d: %v", i, errors.Join(errs[i], err))
		}
		total.Merge(r)
	}
	return total, nil
}
