package redis

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// A writer's consumer name says where it runs: "HOST-BOOT-PID-TOKEN",
// BOOT naming this kernel and PID namespace (bootID). A writer that sees
// the same processes by the same numbers (this machine, or a network
// namespace on it, but not a container with PID namespace of its own) can
// then tell a dead writer at once, by its process, instead of waiting for
// its heartbeat to lapse: the orders it had read but not committed are
// taken over in about claimIdle, not aliveFor.

// bootID names this kernel and this process's PID namespace: the start
// of the kernel's boot id and the namespace's inode ("b1a2c3d4n4026531836"),
// or "" where either cannot be read. Two writers with the same bootID see
// the same processes by the same numbers; containers on one machine share
// the boot id but not, as a rule, the PID namespace.
var bootID = func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	ns, err := os.Readlink("/proc/self/ns/pid") // "pid:[4026531836]"
	if err != nil {
		return ""
	}
	inode := strings.TrimSuffix(strings.TrimPrefix(ns, "pid:["), "]")
	if _, err := strconv.ParseUint(inode, 10, 64); err != nil {
		return ""
	}
	id := strings.ReplaceAll(string(bytes.TrimSpace(b)), "-", "")
	return id[:min(8, len(id))] + "n" + inode
}()

// consumerName names this process's writer.
func consumerName(host string, pid int, tok string) string {
	return host + "-" + bootID + "-" + strconv.Itoa(pid) + "-" + tok
}

// goneHere reports whether consumer was a writer on this kernel whose
// process has exited. A name it cannot read, or a writer of another
// machine, is not known to be gone: its heartbeat decides.
func goneHere(consumer string) bool {
	if bootID == "" {
		return false
	}
	rest, _, ok := cutLast(consumer, "-") // the token
	if !ok {
		return false
	}
	rest, pidText, ok := cutLast(rest, "-")
	if !ok {
		return false
	}
	_, boot, ok := cutLast(rest, "-")
	if !ok || boot != bootID {
		return false
	}
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return false
	}
	return processGone(pid)
}

// processGone reports whether no live process has pid: none at all, or
// only a zombie waiting for its parent to reap it.
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// "pid (comm) S ...": the state follows the last ')'.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] == 'Z'
	}
	return false
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
