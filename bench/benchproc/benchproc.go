// Package benchproc runs a real strata binary for the benchmark commands:
// a fresh data dir, a superuser, `strata serve` on a free loopback port,
// and the process's memory read from /proc.
package benchproc

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Superuser credentials created in every benchmark data dir.
const (
	Email    = "bench@strata.test"
	Password = "bench-pass-123"
)

// Proc is a running `strata serve`.
type Proc struct {
	cmd  *exec.Cmd
	Addr string // host:port
	Dir  string // data dir (removed by Stop)
}

// Options shape the server a benchmark starts.
type Options struct {
	Args []string // more `serve` flags
	Env  []string // more environment, KEY=value
}

// Start creates a temp data dir with the superuser and starts
// `bin serve` on a free port.
func Start(bin string, opts Options) (*Proc, error) {
	dir, err := os.MkdirTemp("", "strata-bench-")
	if err != nil {
		return nil, err
	}
	if out, err := exec.Command(bin, "superuser", "upsert", Email, Password, "--dir", dir).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("superuser upsert: %v: %s", err, out)
	}
	addr, err := FreeAddr()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	args := append([]string{"serve", "--http", addr, "--dir", dir, "--log-level", "warn"}, opts.Args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), opts.Env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p := &Proc{cmd: cmd, Addr: addr, Dir: dir}
	for range 100 {
		if res, err := http.Get(p.URL() + "/api/health"); err == nil {
			res.Body.Close()
			return p, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.Stop()
	return nil, fmt.Errorf("%s serve did not answer on %s", bin, addr)
}

// URL is the server's base URL.
func (p *Proc) URL() string { return "http://" + p.Addr }

// Pid is the server's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Stop interrupts the server (killing it after 10 s) and removes its dir.
func (p *Proc) Stop() {
	p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(p.Dir)
}

// RSS is the server's resident set in bytes (0 if unreadable).
func (p *Proc) RSS() int64 { return procStatus(p.Pid(), "VmRSS") }

// PeakRSS is the server's high-water resident set in bytes.
func (p *Proc) PeakRSS() int64 { return procStatus(p.Pid(), "VmHWM") }

// CPU is the server's user plus system CPU time so far, in seconds.
func (p *Proc) CPU() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
	if err != nil {
		return 0
	}
	// The fields after the command name (which may hold spaces) in ")".
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100 // clock ticks (USER_HZ = 100)
}

// SelfCPU is this process's user plus system CPU time so far, in seconds:
// a load generator on the server's cores reports what it took from them.
func SelfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

var statusLine = map[string]*regexp.Regexp{
	"VmRSS": regexp.MustCompile(`VmRSS:\s+(\d+) kB`),
	"VmHWM": regexp.MustCompile(`VmHWM:\s+(\d+) kB`),
}

func procStatus(pid int, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	m := statusLine[key].FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return v * 1024
}

// FreeAddr returns a loopback address with a port free at the time.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
