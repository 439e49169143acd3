package costs

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"
)

// spawnCost times starting and reaping a program that does nothing but
// exit, n times, and returns the median: the kernel's fork, exec and exit,
// which every process pays before its own start-up. The program is a
// static executable of a few hundred bytes written here (amd64 and arm64),
// or /bin/true elsewhere, which adds the dynamic loader's work.
func spawnCost(ctx context.Context, n int) (ns float64, what string, err error) {
	path, what := "/bin/true", "/bin/true (dynamically linked: includes the loader's work)"
	if elf := exitELF(runtime.GOARCH); elf != nil {
		dir, err := os.MkdirTemp("", "stampede-exit")
		if err != nil {
			return 0, "", err
		}
		defer os.RemoveAll(dir)
		p := filepath.Join(dir, "exit")
		if err := os.WriteFile(p, elf, 0o755); err != nil {
			return 0, "", err
		}
		if exec.Command(p).Run() == nil { // a noexec /tmp refuses it
			path, what = p, fmt.Sprintf("a static %d-byte program that only exits", len(elf))
		}
	}
	times := make([]float64, 0, n)
	for range n {
		if err := ctx.Err(); err != nil {
			return 0, "", err
		}
		t0 := time.Now()
		if err := exec.Command(path).Run(); err != nil {
			return 0, "", fmt.Errorf("start %s: %w", path, err)
		}
		times = append(times, float64(time.Since(t0).Nanoseconds()))
	}
	return median(times), what, nil
}

// exitELF builds a minimal static ELF executable for arch whose only
// instructions are exit(0), or returns nil for an architecture it does
// not know: one 64-byte file header, one 56-byte program header that maps
// the file, then the code.
func exitELF(arch string) []byte {
	var machine uint16
	var code []byte
	switch arch {
	case "amd64":
		machine = 62 // EM_X86_64
		code = []byte{
			0x31, 0xff, // xor edi, edi
			0xb8, 0x3c, 0, 0, 0, // mov eax, 60 (exit)
			0x0f, 0x05, // syscall
		}
	case "arm64":
		machine = 183                                             // EM_AARCH64
		code = binary.LittleEndian.AppendUint32(nil, 0xd2800000)  // mov x0, #0
		code = binary.LittleEndian.AppendUint32(code, 0xd2800ba8) // mov x8, #93 (exit)
		code = binary.LittleEndian.AppendUint32(code, 0xd4000001) // svc #0
	default:
		return nil
	}
	const base, ehsize, phsize = 0x400000, 64, 56
	le := binary.LittleEndian
	b := make([]byte, 0, ehsize+phsize+len(code))
	b = append(b, 0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* little-endian */, 1 /* version */, 0 /* System V */)
	b = append(b, make([]byte, 8)...)                       // padding
	b = le.AppendUint16(b, 2)                               // ET_EXEC
	b = le.AppendUint16(b, machine)                         //
	b = le.AppendUint32(b, 1)                               // version
	b = le.AppendUint64(b, base+ehsize+phsize)              // entry
	b = le.AppendUint64(b, ehsize)                          // program headers' offset
	b = le.AppendUint64(b, 0)                               // section headers' offset
	b = le.AppendUint32(b, 0)                               // flags
	b = le.AppendUint16(b, ehsize)                          //
	b = le.AppendUint16(b, phsize)                          //
	b = le.AppendUint16(b, 1)                               // one program header
	b = le.AppendUint16(b, 64)                              // section header size
	b = le.AppendUint16(b, 0)                               // no sections
	b = le.AppendUint16(b, 0)                               //
	b = le.AppendUint32(b, 1)                               // PT_LOAD
	b = le.AppendUint32(b, 5)                               // readable, executable
	b = le.AppendUint64(b, 0)                               // from the file's start
	b = le.AppendUint64(b, base)                            // virtual address
	b = le.AppendUint64(b, base)                            // physical address
	b = le.AppendUint64(b, ehsize+phsize+uint64(len(code))) // size in the file
	b = le.AppendUint64(b, ehsize+phsize+uint64(len(code))) // size in memory
	b = le.AppendUint64(b, 0x1000)                          // alignment
	return append(b, code...)
}
