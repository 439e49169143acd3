// Package ipc is the lab's chapter 4 experiment on the doors between
// processes: two children of this binary, each pinned to a CPU, pass
// messages by pipe, Unix socket (stream and datagram), TCP over loopback,
// a slot of shared memory (busy-waiting, or sleeping on a futex) and
// signals. For each it times round trips of 64 bytes (median and p99) and
// a stream of 64 KiB chunks, with both processes on one core and on two,
// and sets the guide's IPC table beside the figures.
package ipc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/stampede-dev/stampede/internal/lab"
)

// Mechanism is one way between processes.
type Mechanism struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Claim string `json:"claim"` // the guide's speed for it
}

// Mechanisms in the order they are measured.
var Mechanisms = []Mechanism{
	{"pipe", "pipe (two, one each way)", "medium"},
	{"unix", "Unix socket, stream", "slower (socket)"},
	{"unixgram", "Unix socket, datagram", "slower (socket)"},
	{"tcp", "TCP over loopback", "slower (socket)"},
	{"mq", "POSIX message queue (two, one each way)", "medium"},
	{"shm-spin", "shared memory, busy-waiting", "fastest"},
	{"shm-futex", "shared memory, futex hand-off", "fastest"},
	{"signal", "signal (SIGUSR1 each way, through Go's signal.Notify)", "– (event notification)"},
}

// Experiment runs the measurements; exe is the binary started as both
// ends.
type Experiment struct{ exe string }

// New returns the experiment.
func New(exe string) *Experiment { return &Experiment{exe: exe} }

var _ lab.Experiment = (*Experiment)(nil)

// Info describes the experiment.
func (*Experiment) Info() lab.Info {
	return lab.Info{
		ID: "ipc", Chapter: 4, Heavy: true,
		Title:   "The doors between processes: pipes, sockets, shared memory, signals",
		Summary: "Two pinned child processes pass 64-byte round trips and a stream of 64 KiB chunks by each mechanism, on one core and on two.",
		Params: []lab.Param{
			{Name: "trips", Label: "Round trips", Kind: lab.Int, Default: 20_000, Min: 100, Max: 1_000_000},
			{Name: "mib", Label: "Stream", Unit: "MiB", Kind: lab.Int, Default: 256, Min: 1, Max: 8192},
			{Name: "limit", Label: "At most, per test", Help: "each round-trip and stream test stops after this long", Unit: "ms",
				Kind: lab.Int, Default: 1000, Min: 100, Max: 10_000},
		},
	}
}

// Row is one mechanism in one placement.
type Row struct {
	Mechanism string  `json:"mechanism"`
	Name      string  `json:"name"`
	Claim     string  `json:"claim"`
	Placement string  `json:"placement"` // "one core" or "two cores"
	Trips     int     `json:"trips"`
	MedianUS  float64 `json:"medianUs"`
	P99US     float64 `json:"p99Us"`
	MiBps     float64 `json:"mibps"` // 0 for signals, which carry no data
	MiB       float64 `json:"mib"`
	Corrupt   int     `json:"corrupt"`
}

// Result is the experiment's result.
type Result struct {
	Rows     []Row    `json:"rows"`
	Verdicts []string `json:"verdicts"`
	// Placements says which CPUs the two ends were pinned to.
	Placements map[string]string `json:"placements"`
}

