package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/strata-run/strata/service"
	"github.com/strata-run/strata/store/sqlite"
)

// runBackup is `strata backup --dir DIR [--out FILE]`: a PocketBase-shaped
// zip (data.db inside) of a consistent snapshot of the SQLite database,
// safe while `strata serve` writes to it. Without --out it goes to
// DIR/backups/pb_backup_<time>.zip, where the backups API lists it.
func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sc storeConfig
	sc.register(fs)
	var out string
	fs.StringVar(&out, "out", "", "zip to write (default DIR/backups/pb_backup_<time>.zip)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if sc.DB != "" {
		return fmt.Errorf("backup: PostgreSQL is backed up with pg_dump or point-in-time recovery")
	}
	if out == "" {
		out = filepath.Join(sc.Dir, "backups", "pb_backup_"+time.Now().UTC().Format("20060102150405")+".zip")
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	err = service.WriteBackupZip(f, func(w io.Writer) error {
		return sqlite.SnapshotFile(ctx, filepath.Join(sc.Dir, "data.db"), w)
	})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Backup written to %s\n", out)
	return nil
}
