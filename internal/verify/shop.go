package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stampede-dev/stampede/internal/backend"
)

// shopProc is the shop under test: `stampede shop` in a process group of
// its own, so that one signal reaches its supervisor and every worker.
type shopProc struct {
	exe  string
	args []string
	base string       // http://127.0.0.1:PORT
	http *http.Client // the verifier's own, apart from the load engine's
	log  *os.File

	mu  sync.Mutex
	cmd *exec.Cmd
	// exited is closed when cmd has exited; its error is in exitErr.
	exited  chan struct{}
	exitErr error
}

// readyWait bounds how long a (re)started shop may take to say it is ready.
const readyWait = 60 * time.Second

func (s *shopProc) start(ctx context.Context) error {
	cmd := exec.Command(s.exe, s.args...)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the shop: %w", err)
	}
	backend.OwnGroup(cmd.Process.Pid)
	exited := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.exitErr = err
		s.mu.Unlock()
		close(exited)
	}()
	deadline := time.Now().Add(readyWait)
	for {
		if status, _ := s.get(ctx, "/readyz", nil); status == http.StatusOK {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("the shop exited before it was ready: %s", s.lastLogLine())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the shop was not ready within %v: %s", readyWait, s.lastLogLine())
		}
	}
}

// lastLogLine is the last thing the shop said, for an error message.
func (s *shopProc) lastLogLine() string {
	b, _ := os.ReadFile(s.log.Name())
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// kill sends SIGKILL to the shop's whole process group and waits for the
// supervisor to be gone.
func (s *shopProc) kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-exited
	backend.DisownGroup(cmd.Process.Pid)
}

// killWorker sends SIGKILL to one worker process, chosen at random; the
// supervisor starts another.
func (s *shopProc) killWorker() error {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		return errors.New("the shop is not running")
	}
	workers := backend.Children(cmd.Process.Pid)
	if len(workers) == 0 {
		return errors.New("the shop has no worker processes")
	}
	return syscall.Kill(workers[rand.N(len(workers))], syscall.SIGKILL)
}

// stop asks the shop to shut down, and kills it if it has not within 10 s.
func (s *shopProc) stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
	}
	s.kill()
}

// newClient is the verifier's HTTP client for one shop: setup, reads and
// the checks after the sale.
func newClient() *http.Client {
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true},
	}
}

// get fetches path from the shop and decodes its JSON answer into v, when
// v is not nil; it returns the status, 0 when nothing answered. A 2xx
// answer that does not decode is an error.
func (s *shopProc) get(ctx context.Context, path string, v any) (int, error) {
	return s.do(ctx, "GET", path, nil, "", v)
}

func (s *shopProc) do(ctx context.Context, method, path string, body []byte, key string, v any) (int, error) {
	status, b, err := s.raw(ctx, method, path, body, key)
	if err != nil {
		return 0, err
	}
	if v != nil {
		// An error's body decodes too: answer types carry the error's code.
		if err := json.Unmarshal(b, v); err != nil && status/100 == 2 {
			return status, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return status, nil
}

// raw sends a request to the shop and returns the status and up to 1 MiB
// of the answer; status 0 when nothing answered.
func (s *shopProc) raw(ctx context.Context, method, path string, body []byte, key string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}