// Run measures every mechanism in every placement.
func (e *Experiment) Run(ctx context.Context, p lab.Values, emit func(lab.Event)) error {
	if e.exe == "" {
		return fmt.Errorf("the ipc experiment needs this binary to start its children, and it could not be found")
	}
	trips, total, limit := p.Int("trips"), int64(p.Int("mib"))<<20, p.Int("limit")
	type placement struct {
		name           string
		client, server int
	}
	places := []placement{{"one core", 0, 0}}
	if runtime.NumCPU() > 1 {
		places = append(places, placement{"two cores", 0, 1})
	}
	res := Result{Placements: map[string]string{}}
	for _, pl := range places {
		res.Placements[pl.name] = fmt.Sprintf("client on CPU %d, server on CPU %d", pl.client, pl.server)
	}
	n, done := int64(len(places)*len(Mechanisms)), int64(0)
	for _, pl := range places {
		for _, m := range Mechanisms {
			emit(lab.Progress(fmt.Sprintf("%s, %s", m.Name, pl.name), done, n))
			cr, err := e.pair(ctx, m.ID, pl.client, pl.server, trips, total, limit)
			if err != nil {
				return fmt.Errorf("%s, %s: %w", m.Name, pl.name, err)
			}
			done++
			row := Row{Mechanism: m.ID, Name: m.Name, Claim: m.Claim, Placement: pl.name, Trips: len(cr.RTTs), Corrupt: cr.Mismatches}
			if len(cr.RTTs) > 0 {
				slices.Sort(cr.RTTs)
				row.MedianUS = float64(cr.RTTs[len(cr.RTTs)/2]) / 1e3
				row.P99US = float64(cr.RTTs[min(len(cr.RTTs)-1, len(cr.RTTs)*99/100)]) / 1e3
			}
			if cr.StreamNs > 0 {
				row.MiB = float64(cr.Bytes) / (1 << 20)
				row.MiBps = row.MiB / (float64(cr.StreamNs) / 1e9)
			}
			res.Rows = append(res.Rows, row)
			emit(lab.Point(pl.name, float64(len(res.Rows)), row.MedianUS))
		}
	}
	res.Verdicts = verdicts(res.Rows)
	emit(lab.Result(res))
	return nil
}

// pair runs one mechanism between a client and a server child.
func (e *Experiment) pair(ctx context.Context, mech string, clientCPU, serverCPU, trips int, total int64, limit int) (childResult, error) {
	client, server, err := endpoints(mech)
	if err != nil {
		return childResult{}, err
	}
	defer closeAll(client)
	defer closeAll(server)
	ctx, cancel := context.WithTimeout(ctx, 4*time.Duration(limit)*time.Millisecond+10*time.Second)
	defer cancel()
	start := func(role string, cpu int, files []*os.File, env ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer, error) {
		cmd := exec.CommandContext(ctx, e.exe)
		cmd.Env = append(append(os.Environ(), fmt.Sprintf("%s=%s %s %d %d %d %d", childEnv, role, mech, cpu, trips, total, limit), "GOMAXPROCS=1"), env...)
		cmd.ExtraFiles = files
		cmd.WaitDelay = time.Second
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		return cmd, &out, &errb, cmd.Start()
	}
	var srv, cli *exec.Cmd
	var cliOut, cliErr, srvErr *bytes.Buffer
	if mech == "signal" {
		// The server needs the client's pid; the client learns the
		// server's over fd 3.
		if cli, cliOut, cliErr, err = start("client", clientCPU, client); err != nil {
			return childResult{}, err
		}
		srv, _, srvErr, err = start("server", serverCPU, server, childPeer+"="+strconv.Itoa(cli.Process.Pid))
	} else {
		if srv, _, srvErr, err = start("server", serverCPU, server); err == nil {
			cli, cliOut, cliErr, err = start("client", clientCPU, client)
		}
	}
	if err != nil {
		if srv != nil && srv.Process != nil {
			srv.Process.Kill()
			srv.Wait()
		}
		if cli != nil && cli.Process != nil {
			cli.Process.Kill()
			cli.Wait()
		}
		return childResult{}, err
	}
	// The parent's copies would keep a pipe or socket open after a child
	// dies, and a reader would wait for ever.
	closeAll(client)
	closeAll(server)
	cliRunErr := cli.Wait()
	// The server quits on the client's last message (signals: on SIGTERM);
	// if it has not in a second, it is stopped.
	stopped := time.AfterFunc(time.Second, func() { srv.Process.Kill() })
	srv.Wait()
	stopped.Stop()
	if ctx.Err() != nil {
		return childResult{}, ctx.Err()
	}
	if cliRunErr != nil {
		return childResult{}, fmt.Errorf("client: %v %s %s", cliRunErr, bytes.TrimSpace(cliErr.Bytes()), bytes.TrimSpace(srvErr.Bytes()))
	}
	var cr childResult
	if err := json.Unmarshal(cliOut.Bytes(), &cr); err != nil {
		return childResult{}, fmt.Errorf("client said %q: %w", cliOut.String(), err)
	}
	return cr, nil
}

