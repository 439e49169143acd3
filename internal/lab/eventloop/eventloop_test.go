package eventloop

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stampede-dev/stampede/internal/lab/labtest"
	"github.com/stampede-dev/stampede/internal/testenv"
)

// TestMain lets this test binary be the servers, as the stampede binary
// is in the lab.
func TestMain(m *testing.M) { labtest.Main(m, ChildMain) }

// The reactor answers pipelined and keep-alive requests on one thread,
// records its iterations, and Stop closes every descriptor.
func TestReactor(t *testing.T) {
	before := labtest.OpenFDs(t)
	r, err := Listen(10)
	if err != nil {
		t.Fatal(err)
	}
	r.Every("tick", 20*time.Millisecond)
	go r.Serve()
	c, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	// Three requests in one write: three answers, in order.
	if _, err := c.Write([]byte("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := readOK(br); err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
	}
	if err := request(c, br, "/"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // a tick or two
	c.Close()
	r.Stop()
	iters, totals := r.Record()
	if totals.Callbacks != 4 || totals.Accepted != 1 || totals.Timers < 1 || len(iters) == 0 || len(iters) > 10 {
		t.Fatalf("totals %+v, %d iterations kept", totals, len(iters))
	}
	// The listener, the epoll, the eventfd and the connection are closed.
	if after := labtest.OpenFDs(t); after != before {
		t.Errorf("%d descriptors open after Stop, %d before Listen", after, before)
	}
}

func readOK(br *bufio.Reader) error {
	want := string(response)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br, got); err != nil {
		return err
	}
	if string(got) != want {
		return fmt.Errorf("answer %q, want %q", got, want)
	}
	return nil
}

func TestExperiment(t *testing.T) {
	exe := labtest.Executable(t)
	r := labtest.Run[Result](t, New(exe), map[string]any{"conns": 10, "seconds": 1, "idle": 200, "block": 150}, nil)
	if len(r.Runs) != 2 || r.Runs[0].Server != "reactor" || r.Runs[1].Server != "nethttp" {
		t.Fatalf("runs %+v", r.Runs)
	}
	for _, run := range r.Runs {
		if run.Requests == 0 || run.IdleConns != 200 || run.BlockAtMS < 0 || run.Threads < 1 {
			t.Errorf("%s: %+v", run.Server, run)
		}
	}
	// The reactor's one thread slept 150 ms in the blocking callback:
	// every busy connection waited at least that long once.
	if r.Runs[0].MaxMS < 150 {
		t.Errorf("reactor: the longest request took %.1f ms; a 150 ms blocking callback holds up every connection", r.Runs[0].MaxMS)
	}
	if r.Totals.Callbacks < r.Runs[0].Requests || len(r.Iterations) == 0 {
		t.Errorf("reactor record: %+v, %d iterations", r.Totals, len(r.Iterations))
	}
	if n := testenv.ChildProcesses(t, os.Getpid()); n != 0 {
		t.Errorf("%d child processes left behind", n)
	}
}

// Stop ends the run promptly and leaves no child process and no
// descriptor behind.
func TestStopLeavesNothing(t *testing.T) {
	before := labtest.OpenFDs(t)
	labtest.Stops(t, New(labtest.Executable(t)), map[string]any{"conns": 20, "seconds": 10, "idle": 100, "block": 0}, 500*time.Millisecond, 5*time.Second)
	if after := labtest.OpenFDs(t); after != before {
		t.Errorf("%d descriptors open after the run, %d before", after, before)
	}
}
