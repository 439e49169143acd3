package costs

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
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
// not know.
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
	return elfOf(machine, code)
}

// elfOf wraps code for machine in the smallest executable Linux runs: one
// 64-byte file header, one 56-byte program header that maps the file,
// then the code, entered at its first byte.
func elfOf(machine uint16, code []byte) []byte {
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

// holdELF builds a minimal static ELF executable for arch (amd64 only, or
// nil) that writes one byte to its standard output, then reads its
// standard input until it ends, and exits: the least a process can be,
// held alive to be weighed.
func holdELF(arch string) []byte {
	if arch != "amd64" {
		return nil
	}
	code := []byte{
		0xb8, 1, 0, 0, 0, // mov eax, 1 (write)
		0xbf, 1, 0, 0, 0, // mov edi, 1
		0x48, 0x8d, 0x74, 0x24, 0xf8, // lea rsi, [rsp-8]
		0xba, 1, 0, 0, 0, // mov edx, 1
		0x0f, 0x05, // syscall
		// loop, at 22:
		0x31, 0xc0, // xor eax, eax (read)
		0x31, 0xff, // xor edi, edi
		0x48, 0x8d, 0x74, 0x24, 0xf8, // lea rsi, [rsp-8]
		0xba, 1, 0, 0, 0, // mov edx, 1
		0x0f, 0x05, // syscall
		0x48, 0x85, 0xc0, // test rax, rax
		0x7f, 0xeb, // jg loop (a byte: read on)
		0x48, 0x83, 0xf8, 0xfc, // cmp rax, -4 (EINTR)
		0x74, 0xe5, // je loop
		0x31, 0xff, // xor edi, edi
		0xb8, 0x3c, 0, 0, 0, // mov eax, 60 (exit)
		0x0f, 0x05, // syscall
	}
	return elfOf(62, code)
}

// minimalProcess starts n copies of the holding program, waits until each
// is up, and weighs them: the memory each holds alone (private), what
// they share, and the kernel's memory for each (kernel stack and page
// tables). ok is false where there is no such program (not amd64, or a
// temporary directory that refuses to run programs).
func minimalProcess(ctx context.Context, n int) (private, shared, kernel float64, ok bool, err error) {
	elf := holdELF(runtime.GOARCH)
	if elf == nil {
		return 0, 0, 0, false, nil
	}
	dir, err := os.MkdirTemp("", "stampede-hold")
	if err != nil {
		return 0, 0, 0, false, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "hold")
	if err := os.WriteFile(path, elf, 0o755); err != nil {
		return 0, 0, 0, false, err
	}
	kBefore, kerr := kernelStack()
	type held struct {
		cmd *exec.Cmd
		in  io.WriteCloser
	}
	var procs []held
	defer func() {
		for _, p := range procs {
			p.in.Close() // its read ends, and it exits
		}
		for _, p := range procs {
			_ = p.cmd.Wait()
		}
	}()
	for range n {
		if err := ctx.Err(); err != nil {
			return 0, 0, 0, false, err
		}
		cmd := exec.Command(path)
		in, err := cmd.StdinPipe()
		if err != nil {
			return 0, 0, 0, false, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return 0, 0, 0, false, err
		}
		if err := cmd.Start(); err != nil {
			if len(procs) == 0 {
				return 0, 0, 0, false, nil // not runnable here
			}
			return 0, 0, 0, false, err
		}
		procs = append(procs, held{cmd, in})
		var b [1]byte
		if _, err := io.ReadFull(out, b[:]); err != nil {
			return 0, 0, 0, false, fmt.Errorf("the holding program did not start: %w", err)
		}
	}
	var pte int64
	for _, p := range procs {
		pid := p.cmd.Process.Pid
		pr, sh, err := privateShared(pid)
		if err != nil {
			return 0, 0, 0, false, err
		}
		st, err := readStatus(strconv.Itoa(pid))
		if err != nil {
			return 0, 0, 0, false, err
		}
		private, shared, pte = private+float64(pr), shared+float64(sh), pte+st.PTE
	}
	private, shared = private/float64(n), shared/float64(n)
	kernel = float64(pte) / float64(n)
	if kAfter, err := kernelStack(); err == nil && kerr == nil {
		kernel += perItem(kAfter, kBefore, n)
	}
	return private, shared, kernel, true, nil
}
