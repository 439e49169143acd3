package backend

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// The reaper: private servers and their folders must not outlive the
// process that made them, whatever kills it. A kill -9 runs no deferred
// code, and a PostgreSQL started by pg_ctl is nobody's child (pg_ctl
// detaches it), so no parent-death signal reaches it. The reaper is a
// second process, this binary again, that holds a pipe from its parent:
// the parent tells it what it owns (processes and folders) and what it has
// cleaned up itself; when the pipe closes, whether the parent ended well
// or was killed, the reaper kills whatever is still listed, with all its
// descendants (a frozen PostgreSQL's backends too: SIGKILL reaches stopped
// processes), removes the folders, and exits.
//
// A binary offers the reaper by calling ReaperMain first thing in main.
// Without it (a test binary) processes and folders are only cleaned up by
// the code that made them, and a folder left behind by a killed run is
// removed by SweepStale at the next run's start.

const reaperEnv = "STAMPEDE_REAPER"

var (
	reaperOK   bool // ReaperMain was called: this binary can be a reaper
	reaperOnce sync.Once
	reaperMu   sync.Mutex
	reaperPipe io.WriteCloser // nil: no reaper
	reaperPID  int
)

// ReaperMain turns this process into a reaper when it was started as one,
// and returns true when it has done that work (main should return). Called
// in any other process, it records that this binary can start a reaper.
func ReaperMain() bool {
	if os.Getenv(reaperEnv) != "1" {
		reaperOK = true
		return false
	}
	reap(os.Stdin)
	return true
}

// IsReaper reports whether pid is a reaper (a helper that lives as long
// as its parent, not something the parent left behind).
func IsReaper(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return false
	}
	for _, kv := range strings.Split(string(b), "\x00") {
		if kv == reaperEnv+"=1" {
			return true
		}
	}
	return false
}

// owned is what the parent listed and has not cleaned up itself.
type owned struct {
	procs  map[string]bool // "pid starttime"
	groups map[string]bool // process group ids
	dirs   map[string]bool
}

// reap reads the parent's list until the pipe closes, then cleans up
// what is left on it.
func reap(in io.Reader) {
	o := owned{procs: map[string]bool{}, groups: map[string]bool{}, dirs: map[string]bool{}}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		verb, arg, _ := strings.Cut(sc.Text(), " ")
		switch verb {
		case "proc":
			o.procs[arg] = true
		case "unproc":
			delete(o.procs, arg)
		case "group":
			o.groups[arg] = true
		case "ungroup":
			delete(o.groups, arg)
		case "dir":
			o.dirs[arg] = true
		case "undir":
			delete(o.dirs, arg)
		}
	}
	for p := range o.procs {
		pid, start, _ := strings.Cut(p, " ")
		if n, err := strconv.Atoi(pid); err == nil && n > 1 && start != "" && startTime(n) == start {
			killTree(n)
		}
	}
	for g := range o.groups {
		if n, err := strconv.Atoi(g); err == nil && n > 1 {
			syscall.Kill(-n, syscall.SIGKILL)
			// Wait, briefly, for the group to be gone, so that none of it
			// writes into a folder being removed.
			for i := 0; i < 200 && syscall.Kill(-n, 0) == nil; i++ {
				syscall.Nanosleep(&syscall.Timespec{Nsec: 5e6}, nil)
			}
		}
	}
	for d := range o.dirs {
		removeDir(d)
	}
}

// reaper returns the pipe to this process's reaper, starting it on first
// use; nil when the binary cannot be one or it could not start.
func reaper() io.WriteCloser {
	reaperOnce.Do(func() {
		if !reaperOK {
			return
		}
		exe, err := os.Executable()
		if err != nil {
			return
		}
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), reaperEnv+"=1")
		// A group of its own: a Ctrl-C to the parent's group must not
		// end the reaper before the parent has cleaned up.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		w, err := cmd.StdinPipe()
		if err != nil {
			return
		}
		if err := cmd.Start(); err != nil {
			return
		}
		go cmd.Wait() // it exits when this process's end of the pipe closes
		reaperPipe, reaperPID = w, cmd.Process.Pid
	})
	return reaperPipe
}

