package redis

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestGoneHere: a writer on this machine is known dead the moment its
// process is (a zombie counts as dead); a live one, this process, one of
// another boot, or a name that says nothing, is not.
func TestGoneHere(t *testing.T) {
	if bootID == "" {
		t.Fatal("no boot id: /proc/sys/kernel/random/boot_id unreadable")
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	name := consumerName("some-host", cmd.Process.Pid, "abcd1234")
	if goneHere(name) {
		t.Errorf("%s: a live process taken for gone", name)
	}
	if goneHere(consumerName("h", os.Getpid(), "t")) {
		t.Error("this process taken for gone")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	deadline := time.Now().Add(5 * time.Second)
	for !goneHere(name) && time.Now().Before(deadline) { // a zombie until Wait, and gone as one
		time.Sleep(10 * time.Millisecond)
	}
	if !goneHere(name) {
		t.Errorf("%s: killed, not reaped, yet not taken for gone", name)
	}
	cmd.Wait()
	if !goneHere(name) {
		t.Errorf("%s: reaped, yet not taken for gone", name)
	}
	for _, other := range []string{
		"some-host-ffffffff-" + strconv.Itoa(cmd.Process.Pid) + "-abcd1234", // another machine's (boot's) writer
		"host-12345-abcd1234", // a name without a boot id
		"garbage",
	} {
		if goneHere(other) {
			t.Errorf("%q taken for gone", other)
		}
	}
}
