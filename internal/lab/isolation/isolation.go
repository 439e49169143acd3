// Package isolation is the lab's chapter 4 experiment on process
// isolation. K children of this binary each store their own value in one
// global variable: the same virtual address in every child, a different
// value read back, because each process has its own page tables. One
// child reads through a nil pointer; the kernel's SIGSEGV ends it and the
// others finish untouched. The contrast: one goroutine's unrecovered panic
// ends every goroutine of its process. The exception to isolation: a
// MAP_SHARED mapping, where every child's addition lands in one counter.
package isolation

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stampede-dev/stampede/internal/lab"
)

// Experiment runs the children. New gives it the binary to start them from.
type Experiment struct {
	exe string
}

// New returns the experiment; exe is the stampede binary.
func New(exe string) *Experiment { return &Experiment{exe: exe} }

var _ lab.Experiment = (*Experiment)(nil)

// Info describes the experiment.
func (*Experiment) Info() lab.Info {
	return lab.Info{
		ID: "isolation", Chapter: 4,
		Title:   "Walls: one address, K processes, K values",
		Summary: "Children of this binary store their own value at one global's address; one crashes with SIGSEGV while the others finish; a goroutine's panic ends its whole process.",
		Params: []lab.Param{
			{Name: "children", Label: "Children", Kind: lab.Int, Default: 4, Min: 2, Max: 32},
		},
	}
}

// Child is one child and how it ended.
type Child struct {
	Report
	Exit   string `json:"exit"`   // "exit status 0", "exit status 2", …
	Signal string `json:"signal"` // the fault the child's runtime reported, if any
}

// Panic is the contrast: one process, four counting goroutines, one panics.
type Panic struct {
	// Counts is each goroutine's count at the last line the process
	// printed before it died.
	Counts []int64 `json:"counts"`
	Exit   string  `json:"exit"`
	Reason string  `json:"reason"` // the panic's first line
}

// Result is the experiment's result.
type Result struct {
	Children []Child `json:"children"`
	Crashed  Child   `json:"crashed"`
	// CrashedAt is when the crashing child read through nil (Unix
	// nanoseconds), to set beside the others' counting.
	CrashedAt int64 `json:"crashedAt"`
	Panic     Panic `json:"panic"`
	// SameAddress is true when every child saw its global at one address,
	// and OwnValues when each read back what it wrote.
	SameAddress bool `json:"sameAddress"`
	OwnValues   bool `json:"ownValues"`
}

// Run starts the children, the crashing one among them, then the contrast.
func (e *Experiment) Run(ctx context.Context, p lab.Values, emit func(lab.Event)) error {
	if e.exe == "" {
		return errors.New("the lab cannot find its own binary to start children from")
	}
	k := p.Int("children")
	fd, err := unix.MemfdCreate("stampede-shared", 0)
	if err != nil {
		return fmt.Errorf("memfd_create: %w", err)
	}
	shared := os.NewFile(uintptr(fd), "shared")
	defer shared.Close()
	if err := shared.Truncate(8); err != nil {
		return err
	}
	emit(lab.Progress("starting children", 0, int64(k)+2))
	type running struct {
		cmd            *exec.Cmd
		stdout, stderr *bytes.Buffer
	}
	start := func(mode string) (*running, error) {
		cmd := exec.CommandContext(ctx, e.exe)
		cmd.Env = append(os.Environ(), childEnv+"="+mode)
		cmd.ExtraFiles = []*os.File{shared}
		r := &running{cmd: cmd, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
		cmd.Stdout, cmd.Stderr = r.stdout, r.stderr
		cmd.WaitDelay = time.Second
		return r, cmd.Start()
	}
	var kids []*running
	defer func() {
		for _, r := range kids {
			if r.cmd.ProcessState == nil {
				r.cmd.Process.Kill()
				r.cmd.Wait()
			}
		}
	}()
	for i := range k {
		r, err := start(fmt.Sprintf("value:%d:%d", 1000*(i+1), k))
		if err != nil {
			return err
		}
		kids = append(kids, r)
	}
	crash, err := start("segv")
	if err != nil {
		return err
	}
	kids = append(kids, crash)
	res := &Result{SameAddress: true, OwnValues: true}
	for i, r := range kids {
		werr := r.cmd.Wait()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c := Child{Exit: exitOf(r.cmd, werr), Signal: faultLine(r.stderr.String())}
		if r == crash {
			res.Crashed = c
			res.CrashedAt, _ = strconv.ParseInt(strings.TrimSpace(r.stdout.String()), 10, 64)
			continue
		}
		if err := json.Unmarshal(r.stdout.Bytes(), &c.Report); err != nil {
			return fmt.Errorf("child %d said %q: %w", i, r.stdout.String(), err)
		}
		res.Children = append(res.Children, c)
		res.SameAddress = res.SameAddress && c.Addr == res.Children[0].Addr
		res.OwnValues = res.OwnValues && c.Read == c.Wrote
		emit(lab.Progress("children reporting", int64(i+1), int64(k)+2))
	}
	emit(lab.Progress("one process, four goroutines, one panic", int64(k)+1, int64(k)+2))
	pr, err := start("panic")
	if err != nil {
		return err
	}
	kids = append(kids, pr)
	werr := pr.cmd.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	res.Panic = Panic{Exit: exitOf(pr.cmd, werr), Reason: firstLine(pr.stderr.String())}
	sc := bufio.NewScanner(pr.stdout)
	for sc.Scan() {
		var c [4]int64
		if n, _ := fmt.Sscan(sc.Text(), &c[0], &c[1], &c[2], &c[3]); n == 4 {
			res.Panic.Counts = c[:]
		}
	}
	emit(lab.Result(res))
	return nil
}

func exitOf(cmd *exec.Cmd, err error) string {
	if cmd.ProcessState != nil {
		return cmd.ProcessState.String()
	}
	if err != nil {
		return err.Error()
	}
	return "unknown"
}

// faultLine is the runtime's "[signal SIGSEGV: …]" line, if the child
// printed one.
func faultLine(stderr string) string {
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(line, "[signal ") {
			return line
		}
	}
	return ""
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// WriteText prints the children and the contrast for `stampede bench isolation`.
func (r *Result) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "pid\taddress of the global\twrote\tread back\tshared counter\tprivate\tshared\tPSS\texit")
	for _, c := range r.Children {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%d KiB\t%d KiB\t%d KiB\t%s\n", c.PID, c.Addr, c.Wrote, c.Read, c.Shared, c.PrivateKiB, c.SharedKiB, c.PssKiB, c.Exit)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nthe crashing child: %s; %s\n", r.Crashed.Exit, r.Crashed.Signal)
	fmt.Fprintf(w, "one goroutine's panic: the process ended (%s) with its four goroutines at %v: %s\n", r.Panic.Exit, r.Panic.Counts, r.Panic.Reason)
	if len(r.Children) > 0 {
		fmt.Fprintf(w, "\nmaps, the global: %s\nmaps, the code:   %s\n", r.Children[0].MapLine, r.Children[0].Text)
	}
	return nil
}
