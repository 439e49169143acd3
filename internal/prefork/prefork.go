// Package prefork runs a server as N worker processes that share one
// listening port through SO_REUSEPORT, the way gunicorn -w N or nginx's
// worker_processes do, with the parent as their supervisor.
package prefork

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// WorkerEnv is set to the worker's number in each worker's environment,
// and WorkersEnv to how many workers Supervise keeps.
const (
	WorkerEnv  = "STAMPEDE_WORKER"
	WorkersEnv = "STAMPEDE_WORKERS"
)

// IsWorker reports whether this process was started by Supervise.
func IsWorker() bool { return os.Getenv(WorkerEnv) != "" }

// Processes returns how many processes serve together: the workers a
// supervisor keeps, or 1 in a process of its own.
func Processes() int {
	if n, err := strconv.Atoi(os.Getenv(WorkersEnv)); err == nil && n > 1 && IsWorker() {
		return n
	}
	return 1
}

// Listen opens a TCP listener; in a worker it sets SO_REUSEPORT so that
// every worker can bind the same address and the kernel spreads
// connections among them.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	if IsWorker() {
		lc.Control = func(network, address string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			})
			return errors.Join(err, serr)
		}
	}
	return lc.Listen(ctx, "tcp", addr)
}

// StormBacklog is the accept backlog a connect storm of 100,000 clients
// needs: SYNs beyond the backlog are dropped and retried by the client
// only after 1, 3 and 7 s.
const StormBacklog = 65535

// BacklogWarning returns one line, or "", saying that the kernel caps the
// accept backlog (net.core.somaxconn) or the queue of half-open
// connections (net.ipv4.tcp_max_syn_backlog) below StormBacklog, and how
// to raise them. Go's listeners already ask for the largest backlog the
// kernel allows, so these two settings are the whole story.
func BacklogWarning() string {
	var low []string
	for _, name := range []string{"net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog"} {
		b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(name, ".", "/"))
		if err != nil {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n < StormBacklog {
			low = append(low, name+" is "+strconv.Itoa(n))
		}
	}
	if len(low) == 0 {
		return ""
	}
	return strings.Join(low, " and ") + ": clients connecting at once beyond that wait 1-7 s for SYN retries; as root: sysctl -w net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535"
}

// Ready tells the supervisor that this worker is serving. Outside a
// worker it does nothing.
func Ready() {
	if !IsWorker() {
		return
	}
	f := os.NewFile(3, "ready")
	fmt.Fprintln(f, "ready")
	f.Close()
}

// Supervise starts n workers running this executable with args, waits
// until each is ready, and then keeps n running: a worker that exits while
// ctx is live is restarted after a pause that grows while it keeps dying.
// When ctx ends every worker gets SIGTERM, and SIGKILL after grace.
// ready is called once all n are first serving.
func Supervise(ctx context.Context, n int, args []string, grace time.Duration, log *slog.Logger, ready func()) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	starts := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keep(ctx, exe, i, n, args, grace, log, starts)
		}()
	}
	for range n {
		select {
		case err := <-starts:
			if err != nil {
				cancel()
				wg.Wait()
				return err
			}
		case <-ctx.Done():
		}
	}
	if ctx.Err() == nil {
		ready()
	}
	wg.Wait()
	return nil
}

// keep runs worker i until ctx ends. Its first start is reported on starts.
func keep(ctx context.Context, exe string, i, n int, args []string, grace time.Duration, log *slog.Logger, starts chan<- error) {
	var once sync.Once
	var everReady atomic.Bool
	onReady := func() {
		everReady.Store(true)
		once.Do(func() { starts <- nil })
	}
	pause := 100 * time.Millisecond
	for {
		began := time.Now()
		err := runWorker(ctx, exe, i, n, args, grace, onReady)
		if ctx.Err() != nil {
			once.Do(func() { starts <- nil })
			return
		}
		if !everReady.Load() { // died before it served: the cause is the user's to fix
			once.Do(func() { starts <- fmt.Errorf("worker %d: %w", i, err) })
			return
		}
		if time.Since(began) > time.Minute {
			pause = 100 * time.Millisecond
		}
		log.Warn("worker exited; restarting", "worker", i, "err", err, "after", pause)
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return
		}
		pause = min(2*pause, 5*time.Second)
	}
}

func runWorker(ctx context.Context, exe string, i, n int, args []string, grace time.Duration, onReady func()) error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), WorkerEnv+"="+strconv.Itoa(i), WorkersEnv+"="+strconv.Itoa(n))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return err
	}
	pw.Close()
	go func() {
		line, err := bufio.NewReader(pr).ReadString('\n')
		pr.Close()
		if err == nil && line == "ready\n" {
			onReady()
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err == nil {
			err = errors.New("exited")
		}
		return err
	case <-ctx.Done():
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			return err
		case <-time.After(grace):
			cmd.Process.Kill()
			return <-exited
		}
	}
}
