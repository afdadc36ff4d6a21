package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/strata-run/strata/store/postgres/pgtest"
)

func runMigrateCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runMigrate(context.Background(), args, &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestMigrateCommand(t *testing.T) {
	dir := t.TempDir()
	if out, err := runCLI(t, "superuser", "create", "root@example.com", "S3cret-pass", "--dir", dir); err != nil {
		t.Fatalf("superuser create: %v\n%s", err, out)
	}
	dsn := pgtest.Schema(t)

	out, err := runMigrateCLI(t, "--from", dir, "--db", dsn, "--batch", "10")
	if err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	for _, want := range []string{"Copying strata database", "copied _superusers: 1 records", "Verification:", "Verified"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^_superusers\s+1\s+1\s+[0-9a-f]{16}\s+ok$`).MatchString(out) {
		t.Errorf("no verification row for _superusers:\n%s", out)
	}

	// The copy works: the superuser signs in on PostgreSQL.
	if out, err := runCLI(t, "superuser", "update", "root@example.com", "N3w-secret-pass", "--db", dsn, "--dir", t.TempDir()); err != nil {
		t.Fatalf("superuser update on the copy: %v\n%s", err, out)
	}

	out, err = runMigrateCLI(t, "--from", dir, "--db", dsn)
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("second migrate: err = %v\n%s", err, out)
	}
	if out, err := runMigrateCLI(t, "--from", dir, "--db", dsn, "--force"); err != nil {
		t.Fatalf("forced migrate: %v\n%s", err, out)
	}
}

func TestMigrateCommandBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--from", dir}, "--db postgres://… is required"},
		{[]string{"--from", dir, "--db", "mysql://x"}, "--db postgres://… is required"},
		{[]string{"--from", filepath.Join(dir, "nope"), "--db", "postgres://127.0.0.1:1/x"}, "does not exist"},
		{[]string{"--from", dir, "--db", "postgres://127.0.0.1:1/x"}, "no data.db"},
		{[]string{"--from", dir, "--db", "postgres://127.0.0.1:1/x", "--batch", "0"}, "--batch"},
		{[]string{"--from", dir, "--db", "postgres://127.0.0.1:1/x", "extra"}, "unexpected argument"},
		{[]string{"--bogus"}, "flag provided but not defined"},
	} {
		t.Setenv("STRATA_DB", "")
		out, err := runMigrateCLI(t, c.args...)
		if err == nil {
			t.Errorf("%v: no error\n%s", c.args, out)
			continue
		}
		if !strings.Contains(err.Error()+out, c.want) {
			t.Errorf("%v: err = %v, want it to mention %q", c.args, err, c.want)
		}
	}
}
