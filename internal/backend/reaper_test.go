package backend

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if ReaperMain() {
		return
	}
	os.Exit(m.Run())
}

// When the pipe to the reaper closes, as it does when this process dies,
// the reaper kills what is still listed (a process and a process group,
// stopped ones included) and removes the listed folder, and leaves what
// was taken off the list.
func TestReaperCleansUpWhenThePipeCloses(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	// A reaper of this test's own: the process's one may have served an
	// earlier run of the test, and its pipe is closed.
	reaperMu.Lock()
	reaperOnce, reaperPipe = sync.Once{}, nil
	reaperMu.Unlock()
	type proc struct {
		pid  int
		exit chan string
	}
	start := func(group bool) proc {
		cmd := exec.Command("sleep", "60")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: group}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := proc{cmd.Process.Pid, make(chan string, 1)}
		go func() {
			err := cmd.Wait()
			p.exit <- fmt.Sprint(err)
		}()
		t.Cleanup(func() { syscall.Kill(p.pid, syscall.SIGKILL) })
		return p
	}
	listed, grouped, unlisted := start(false), start(true), start(false)
	syscall.Kill(listed.pid, syscall.SIGSTOP) // as a frozen PostgreSQL's backends are
	Own(listed.pid)
	OwnGroup(grouped.pid)
	Own(unlisted.pid)
	Disown(unlisted.pid)
	dir, err := TempDir("stampede-reaper-test-")
	if err != nil {
		t.Fatal(err)
	}
	kept, err := TempDir("stampede-reaper-test-")
	if err != nil {
		t.Fatal(err)
	}
	tell("undir " + kept) // taken off the list, not removed
	if reaperPipe == nil {
		t.Fatal("no reaper started")
	}
	// Nothing is killed while the pipe is open.
	time.Sleep(50 * time.Millisecond)
	for _, p := range []proc{listed, grouped, unlisted} {
		select {
		case got := <-p.exit:
			t.Fatalf("process %d ended before the pipe closed: %s", p.pid, got)
		default:
		}
	}
	reaperPipe.Close()
	waitExit := func(p proc) string {
		select {
		case got := <-p.exit:
			return got
		case <-time.After(10 * time.Second):
			return "still running"
		}
	}
	if got := waitExit(listed); got != "signal: killed" {
		t.Errorf("the listed process: %s, want killed", got)
	}
	if got := waitExit(grouped); got != "signal: killed" {
		t.Errorf("the listed group: %s, want killed", got)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err = os.Stat(dir); os.IsNotExist(err) {
			break
		}
	}
	if !os.IsNotExist(err) {
		t.Errorf("the listed folder: %v, want it removed", err)
	}
	select {
	case got := <-unlisted.exit:
		t.Errorf("the process taken off the list ended: %s, want it running", got)
	default:
	}
	if _, err := os.Stat(kept); err != nil {
		t.Errorf("the folder taken off the list: %v", err)
	}
}

// SweepStale removes the folders of owners that are gone and leaves those
// of owners that live.
func TestSweepStale(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	mine, err := os.MkdirTemp("", "stampede-x-")
	if err != nil {
		t.Fatal(err)
	}
	me := os.Getpid()
	os.WriteFile(filepath.Join(mine, ownerFile), []byte(strconv.Itoa(me)+" "+startTime(me)+"\n"), 0o644)
	gone, _ := os.MkdirTemp("", "stampede-x-")
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(gone, ownerFile), []byte(strconv.Itoa(dead.Process.Pid)+" 1\n"), 0o644)
	other, _ := os.MkdirTemp("", "stampede-x-") // no owner file: not ours to judge
	if n := SweepStale(); n != 1 {
		t.Errorf("SweepStale removed %d folders, want 1", n)
	}
	for _, c := range []struct {
		dir  string
		want bool
	}{{mine, true}, {gone, false}, {other, true}} {
		if _, err := os.Stat(c.dir); (err == nil) != c.want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(c.dir), err == nil, c.want)
		}
	}
}

// A reaper is told from other children by its environment.
func TestIsReaper(t *testing.T) {
	reaperMu.Lock()
	reaperOnce, reaperPipe = sync.Once{}, nil
	reaperMu.Unlock()
	tell("noop")
	if reaperPipe == nil {
		t.Fatal("no reaper started")
	}
	other := exec.Command("sleep", "5")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	if !IsReaper(reaperPID) || IsReaper(other.Process.Pid) || IsReaper(os.Getpid()) {
		t.Errorf("IsReaper: the reaper %v, another child %v, this process %v; want true, false, false",
			IsReaper(reaperPID), IsReaper(other.Process.Pid), IsReaper(os.Getpid()))
	}
	reaperPipe.Close()
}
