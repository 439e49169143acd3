package load

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// GeneratorLoad is what the load generator's own threads did while a run
// was measured: the CPU they used, and how much of the time the threads
// it can keep busy (Cap) were running or waiting for a CPU. A generator
// whose threads were busy nearly all the time was the limit of its run,
// whatever the service could have done.
type GeneratorLoad struct {
	// CPUCores is the CPU time the process used over the wall time: 1.0 is
	// one core kept busy.
	CPUCores float64 `json:"cpu_cores"`
	// Busy is the time the process's threads were running or runnable
	// (waiting in a run queue) over the wall time, divided by Cap: near 1,
	// the generator had work every moment it could have had a CPU.
	Busy float64 `json:"busy"`
	// Cap is how many threads the run could keep busy: GOMAXPROCS, or
	// fewer users.
	Cap int `json:"threads"`
}

// Saturated reports whether the generator was busy enough to have been
// the run's limit.
func (g GeneratorLoad) Saturated() bool { return g.Busy >= GeneratorSaturated }

// GeneratorSaturated is the share of its possible threads' time at which
// the generator counts as saturated.
const GeneratorSaturated = 0.9

// threadTimes is the summed time the process's threads ran and waited to
// run, from /proc/self/task/*/schedstat (nanoseconds), and when it was
// read. ok is false where the kernel does not keep these counts.
type threadTimes struct {
	run, wait int64
	at        time.Time
	ok        bool
}

func readThreadTimes() threadTimes {
	t := threadTimes{at: time.Now()}
	files, err := filepath.Glob("/proc/self/task/*/schedstat")
	if err != nil || len(files) == 0 {
		return t
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that has exited
		}
		fields := bytes.Fields(b)
		if len(fields) < 2 {
			return t
		}
		run, err1 := strconv.ParseInt(string(fields[0]), 10, 64)
		wait, err2 := strconv.ParseInt(string(fields[1]), 10, 64)
		if err1 != nil || err2 != nil {
			return t
		}
		t.run += run
		t.wait += wait
	}
	t.ok = true
	return t
}

// until is the generator's load from t to later over wall, for a run that
// could keep cap threads busy. Threads that exited in between take their
// times with them, so a count that went down is read as zero.
func (t threadTimes) until(later threadTimes, wall time.Duration, cap int) GeneratorLoad {
	if !t.ok || !later.ok || wall <= 0 {
		return GeneratorLoad{Cap: cap}
	}
	run := max(later.run-t.run, 0)
	wait := max(later.wait-t.wait, 0)
	w := float64(wall.Nanoseconds())
	return GeneratorLoad{
		CPUCores: float64(run) / w,
		Busy:     min(float64(run+wait)/w/float64(cap), 1),
		Cap:      cap,
	}
}
