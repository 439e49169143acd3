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

// mapping is one anonymous writable mapping of /proc/self/smaps.
type mapping struct {
	size, rss int64
}

// anonMappings reads this process's private writable anonymous mappings
// from /proc/self/smaps, by start address.
func anonMappings() (map[uint64]mapping, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[uint64]mapping{}
	s := bufio.NewScanner(f)
	var cur uint64
	var inAnon bool
	for s.Scan() {
		line := s.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			// "start-end perms offset dev inode [path]"
			lo, hi, _ := strings.Cut(fields[0], "-")
			a, err1 := strconv.ParseUint(lo, 16, 64)
			b, err2 := strconv.ParseUint(hi, 16, 64)
			inAnon = err1 == nil && err2 == nil && fields[1] == "rw-p" && len(fields) == 5
			if inAnon {
				cur = a
				out[a] = mapping{size: int64(b - a)}
			}
			continue
		}
		if inAnon && len(fields) >= 2 && fields[0] == "Rss:" {
			m := out[cur]
			m.rss = kb([]byte(strings.Join(fields[1:], " ")))
			out[cur] = m
		}
	}
	return out, s.Err()
}

// stackMappings finds the stacks of n threads started between two
// readings of anonMappings: among the mappings that are new, the size
// that at least half of n share (each thread's stack is one mapping of
// the same size). It returns that size and the resident memory of those
// mappings on average, or 0, 0 when no size is shared that widely (the
// threads' stacks were not mapped one by one).
func stackMappings(before, after map[uint64]mapping, n int) (size, rssEach int64) {
	count := map[int64]int{}
	rss := map[int64]int64{}
	for start, m := range after {
		if _, old := before[start]; old {
			continue
		}
		count[m.size]++
		rss[m.size] += m.rss
	}
	best := int64(0)
	for sz, c := range count {
		if c > count[best] || (c == count[best] && sz > best) {
			best = sz
		}
	}
	if best == 0 || count[best] < (n+1)/2 {
		return 0, 0
	}
	return best, rss[best] / int64(count[best])
}

// privateShared reads process pid's resident memory from smaps_rollup as
// its private part (pages no other process maps) and its shared part.
func privateShared(pid int) (private, shared int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		switch k {
		case "Private_Clean", "Private_Dirty":
			private += kb([]byte(v))
		case "Shared_Clean", "Shared_Dirty":
			shared += kb([]byte(v))
		}
	}
	return private, shared, s.Err()
}
