// Package pgtest starts throw-away PostgreSQL clusters for tests: a
// primary and a streaming replica made with the installed server binaries
// (initdb, pg_ctl, pg_basebackup), on free loopback ports in temp dirs,
// torn down in Cleanup.
//
// The servers run as the invoking user, or as the "postgres" OS user when
// the tests run as root (as CI does): PostgreSQL refuses to run as root.
// Missing binaries fail the test: CI must never skip PostgreSQL.
package pgtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options shape a cluster.
type Options struct {
	// ApplyDelay is the replica's recovery_min_apply_delay: how long it
	// waits before applying a commit, which makes its lag deterministic.
	ApplyDelay time.Duration
}

// Cluster is a running primary with one streaming replica.
type Cluster struct {
	tb      testing.TB
	bin     string
	dir     string
	uid     int // -1: run as the current user
	gid     int
	Primary Server
	Replica Server

	mu sync.Mutex
}

// Server is one PostgreSQL server of a cluster.
type Server struct {
	Port int
	Data string // data directory
}

// DSN is a URL for the server's "postgres" database.
func (s Server) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
}

// BinDir finds the PostgreSQL server binaries: $STRATA_PG_BIN, else the
// newest /usr/lib/postgresql/*/bin holding initdb.
func BinDir() (string, error) {
	if v := os.Getenv("STRATA_PG_BIN"); v != "" {
		return v, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("no PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup): install postgresql or set STRATA_PG_BIN")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start starts a primary and a replica, stopped and removed in Cleanup.
func Start(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	bin, err := BinDir()
	if err != nil {
		tb.Fatal(err)
	}
	c := &Cluster{tb: tb, bin: bin, uid: -1, gid: -1}
	dir, err := os.MkdirTemp("", "strata-pg-")
	if err != nil {
		tb.Fatal(err)
	}
	c.dir = dir
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			tb.Fatalf("running as root needs a postgres OS user to run PostgreSQL: %v", err)
		}
		c.uid, _ = strconv.Atoi(u.Uid)
		c.gid, _ = strconv.Atoi(u.Gid)
		if err := os.Chown(dir, c.uid, c.gid); err != nil {
			tb.Fatal(err)
		}
	}
	c.Primary = Server{Port: freePort(tb), Data: filepath.Join(dir, "primary")}
	c.Replica = Server{Port: freePort(tb), Data: filepath.Join(dir, "replica")}

	c.run("initdb", "-D", c.Primary.Data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions")
	c.appendConf(c.Primary, "wal_level = replica\nmax_wal_senders = 4\nfsync = off\nfull_page_writes = off\n")
	c.startServer(c.Primary)
	tb.Cleanup(func() { c.stopServer(c.Primary, "immediate") })

	c.run("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(c.Primary.Port), "-U", "postgres",
		"-D", c.Replica.Data, "-R", "-X", "stream", "--no-sync")
	conf := "hot_standby = on\nfsync = off\n"
	if opts.ApplyDelay > 0 {
		conf += fmt.Sprintf("recovery_min_apply_delay = '%dms'\n", opts.ApplyDelay.Milliseconds())
	}
	c.appendConf(c.Replica, conf)
	c.startServer(c.Replica)
	tb.Cleanup(func() { c.stopServer(c.Replica, "immediate") })
	return c
}

// StopReplica stops the replica now (fast shutdown: sessions are cut).
func (c *Cluster) StopReplica() { c.stopServer(c.Replica, "fast") }

// StartReplica starts the replica again after StopReplica.
func (c *Cluster) StartReplica() { c.startServer(c.Replica) }

func (c *Cluster) appendConf(s Server, extra string) {
	c.tb.Helper()
	conf := fmt.Sprintf("listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\nmax_connections = 200\n%s",
		s.Port, c.dir, extra)
	f, err := os.OpenFile(filepath.Join(s.Data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		c.tb.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\n# pgtest\n" + conf); err != nil {
		c.tb.Fatal(err)
	}
}

func (c *Cluster) startServer(s Server) {
	c.tb.Helper()
	c.run("pg_ctl", "-D", s.Data, "-l", s.Data+".log", "-w", "-t", "60", "start")
}

func (c *Cluster) stopServer(s Server, mode string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := os.Stat(filepath.Join(s.Data, "postmaster.pid")); err != nil {
		return // not running
	}
	if out, err := c.command("pg_ctl", "-D", s.Data, "-m", mode, "-w", "stop").CombinedOutput(); err != nil {
		c.tb.Errorf("pg_ctl stop %s: %v\n%s", s.Data, err, out)
	}
}

// run runs a server binary as the server's OS user and fails on error.
func (c *Cluster) run(name string, args ...string) {
	c.tb.Helper()
	var out bytes.Buffer
	cmd := c.command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		logs := ""
		for _, s := range []Server{c.Primary, c.Replica} {
			if b, err := os.ReadFile(s.Data + ".log"); err == nil {
				logs += "\n--- " + s.Data + ".log\n" + string(b)
			}
		}
		c.tb.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), logs)
	}
}

func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.uid >= 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC")
	return cmd
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