// endpoints makes the two ends of a mechanism, as the files each child
// gets from fd 3 on.
func endpoints(mech string) (client, server []*os.File, err error) {
	fromFD := func(fd int, name string) *os.File { return os.NewFile(uintptr(fd), name) }
	switch mech {
	case "pipe":
		toServer, err := pipe()
		if err != nil {
			return nil, nil, err
		}
		toClient, err := pipe()
		if err != nil {
			closeAll(toServer[:])
			return nil, nil, err
		}
		return []*os.File{toClient[0], toServer[1]}, []*os.File{toServer[0], toClient[1]}, nil
	case "unix", "unixgram":
		typ := unix.SOCK_STREAM
		if mech == "unixgram" {
			typ = unix.SOCK_DGRAM
		}
		fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("socketpair: %w", err)
		}
		for _, fd := range fds {
			// Room for a 64 KiB datagram and its reply.
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4*chunk)
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4*chunk)
		}
		return []*os.File{fromFD(fds[0], "client")}, []*os.File{fromFD(fds[1], "server")}, nil
	case "tcp":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		defer l.Close()
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			return nil, nil, err
		}
		defer c.Close()
		s, err := l.Accept()
		if err != nil {
			return nil, nil, err
		}
		defer s.Close()
		cf, err := c.(*net.TCPConn).File()
		if err != nil {
			return nil, nil, err
		}
		sf, err := s.(*net.TCPConn).File()
		if err != nil {
			cf.Close()
			return nil, nil, err
		}
		for _, f := range []*os.File{cf, sf} {
			unix.SetsockoptInt(int(f.Fd()), unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		}
		return []*os.File{cf}, []*os.File{sf}, nil
	case "shm-spin", "shm-futex":
		fd, err := unix.MemfdCreate("stampede-ipc", unix.MFD_CLOEXEC)
		if err != nil {
			return nil, nil, fmt.Errorf("memfd_create: %w", err)
		}
		if err := unix.Ftruncate(fd, shmSize); err != nil {
			unix.Close(fd)
			return nil, nil, err
		}
		dup, err := unix.Dup(fd)
		if err != nil {
			unix.Close(fd)
			return nil, nil, err
		}
		return []*os.File{fromFD(fd, "shm")}, []*os.File{fromFD(dup, "shm")}, nil
	case "mq":
		toServer, err := mqPair()
		if err != nil {
			return nil, nil, err
		}
		toClient, err := mqPair()
		if err != nil {
			closeAll(toServer[:])
			return nil, nil, err
		}
		return []*os.File{toClient[0], toServer[1]}, []*os.File{toServer[0], toClient[1]}, nil
	case "signal":
		p, err := pipe()
		if err != nil {
			return nil, nil, err
		}
		return []*os.File{p[0]}, []*os.File{p[1]}, nil
	}
	return nil, nil, fmt.Errorf("no mechanism %q", mech)
}

// mqPair opens a new POSIX message queue for reading and for writing and
// unlinks its name at once: the queue lives as long as a descriptor does.
func mqPair() ([2]*os.File, error) {
	name, err := unix.BytePtrFromString(fmt.Sprintf("stampede-ipc-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err != nil {
		return [2]*os.File{}, err
	}
	// struct mq_attr: 10 messages of 8 KiB, the defaults' limits.
	attr := struct {
		flags, maxmsg, msgsize, curmsgs int64
		reserved                        [4]int64
	}{maxmsg: 10, msgsize: mqMsgSize}
	var fds [2]*os.File
	for i, mode := range []int{unix.O_RDONLY, unix.O_WRONLY} {
		fd, _, errno := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(name)), uintptr(mode|unix.O_CREAT|unix.O_CLOEXEC), 0o600, uintptr(unsafe.Pointer(&attr)), 0, 0)
		if errno != 0 {
			closeAll(fds[:])
			return [2]*os.File{}, fmt.Errorf("mq_open: %w", errno)
		}
		fds[i] = os.NewFile(fd, "mq")
	}
	unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(name)), 0, 0)
	return fds, nil
}

