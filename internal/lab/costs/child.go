package costs

import (
	"os"
	"runtime"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// childEnv selects the child mode of a process this package started;
// cpuEnv pins the child's working thread to one CPU.
const (
	childEnv = "STAMPEDE_LAB_CHILD"
	cpuEnv   = "STAMPEDE_LAB_CPU"
)

// ChildMain turns this process into one of the experiment's children when
// it was started as one, and never returns in that case. Call it first in
// main (and in TestMain of tests that run the experiment); it returns
// false at once in any other process.
//
// A "hold" child writes one byte when it is up and then waits for its
// stdin to close. An "echo" child writes back every byte it reads, which
// is one half of the process ping-pong.
func ChildMain() bool {
	mode := os.Getenv(childEnv)
	if mode == "" {
		return false
	}
	runtime.LockOSThread()
	if cpu, err := strconv.Atoi(os.Getenv(cpuEnv)); err == nil {
		var set unix.CPUSet
		set.Set(cpu)
		_ = unix.SchedSetaffinity(0, &set)
	}
	_ = unix.SetNonblock(0, false)
	_ = unix.SetNonblock(1, false)
	var b [1]byte
	switch mode {
	case "hold":
		_, _ = unix.Write(1, []byte{1})
		for {
			if n, err := unix.Read(0, b[:]); n <= 0 && err != unix.EINTR {
				os.Exit(0)
			}
		}
	case "echo":
		// Raw system calls: the runtime does not see this thread enter
		// them, so with GOMAXPROCS 1 its monitor does not take the P back
		// and hand it off while the read waits, a switch that is the
		// runtime's, not the kernel's (it added about half a switch per
		// round trip). Nothing else runs in this process to need the P.
		p := unsafe.Pointer(&b[0])
		for {
			n, _, errno := unix.RawSyscall(unix.SYS_READ, 0, uintptr(p), 1)
			if errno == unix.EINTR {
				continue
			}
			if errno != 0 || n == 0 {
				os.Exit(0)
			}
			for {
				if _, _, errno := unix.RawSyscall(unix.SYS_WRITE, 1, uintptr(p), 1); errno != unix.EINTR {
					break
				}
			}
		}
	}
	os.Exit(3)
	return true
}
