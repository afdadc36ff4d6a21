package mailer

import (
	"context"
	"log/slog"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/strata-run/strata"
)

// TestDevWritesWholeFiles: every .eml file a watcher of the directory can
// see is complete (the e2e suite reads them as soon as they appear), and no
// temporary file stays behind.
func TestDevWritesWholeFiles(t *testing.T) {
	dir := t.TempDir()
	d := &Dev{Dir: dir, Log: slog.New(slog.DiscardHandler)}
	const n = 50
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if !strings.HasSuffix(e.Name(), ".eml") {
					continue
				}
				raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err == nil && !strings.Contains(string(raw), "the end") {
					t.Errorf("%s read incomplete: %q", e.Name(), raw)
					return
				}
			}
		}
	})
	for i := range n {
		err := d.Send(context.Background(), &strata.MailMessage{
			From: mail.Address{Address: "app@strata.test"}, To: []mail.Address{{Address: "u@strata.test"}},
			Subject: "hello", Text: strings.Repeat("line\n", i*100) + "the end", Kind: "otp"})
		if err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n {
		t.Fatalf("%d files for %d messages", len(entries), n)
	}
	for _, e := range entries {
		info, _ := e.Info()
		if !strings.HasSuffix(e.Name(), "-otp-u@strata.test.eml") || info.Mode().Perm() != 0o600 {
			t.Fatalf("%s (%v)", e.Name(), info.Mode())
		}
	}
}
