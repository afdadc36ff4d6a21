package api_test

import (
	"archive/zip"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-run/strata/service"
	"github.com/strata-run/strata/store/sqlite"
)

func dbPath(tb testing.TB, ts *testServer) string {
	tb.Helper()
	return ts.app.Store().(service.SnapshotStore).Path()
}

// TestBackupUnderWriteLoad takes a backup while writers keep creating
// records and checks that the restored database is sound and holds every
// write acknowledged before the backup started.
func TestBackupUnderWriteLoad(t *testing.T) {
	ts := newTestServer(t)
	ts.collection(`{"name":"posts","createRule":"","fields":[{"name":"title","type":"text"},{"name":"n","type":"number"}]}`)

	var (
		mu    sync.Mutex
		acked []string
		stop  atomic.Bool
		wg    sync.WaitGroup
		n     atomic.Int64
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				i := n.Add(1)
				res := ts.do("POST", "/api/collections/posts/records", "", map[string]any{"title": fmt.Sprint("t", i), "n": i})
				if res.code != 200 {
					t.Errorf("create: %d %s", res.code, res.body)
					return
				}
				mu.Lock()
				acked = append(acked, res.get("id").(string))
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	before := append([]string(nil), acked...)
	mu.Unlock()
	ts.su("POST", "/api/backups", map[string]any{"name": "under_load.zip"}).status(204)
	time.Sleep(100 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if len(before) < 10 {
		t.Fatalf("only %d writes acknowledged before the backup", len(before))
	}

	list := ts.su("GET", "/api/backups", nil).status(200)
	if got := list.get("0.key"); got != "under_load.zip" {
		t.Fatalf("list = %s", list.body)
	}

	// Download with a superuser file token; anything else is 403.
	su := ts.app.Authenticate(context.Background(), ts.suToken)
	fileToken, err := service.NewToken(su, service.TokenFile, 0, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts.do("GET", "/api/backups/under_load.zip", "", nil).status(403)
	ts.do("GET", "/api/backups/under_load.zip?token="+ts.suToken, "", nil).status(403)
	dl := ts.do("GET", "/api/backups/under_load.zip?token="+fileToken, "", nil).status(200)
	zr, err := zip.NewReader(bytes.NewReader(dl.body), int64(len(dl.body)))
	if err != nil || len(zr.File) != 1 || zr.File[0].Name != "data.db" {
		t.Fatalf("backup zip: %v %v", err, zr)
	}

	// Restore stages the database; applying it swaps the file in.
	ts.su("POST", "/api/backups/under_load.zip/restore", nil).status(204)
	staged := dbPath(t, ts) + ".restore"
	dir := t.TempDir()
	restored := filepath.Join(dir, "data.db")
	copyFile(t, staged, restored+".restore")
	if ok, err := sqlite.ApplyPendingRestore(restored); err != nil || !ok {
		t.Fatalf("apply restore: %v %v", ok, err)
	}
	if err := sqlite.CheckIntegrity(context.Background(), restored); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+restored+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	have := map[string]bool{}
	rows, err := db.Query("SELECT id FROM posts")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		rows.Scan(&id)
		have[id] = true
	}
	rows.Close()
	for _, id := range before {
		if !have[id] {
			t.Fatalf("record %s acknowledged before the backup is missing from it (%d of %d present)", id, len(have), len(before))
		}
	}
	t.Logf("%d acknowledged before the backup, %d in it, %d acknowledged in all", len(before), len(have), len(acked))

	// A restored store opens and serves.
	st, err := sqlite.Open(context.Background(), restored, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
}

func TestBackupsAPI(t *testing.T) {
	ts := newTestServer(t)
	_, userToken := ts.user("u@strata.test")
	ts.do("GET", "/api/backups", "", nil).status(401)
	ts.do("GET", "/api/backups", userToken, nil).status(403)
	ts.do("POST", "/api/backups", userToken, nil).status(403)
	if b := ts.su("GET", "/api/backups", nil).status(200).body; string(bytes.TrimSpace(b)) != "[]" {
		t.Fatalf("empty list = %s", b)
	}
	ts.su("POST", "/api/backups", map[string]any{"name": "Bad Name.zip"}).status(400)
	ts.su("POST", "/api/backups", nil).status(204)
	list := ts.su("GET", "/api/backups", nil).status(200)
	key, _ := list.get("0.key").(string)
	if len(key) == 0 || list.get("0.size").(float64) <= 0 {
		t.Fatalf("list = %s", list.body)
	}

	// Upload: a valid zip and a non-zip that restore must refuse.
	var zipBuf bytes.Buffer
	if err := service.WriteBackupZip(&zipBuf, func(w io.Writer) error {
		return sqlite.SnapshotFile(context.Background(), dbPath(t, ts), w)
	}); err != nil {
		t.Fatal(err)
	}
	upload := func(name string, data []byte) *response {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		fw, _ := mw.CreateFormFile("file", name)
		fw.Write(data)
		mw.Close()
		return ts.send("POST", "/api/backups/upload", ts.suToken, mw.FormDataContentType(), b.Bytes())
	}
	upload("uploaded.zip", zipBuf.Bytes()).status(204)
	upload("uploaded.zip", zipBuf.Bytes()).status(400)
	upload("garbage.zip", []byte("not a zip")).status(204)
	ts.su("POST", "/api/backups/garbage.zip/restore", nil).status(400)
	if _, err := os.Stat(dbPath(t, ts) + ".restore"); err == nil {
		t.Fatal("a bad backup left a staged restore")
	}
	ts.su("POST", "/api/backups/uploaded.zip/restore", nil).status(204)
	ts.su("POST", "/api/backups/missing.zip/restore", nil).status(404)

	ts.su("DELETE", "/api/backups/"+key, nil).status(204)
	ts.su("DELETE", "/api/backups/"+key, nil).status(404)
	var arr []any
	json.Unmarshal(ts.su("GET", "/api/backups", nil).status(200).body, &arr)
	if len(arr) != 2 {
		t.Fatalf("after delete: %d backups", len(arr))
	}
}

func copyFile(tb testing.TB, src, dst string) {
	tb.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		tb.Fatal(err)
	}
}
