package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// PgBouncerOptions shape a private pgbouncer.
type PgBouncerOptions struct {
	// PoolSize is default_pool_size: server connections per database and
	// user (0: 4). Fewer than the store's pool forces many clients to
	// share each server connection, as in production.
	PoolSize int
	// ConnectQuery, when set, runs on every new server connection (the
	// database's connect_query), e.g. to set search_path.
	ConnectQuery string
	// IgnoreStartupParameters lists startup parameters pgbouncer accepts
	// from clients without passing them on.
	IgnoreStartupParameters []string
}

// PgBouncer is a pgbouncer process in transaction pooling mode in front of
// BaseDSN's server, run by StartPgBouncer and stopped in Cleanup.
type PgBouncer struct {
	Port    int
	Version [3]int // e.g. {1, 18, 0}
	// Ini is the generated pgbouncer.ini, for logs and docs.
	Ini string
}

// pgbouncerDatabase is the name clients connect to; pgbouncer maps it to
// BaseDSN's database.
const pgbouncerDatabase = "strata"

// DSN is a URL of the pgbouncer's database, with no parameter beyond
// sslmode: callers add what their test is about.
func (b *PgBouncer) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", b.Port, pgbouncerDatabase)
}

// PgBouncerBin finds the pgbouncer binary: $STRATA_PGBOUNCER, else PATH,
// else Debian's /usr/sbin/pgbouncer.
func PgBouncerBin() (string, error) {
	if v := os.Getenv("STRATA_PGBOUNCER"); v != "" {
		return v, nil
	}
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
		return "/usr/sbin/pgbouncer", nil
	}
	return "", fmt.Errorf("no pgbouncer binary: install pgbouncer (scripts/ensure-services.sh) or set STRATA_PGBOUNCER")
}

var pgbouncerVersion = regexp.MustCompile(`PgBouncer (\d+)\.(\d+)\.(\d+)`)

// StartPgBouncer starts pgbouncer with pool_mode = transaction on a free
// loopback port, pointing at BaseDSN's server and database. A missing
// binary fails the test: CI must never skip it.
func StartPgBouncer(tb testing.TB, opts PgBouncerOptions) *PgBouncer {
	tb.Helper()
	bin, err := PgBouncerBin()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		tb.Fatalf("pgbouncer --version: %v\n%s", err, out)
	}
	b := &PgBouncer{Port: freePort(tb)}
	m := pgbouncerVersion.FindSubmatch(out)
	if m == nil {
		tb.Fatalf("pgbouncer --version: no version in %q", out)
	}
	for i := range b.Version {
		b.Version[i], _ = strconv.Atoi(string(m[i+1]))
	}
	target, err := pgconn.ParseConfig(BaseDSN())
	if err != nil {
		tb.Fatal(err)
	}

	dir, err := os.MkdirTemp("", "strata-pgbouncer-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })

	db := fmt.Sprintf("host=%s port=%d dbname=%s", target.Host, target.Port, target.Database)
	if opts.ConnectQuery != "" {
		db += " connect_query='" + strings.ReplaceAll(opts.ConnectQuery, "'", "''") + "'"
	}
	pool := opts.PoolSize
	if pool <= 0 {
		pool = 4
	}
	var ini strings.Builder
	fmt.Fprintf(&ini, "[databases]\n%s = %s\n\n[pgbouncer]\n", pgbouncerDatabase, db)
	fmt.Fprintf(&ini, "listen_addr = 127.0.0.1\nlisten_port = %d\nunix_socket_dir =\n", b.Port)
	fmt.Fprintf(&ini, "auth_type = trust\nauth_file = %s\n", filepath.Join(dir, "userlist.txt"))
	fmt.Fprintf(&ini, "pool_mode = transaction\ndefault_pool_size = %d\nmax_client_conn = 200\n", pool)
	if len(opts.IgnoreStartupParameters) > 0 {
		fmt.Fprintf(&ini, "ignore_startup_parameters = %s\n", strings.Join(opts.IgnoreStartupParameters, ", "))
	}
	if b.Version[0] > 1 || b.Version[1] >= 21 {
		// Protocol-level prepared statements (1.21+); Strata does not
		// need them (docs/pgbouncer.md) but the setting is harmless.
		ini.WriteString("max_prepared_statements = 200\n")
	}
	fmt.Fprintf(&ini, "logfile = %s\n", filepath.Join(dir, "pgbouncer.log"))
	b.Ini = ini.String()
	files := map[string]string{"pgbouncer.ini": b.Ini, "userlist.txt": `"postgres" ""` + "\n"}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}

	cmd := exec.Command(bin, filepath.Join(dir, "pgbouncer.ini"))
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	// A test binary that dies (a timeout's panic skips Cleanup) takes its
	// pgbouncer with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if os.Geteuid() == 0 {
		// pgbouncer refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			tb.Fatalf("running as root needs a postgres OS user to run pgbouncer: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			tb.Fatal(err)
		}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start pgbouncer: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tb.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT) // "safe shutdown": waits for clients (already closed)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})

	// Ready once it accepts a client and reaches the server through it.
	for deadline := time.Now().Add(30 * time.Second); ; {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			tb.Fatalf("pgbouncer exited: %v\n%s%s\n%s", err, logs.String(), log, b.Ini)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgconn.Connect(ctx, b.DSN())
		if err == nil {
			err = conn.Exec(ctx, "SELECT 1").Close()
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return b
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			tb.Fatalf("pgbouncer not ready in 30s: %v\n%s%s", err, logs.String(), log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
