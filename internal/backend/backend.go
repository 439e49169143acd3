// Package backend starts private Redis and PostgreSQL servers from the
// binaries installed on the machine, for runs that must crash, restart or
// freeze them: stampede verify's faults and the fault tests. They listen on
// loopback only, on ports of their own, and are never the machine's shared
// servers.
package backend

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// startWait bounds how long a server may take to answer after it starts.
const startWait = 20 * time.Second

// FreePort returns a loopback port nothing listens on now.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Redis is a private redis-server that keeps nothing on disk, so a restart
// comes back empty, as a crashed Redis without persistence does.
type Redis struct {
	URL  string
	port int
	cmd  *exec.Cmd
}

// StartRedis starts a redis-server on a free loopback port and waits until
// it answers.
func StartRedis(ctx context.Context) (*Redis, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, errors.New("redis-server is not installed (Debian: apt-get install redis-server)")
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	r := &Redis{URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port), port: port}
	return r, r.Start(ctx)
}

// Start starts the server again after Kill.
func (r *Redis) Start(ctx context.Context) error {
	if r.cmd != nil {
		return nil
	}
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	Own(cmd.Process.Pid)
	r.cmd = cmd
	addr := "127.0.0.1:" + strconv.Itoa(r.port)
	for deadline := time.Now().Add(startWait); time.Now().Before(deadline); {
		if pingRedis(addr) == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			r.Kill()
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	r.Kill()
	return fmt.Errorf("private redis-server on port %d did not answer within %v", r.port, startWait)
}

// pingRedis sends PING in the protocol's inline form.
func pingRedis(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("redis answered %q", strings.TrimSpace(line))
	}
	return nil
}

// Kill stops the server with SIGKILL, as a crash would; what it held is gone.
func (r *Redis) Kill() {
	if r.cmd == nil {
		return
	}
	Disown(r.cmd.Process.Pid)
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}

// Postgres is a private PostgreSQL cluster in a directory of its own,
// created with initdb and run with pg_ctl.
type Postgres struct {
	DSN  string
	dir  string
	bin  string // directory of initdb, pg_ctl and postgres
	port int
	cred *syscall.Credential // the postgres user's, when this process is root
}

// StartPostgres creates a cluster in a new temporary directory and starts
// it on a free loopback port; Close removes it. As root it runs the server
// as the user postgres, since PostgreSQL refuses to run as root.
func StartPostgres(ctx context.Context) (_ *Postgres, err error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	dir, err := TempDir("stampede-pg-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			RemoveDir(dir)
		}
	}()
	p := &Postgres{dir: dir, bin: bin, port: port,
		DSN: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, errors.New("running as root, and there is no user postgres to run PostgreSQL as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	if out, err := p.run(ctx, "initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, lastLine(out))
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=100 -c shared_buffers=32MB", port, dir)
	if out, err := p.run(ctx, "pg_ctl", "-D", filepath.Join(dir, "data"), "-l", filepath.Join(dir, "log"), "-o", opts, "-w", "-t", "30", "start"); err != nil {
		return nil, fmt.Errorf("pg_ctl start: %v: %s", err, lastLine(out))
	}
	return p, nil
}

func (p *Postgres) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(p.bin, name), args...)
	cmd.Dir = p.dir
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	return cmd.CombinedOutput()
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// postgresBin finds the directory holding initdb, pg_ctl and postgres:
// Debian keeps them under /usr/lib/postgresql/VERSION/bin, off the PATH.
func postgresBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(dirs))) // the newest first
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		dirs = append([]string{filepath.Dir(p)}, dirs...)
	}
	for _, d := range dirs {
		ok := true
		for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
			if _, err := os.Stat(filepath.Join(d, name)); err != nil {
				ok = false
			}
		}
		if ok {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL's initdb, pg_ctl and postgres were not found (Debian: apt-get install postgresql)")
}

// pids lists the postmaster and every process it started.
func (p *Postgres) pids() ([]int, error) {
	b, err := os.ReadFile(filepath.Join(p.dir, "data", "postmaster.pid"))
	if err != nil {
		return nil, fmt.Errorf("the private PostgreSQL is not running: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return nil, fmt.Errorf("postmaster.pid: %w", err)
	}
	return append([]int{pid}, Children(pid)...), nil
}

// Pause freezes the server, its postmaster and every backend, with SIGSTOP:
// connections stay open and nothing answers, as on a stalled disk or a
// paused virtual machine.
func (p *Postgres) Pause() error { return p.signal(syscall.SIGSTOP) }

// Resume lets a paused server run again.
func (p *Postgres) Resume() error { return p.signal(syscall.SIGCONT) }

func (p *Postgres) signal(sig syscall.Signal) error {
	pids, err := p.pids()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		syscall.Kill(pid, sig)
	}
	return nil
}

// Close stops the server at once and removes its directory.
func (p *Postgres) Close() error {
	p.Resume()
	_, err := p.run(context.Background(), "pg_ctl", "-D", filepath.Join(p.dir, "data"), "-m", "immediate", "-w", "stop")
	RemoveDir(p.dir) // kills the server if pg_ctl could not stop it
	return err
}

// Children lists the processes, running or zombie, whose parent is pid,
// from /proc.
func Children(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	parent := strconv.Itoa(pid)
	var out []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue // not a process
		}
		if f := Stat(n); len(f) > 1 && f[1] == parent {
			out = append(out, n)
		}
	}
	return out
}

// Stat returns the fields of /proc/PID/stat after the command's name,
// from the state on (f[0] the state, f[1] the parent, f[19] the start
// time), or nil when there is no such process. The name may hold spaces
// and parentheses, so it is cut at the last ')'.
func Stat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return nil
	}
	return strings.Fields(string(b[i+2:]))
}

// Gone reports whether pid has exited: no such process, or a zombie.
func Gone(pid int) bool {
	f := Stat(pid)
	return len(f) == 0 || f[0] == "Z"
}
