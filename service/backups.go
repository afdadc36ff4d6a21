package service

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/strata-run/strata"
)

// SnapshotStore is the optional part of a Store that backups need: an online,
// consistent copy of the database, and a restore staged for the next start.
// store/sqlite implements it; PostgreSQL deployments back up with pg_dump or
// point-in-time recovery instead.
type SnapshotStore interface {
	// Snapshot writes a consistent database file to w while writes go on.
	Snapshot(ctx context.Context, w io.Writer) error
	// StageRestore validates the database file read from r and arranges
	// for it to replace the live database when the store next opens.
	StageRestore(ctx context.Context, r io.Reader) error
	// Path is the database file; backups live in "backups" beside it.
	Path() string
}

// BackupDBName is the database's name inside a backup zip, as in PocketBase.
const BackupDBName = "data.db"

// BackupInfo is one backup file (GET /api/backups).
type BackupInfo struct {
	Key      string `json:"key"`
	Size     int64  `json:"size"`
	Modified string `json:"modified"` // strata.DateLayout, UTC
}

var backupKeyRe = regexp.MustCompile(`^[a-z0-9_-]+\.zip$`)

// backupLocks allows one backup or restore at a time per data directory.
var backupLocks sync.Map // dir → *sync.Mutex

func (a *App) backupStore() (SnapshotStore, string, error) {
	st, ok := a.store.(SnapshotStore)
	if !ok {
		return nil, "", strata.Errorf(strata.EInvalid, "Backups are available with SQLite only; back up PostgreSQL with pg_dump or point-in-time recovery.")
	}
	return st, filepath.Join(filepath.Dir(st.Path()), "backups"), nil
}

func lockBackups(dir string) (unlock func(), err error) {
	v, _ := backupLocks.LoadOrStore(dir, &sync.Mutex{})
	mu := v.(*sync.Mutex)
	if !mu.TryLock() {
		return nil, strata.Errorf(strata.EInvalid, "Try again later - another backup/restore process has already been started.")
	}
	return mu.Unlock, nil
}

func checkBackupKey(key string) error {
	if !backupKeyRe.MatchString(key) {
		return strata.Errorf(strata.EInvalid, "Invalid backup name: must match ^[a-z0-9_-]+\\.zip$.")
	}
	return nil
}

// ListBackups returns the backups, newest first.
func (a *App) ListBackups(ctx context.Context) ([]BackupInfo, error) {
	_, dir, err := a.backupStore()
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return []BackupInfo{}, nil
	} else if err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	out := []BackupInfo{}
	for _, e := range entries {
		if e.IsDir() || !backupKeyRe.MatchString(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, BackupInfo{Key: e.Name(), Size: fi.Size(), Modified: fi.ModTime().UTC().Format(strata.DateLayout)})
	}
	slices.SortFunc(out, func(x, y BackupInfo) int { return strings.Compare(y.Modified, x.Modified) })
	return out, nil
}

// CreateBackup snapshots the database into backups/<name> (a generated name
// when empty) and returns the key.
func (a *App) CreateBackup(ctx context.Context, name string) (string, error) {
	st, dir, err := a.backupStore()
	if err != nil {
		return "", err
	}
	if name == "" {
		name = "pb_backup_" + time.Now().UTC().Format("20060102150405") + ".zip"
	}
	if err := checkBackupKey(name); err != nil {
		return "", err
	}
	unlock, err := lockBackups(dir)
	if err != nil {
		return "", err
	}
	defer unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
		return "", strata.Errorf(strata.EInvalid, "Backup %q already exists.", name)
	}
	err = writeFileAtomic(dir, name, func(w io.Writer) error {
		return WriteBackupZip(w, func(w io.Writer) error { return st.Snapshot(ctx, w) })
	})
	if err != nil {
		return "", fmt.Errorf("create backup %q: %w", name, err)
	}
	a.log.InfoContext(ctx, "backup created", "key", name)
	return name, nil
}

