package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
)

// Snapshot writes a consistent copy of the whole database to w while writes
// continue. It runs VACUUM INTO on a reader connection: the copy is taken
// inside one read transaction, so it holds exactly the transactions
// committed before it started (WAL lets the writer go on meanwhile), and the
// result is a compact, self-contained database file with no WAL.
func (s *Store) Snapshot(ctx context.Context, w io.Writer) error {
	return snapshot(ctx, s.reader, filepath.Dir(s.path), w)
}

// SnapshotFile is Snapshot for a database file that no Store in this process
// has open (`strata backup`): it opens the file read-only, so it is safe while
// a server writes to it.
func SnapshotFile(ctx context.Context, path string, w io.Writer) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("mode", "ro")
	db, err := sql.Open("sqlite", "file:"+abs+"?"+q.Encode())
	if err != nil {
		return fmt.Errorf("open %s: %w", abs, err)
	}
	defer db.Close()
	return snapshot(ctx, db, filepath.Dir(abs), w)
}

func snapshot(ctx context.Context, db *sql.DB, dir string, w io.Writer) error {
	// VACUUM INTO refuses an existing file, so reserve a unique name and
	// free it again.
	f, err := os.CreateTemp(dir, ".snapshot-*.db")
	if err != nil {
		return fmt.Errorf("snapshot temp file: %w", err)
	}
	tmp := f.Name()
	f.Close()
	os.Remove(tmp)
	defer os.Remove(tmp)
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", tmp); err != nil {
		return fmt.Errorf("vacuum into: %w", err)
	}
	src, err := os.Open(tmp)
	if err != nil {
		return err
	}
	defer src.Close()
	if _, err := io.Copy(w, src); err != nil {
		return fmt.Errorf("copy snapshot: %w", err)
	}
	return nil
}

// Restore files: StageRestore leaves the validated database at
// <db>.restore; ApplyPendingRestore, called before the store opens, moves
// the live files to <db>.pre-restore* and the staged file into place.
const (
	restoreSuffix    = ".restore"
	preRestoreSuffix = ".pre-restore"
)

// StageRestore validates the database read from r and stages it to replace
// this store's file at the next start (see ApplyPendingRestore). The live
// database is not touched: a store cannot swap its file under open
// connections.
func (s *Store) StageRestore(ctx context.Context, r io.Reader) error {
	return StageRestoreFile(ctx, s.path, r)
}

// StageRestoreFile is StageRestore for the database at dbPath.
func StageRestoreFile(ctx context.Context, dbPath string, r io.Reader) error {
	tmp, err := os.CreateTemp(filepath.Dir(dbPath), ".restore-*.db")
	if err != nil {
		return fmt.Errorf("restore temp file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return fmt.Errorf("write restore file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := CheckIntegrity(ctx, tmp.Name()); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dbPath+restoreSuffix); err != nil {
		return fmt.Errorf("stage restore: %w", err)
	}
	return syncDir(filepath.Dir(dbPath))
}

// ErrCorrupt is returned by CheckIntegrity for a file that is not a sound
// SQLite database.
var ErrCorrupt = errors.New("not a valid SQLite database")

// CheckIntegrity runs PRAGMA integrity_check on the database file at path
// and checks that it holds Strata's system tables.
func CheckIntegrity(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if res != "ok" {
		return fmt.Errorf("%w: integrity_check: %s", ErrCorrupt, res)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_collections'").Scan(&n); err != nil || n != 1 {
		return fmt.Errorf("%w: no _collections table", ErrCorrupt)
	}
	return nil
}

// ApplyPendingRestore swaps a staged restore into place at dbPath, keeping
// the replaced files as <db>.pre-restore, <db>.pre-restore-wal and
// <db>.pre-restore-shm. It must run while no connection has the database
// open (before Open); it reports whether it swapped anything.
func ApplyPendingRestore(dbPath string) (bool, error) {
	staged := dbPath + restoreSuffix
	if _, err := os.Stat(staged); errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	old := dbPath + preRestoreSuffix
	for _, ext := range []string{"", "-wal", "-shm"} {
		os.Remove(old + ext)
		if err := os.Rename(dbPath+ext, old+ext); err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, fmt.Errorf("move aside %s: %w", dbPath+ext, err)
		}
	}
	if err := os.Rename(staged, dbPath); err != nil {
		return false, fmt.Errorf("apply restore: %w", err)
	}
	return true, syncDir(filepath.Dir(dbPath))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
