package mailer

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/strata-run/strata"
)

// Dev is the development mailer: each message becomes an .eml file under
// Dir (open it with any mail client, or read the link in it) and one log
// line naming the recipient, subject and file. The log line carries no
// body, so no token ever reaches the log.
type Dev struct {
	Dir string
	Log *slog.Logger
}

// Send implements strata.Mailer.
func (d *Dev) Send(ctx context.Context, m *strata.MailMessage) error {
	raw, err := build(m)
	if err != nil {
		return err
	}
	path := ""
	if d.Dir != "" {
		if err := os.MkdirAll(d.Dir, 0o700); err != nil {
			return fmt.Errorf("development mailer: %w", err)
		}
		name := fmt.Sprintf("%s-%s-%s.eml", time.Now().UTC().Format("20060102T150405.000000000"), safeName(m.Kind), safeName(strings.Join(recipients(m), ",")))
		path = filepath.Join(d.Dir, name)
		if err := writeAtomic(d.Dir, path, raw); err != nil {
			return fmt.Errorf("development mailer: %w", err)
		}
	}
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	log.InfoContext(ctx, "mail not sent (SMTP disabled in settings); saved for development",
		"kind", m.Kind, "to", strings.Join(recipients(m), ","), "subject", m.Subject, "file", path)
	return nil
}

// writeAtomic writes raw to path through a temporary file in dir, so that
// whoever watches dir for .eml files (a developer's tool, the e2e suite)
// never reads one half written.
func writeAtomic(dir, path string, raw []byte) error {
	f, err := os.CreateTemp(dir, ".pending-*")
	if err != nil {
		return err
	}
	_, err = f.Write(raw)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// safeName keeps file names portable.
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_', c == '@':
		default:
			b[i] = '_'
		}
	}
	if len(b) > 80 {
		b = b[:80]
	}
	return string(b)
}