// WriteBackupZip writes a PocketBase-shaped backup zip (data.db inside)
// whose database bytes come from snapshot.
func WriteBackupZip(w io.Writer, snapshot func(io.Writer) error) error {
	zw := zip.NewWriter(w)
	fw, err := zw.CreateHeader(&zip.FileHeader{Name: BackupDBName, Method: zip.Deflate, Modified: time.Now()})
	if err != nil {
		return err
	}
	if err := snapshot(fw); err != nil {
		return err
	}
	return zw.Close()
}

// writeFileAtomic writes dir/name through a temp file and a rename, so a
// reader never sees half a backup.
func writeFileAtomic(dir, name string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(dir, name))
}

// UploadBackup stores an uploaded backup zip under name.
func (a *App) UploadBackup(ctx context.Context, name string, r io.Reader) error {
	_, dir, err := a.backupStore()
	if err != nil {
		return err
	}
	if err := checkBackupKey(name); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
		return strata.Errorf(strata.EInvalid, "Backup %q already exists.", name)
	}
	return writeFileAtomic(dir, name, func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	})
}

// OpenBackup opens a backup for download.
func (a *App) OpenBackup(ctx context.Context, key string) (*os.File, error) {
	_, dir, err := a.backupStore()
	if err != nil {
		return nil, err
	}
	if !backupKeyRe.MatchString(key) {
		return nil, strata.Errorf(strata.ENotFound, "The requested resource wasn't found.")
	}
	f, err := os.Open(filepath.Join(dir, key))
	if errors.Is(err, os.ErrNotExist) {
		return nil, strata.Errorf(strata.ENotFound, "The requested resource wasn't found.")
	}
	return f, err
}

// DeleteBackup removes a backup.
func (a *App) DeleteBackup(ctx context.Context, key string) error {
	_, dir, err := a.backupStore()
	if err != nil {
		return err
	}
	if !backupKeyRe.MatchString(key) {
		return strata.Errorf(strata.ENotFound, "The requested resource wasn't found.")
	}
	unlock, err := lockBackups(dir)
	if err != nil {
		return err
	}
	defer unlock()
	err = os.Remove(filepath.Join(dir, key))
	if errors.Is(err, os.ErrNotExist) {
		return strata.Errorf(strata.ENotFound, "The requested resource wasn't found.")
	}
	return err
}

// RestoreBackup validates the backup's database and stages it to replace
// the live one. The swap happens when the store next opens (the process
// restarts): a database cannot be replaced under open connections. Nothing
// changes if the zip or the database in it is unsound.
func (a *App) RestoreBackup(ctx context.Context, key string) error {
	st, dir, err := a.backupStore()
	if err != nil {
		return err
	}
	if !backupKeyRe.MatchString(key) {
		return strata.Errorf(strata.ENotFound, "The requested resource wasn't found.")
	}
	unlock, err := lockBackups(dir)
	if err != nil {
		return err
	}
	defer unlock()
	zr, err := zip.OpenReader(filepath.Join(dir, key))
	if errors.Is(err, os.ErrNotExist) {
		return strata.Errorf(strata.ENotFound, "The requested resource wasn't found.")
	} else if err != nil {
		return strata.Errorf(strata.EInvalid, "Invalid backup archive: %v.", err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		if strings.TrimPrefix(f.Name, "./") != BackupDBName {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return strata.Errorf(strata.EInvalid, "Invalid backup archive: %v.", err)
		}
		defer rc.Close()
		if err := st.StageRestore(ctx, rc); err != nil {
			return &strata.Error{Code: strata.EInvalid, Message: "Failed to restore backup: the database in it is not valid.", Err: err}
		}
		a.log.WarnContext(ctx, "backup restore staged; it is applied when the server restarts", "key", key)
		return nil
	}
	return strata.Errorf(strata.EInvalid, "Invalid backup archive: no %s inside.", BackupDBName)
}