func pipe() ([2]*os.File, error) {
	r, w, err := os.Pipe()
	return [2]*os.File{r, w}, err
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// verdicts sets the guide's table beside the two-core figures (one core
// where there is only one).
func verdicts(rows []Row) []string {
	place := "two cores"
	by := map[string]Row{}
	for _, r := range rows {
		if r.Placement == place {
			by[r.Mechanism] = r
		}
	}
	if len(by) == 0 {
		place = "one core"
		for _, r := range rows {
			by[r.Mechanism] = r
		}
	}
	fastestLat, fastestTP := "", ""
	for _, m := range Mechanisms {
		r := by[m.ID]
		if r.Trips > 0 && (fastestLat == "" || r.MedianUS < by[fastestLat].MedianUS) {
			fastestLat = m.ID
		}
		if r.MiBps > 0 && (fastestTP == "" || r.MiBps > by[fastestTP].MiBps) {
			fastestTP = m.ID
		}
	}
	name := func(id string) string {
		for _, m := range Mechanisms {
			if m.ID == id {
				return m.Name
			}
		}
		return id
	}
	pipe, unixs, tcp := by["pipe"], by["unix"], by["tcp"]
	var v []string
	shmFirst := fastestTP == "shm-spin" || fastestTP == "shm-futex"
	v = append(v, fmt.Sprintf("Shared memory \"fastest\": %s for bulk data here (%s: %.0f MiB/s, against %.0f MiB/s by pipe); the quickest round trip was by %s (%.1f µs median). %s",
		map[bool]string{true: "true", false: "not so"}[shmFirst], name(fastestTP), by[fastestTP].MiBps, pipe.MiBps, name(fastestLat), by[fastestLat].MedianUS,
		"Busy-waiting buys its latency with a core that does nothing else; on one core it waits for the other process's time slice."))
	if pipe.MedianUS > 0 && tcp.MedianUS > 0 {
		v = append(v, fmt.Sprintf("Socket \"slower\": a Unix socket's round trip took %.2f× a pipe's, TCP over loopback %.2f×: TCP's extra cost is its protocol stack (no network is crossed); a Unix socket has no protocol stack, and what it costs beyond a pipe is its socket layer.",
			unixs.MedianUS/pipe.MedianUS, tcp.MedianUS/pipe.MedianUS))
	}
	if s := by["signal"]; s.Trips > 0 {
		v = append(v, fmt.Sprintf("Signal: a round trip of two signals took %.1f µs median (p99 %.1f µs) through Go's signal.Notify, which carries no data: a doorbell, not a door (sigqueue(3) can attach one word, which Go's signal.Notify does not pass on).", s.MedianUS, s.P99US))
	}
	if mq := by["mq"]; mq.Trips > 0 && pipe.MedianUS > 0 {
		v = append(v, fmt.Sprintf("Message queue \"medium\", as a pipe: its round trip took %.2f× a pipe's, its stream %.2f× a pipe's rate (in messages of 8 KiB, the most Linux allows an unprivileged process by default).",
			mq.MedianUS/pipe.MedianUS, mq.MiBps/pipe.MiBps))
	}
	v = append(v, "Semaphore: not measured; it is a lock between processes, not a way to pass data.")
	v = append(v, fmt.Sprintf("(These verdicts read the figures measured with the two processes on %s.)", place))
	return v
}

// WriteText prints the table and the verdicts.
func (r Result) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mechanism\tplacement\ttrips\tmedian µs\tp99 µs\tMiB/s\tguide says\t")
	for _, row := range r.Rows {
		tp := "–"
		if row.MiBps > 0 {
			tp = fmt.Sprintf("%.0f", row.MiBps)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f\t%.2f\t%s\t%s\t\n", row.Name, row.Placement, row.Trips, row.MedianUS, row.P99US, tp, row.Claim)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, v := range r.Verdicts {
		fmt.Fprintln(w, v)
	}
	return nil
}
