package costs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// memInfo holds the /proc figures the experiment reads, in bytes.
type memInfo struct {
	RSS, Virt, PTE, Threads int64
}

// readStatus reads VmRSS, VmSize, VmPTE and Threads of pid ("self" for
// this process) from /proc/PID/status.
func readStatus(pid string) (memInfo, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return memInfo{}, err
	}
	var m memInfo
	for line := range bytes.Lines(b) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch string(k) {
		case "VmRSS":
			m.RSS = kb(v)
		case "VmSize":
			m.Virt = kb(v)
		case "VmPTE":
			m.PTE = kb(v)
		case "Threads":
			m.Threads, _ = strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
		}
	}
	return m, nil
}

// kb parses "  1234 kB" into bytes.
func kb(v []byte) int64 {
	f := strings.Fields(string(v))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(f[0], 10, 64)
	return n * 1024
}

// readPSS returns the proportional set size of pid from smaps_rollup:
// resident memory with each shared page divided among its sharers.
func readPSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && k == "Pss" {
			return kb([]byte(v)), nil
		}
	}
	return 0, fmt.Errorf("no Pss in /proc/%d/smaps_rollup", pid)
}

// memAvailable returns MemAvailable of /proc/meminfo: what the kernel
// could hand out without swapping.
func memAvailable() (int64, error) { return meminfo("MemAvailable") }

// kernelStack returns the machine-wide KernelStack figure of
// /proc/meminfo: memory the kernel holds for every thread's kernel stack.
func kernelStack() (int64, error) { return meminfo("KernelStack") }

func meminfo(key string) (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && string(k) == key {
			return kb(v), nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/meminfo", key)
}
