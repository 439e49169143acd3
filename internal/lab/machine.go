package lab

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Machine says what a figure was measured on.
type Machine struct {
	CPU         string `json:"cpu"`
	Cores       int    `json:"cores"`
	OS          string `json:"os"`
	Kernel      string `json:"kernel"`
	Go          string `json:"go"`
	GOMAXPROCS  int    `json:"gomaxprocs"`
	Virtualised bool   `json:"virtualised"`
	// Hypervisor names the virtual platform when it can be read.
	Hypervisor string `json:"hypervisor,omitempty"`
}

// ReadMachine describes the machine this process runs on. Anything it
// cannot read is left as "unknown", never guessed.
func ReadMachine() Machine {
	m := Machine{
		CPU:        "unknown",
		Cores:      runtime.NumCPU(),
		OS:         runtime.GOOS + "/" + runtime.GOARCH,
		Kernel:     "unknown",
		Go:         runtime.Version(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			k, v, ok := strings.Cut(s.Text(), ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "model name":
				if m.CPU == "unknown" {
					m.CPU = strings.TrimSpace(v)
				}
			case "flags":
				if strings.Contains(" "+v+" ", " hypervisor ") {
					m.Virtualised = true
				}
			}
		}
		f.Close()
	}
	for _, path := range []string{"/sys/hypervisor/type", "/sys/class/dmi/id/product_name", "/sys/class/dmi/id/sys_vendor"} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		name := string(bytes.TrimSpace(b))
		for _, known := range []string{"KVM", "QEMU", "VMware", "VirtualBox", "Xen", "xen", "Hyper-V", "Microsoft", "Google", "Amazon", "Firecracker", "Cloud Hypervisor"} {
			if strings.Contains(name, known) {
				m.Virtualised, m.Hypervisor = true, name
			}
		}
		if m.Hypervisor != "" {
			break
		}
	}
	return m
}