func tell(line string) {
	reaperMu.Lock()
	defer reaperMu.Unlock()
	if w := reaper(); w != nil {
		io.WriteString(w, line+"\n")
	}
}

// Own lists process pid (with every process it starts) to be killed if
// this process dies before Disown.
func Own(pid int) { tell("proc " + strconv.Itoa(pid) + " " + startTime(pid)) }

// Disown takes pid off the list: it was stopped by the code that owns it.
func Disown(pid int) { tell("unproc " + strconv.Itoa(pid) + " " + startTime(pid)) }

// OwnGroup lists process group pgid (a leader started with Setpgid, and
// every process in its group, the leader gone or not) to be killed if this
// process dies before DisownGroup.
func OwnGroup(pgid int) { tell("group " + strconv.Itoa(pgid)) }

// DisownGroup takes group pgid off the list.
func DisownGroup(pgid int) { tell("ungroup " + strconv.Itoa(pgid)) }

// TempDir makes a folder in the system's temporary directory, named from
// prefix, that the reaper removes if this process dies before RemoveDir.
// A file in it names its owner, for SweepStale.
func TempDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	me := os.Getpid()
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(me)+" "+startTime(me)+"\n"), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	tell("dir " + dir)
	return dir, nil
}

// RemoveDir removes a folder made by TempDir, with a PostgreSQL still
// running in it, and takes it off the reaper's list.
func RemoveDir(dir string) error {
	err := removeDir(dir)
	tell("undir " + dir)
	return err
}

// ownerFile names, in a folder made by TempDir, the process that made it.
const ownerFile = ".stampede-owner"

// SweepStale removes the folders TempDir made for processes that are gone
// (a run killed with its reaper, or from a binary without one), with any
// PostgreSQL still running in them. It returns how many it removed.
func SweepStale() int {
	owners, _ := filepath.Glob(filepath.Join(os.TempDir(), "stampede-*", ownerFile))
	n := 0
	for _, f := range owners {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, start, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
		p, err := strconv.Atoi(pid)
		if err != nil || (start != "" && startTime(p) == start) {
			continue // its owner lives
		}
		if removeDir(filepath.Dir(f)) == nil {
			n++
		}
	}
	return n
}

// removeDir kills a PostgreSQL running in dir (as StartPostgres lays it
// out), then removes dir.
func removeDir(dir string) error {
	if b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])); err == nil && pid > 1 {
			// Only the server of this folder: a postmaster works in its
			// data directory, and a pid from an old file may be another's.
			cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
			if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && strings.Contains(filepath.Base(exe), "postgres") &&
				filepath.Clean(cwd) == filepath.Join(dir, "data") {
				killTree(pid)
			}
		}
	}
	return os.RemoveAll(dir)
}

// killTree kills pid and its descendants with SIGKILL, the descendants
// listed first, before their parent's death re-parents them.
func killTree(pid int) {
	var all []int
	var walk func(int)
	walk = func(p int) {
		all = append(all, p)
		for _, c := range Children(p) {
			walk(c)
		}
	}
	walk(pid)
	for _, p := range all {
		syscall.Kill(p, syscall.SIGKILL)
	}
	for _, p := range all {
		waitGone(p)
	}
}

// waitGone waits, briefly, until pid has exited (or is a zombie).
func waitGone(pid int) {
	for i := 0; i < 200 && !Gone(pid); i++ {
		syscall.Nanosleep(&syscall.Timespec{Nsec: 5e6}, nil)
	}
}

// startTime is pid's start time in clock ticks since boot (field 22 of
// /proc/PID/stat), which tells a process from a later one given the same
// pid; "" when there is no such process.
func startTime(pid int) string {
	if f := Stat(pid); len(f) >= 20 {
		return f[19]
	}
	return ""
}
