package main

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestSuperuserCommands(t *testing.T) {
	dir := t.TempDir()
	steps := []struct {
		args    []string
		wantErr bool
		want    string
	}{
		{[]string{"superuser", "create", "a@b.co", "S3cret-pass", "--dir", dir}, false, "created"},
		{[]string{"superuser", "create", "a@b.co", "S3cret-pass", "--dir", dir}, true, "email: Value must be unique"},
		{[]string{"superuser", "upsert", "a@b.co", "N3w-secret-pass", "--dir", dir}, false, "changed"},
		{[]string{"superuser", "upsert", "--dir", dir, "b@b.co", "An0ther-pass"}, false, "created"},
		{[]string{"superuser", "update", "a@b.co", "short", "--dir", dir}, true, "password: Must be at least 8"},
		{[]string{"superuser", "update", "nobody@b.co", "Whatever-123", "--dir", dir}, true, "not found"},
		{[]string{"superuser", "delete", "b@b.co", "--dir", dir}, false, "deleted"},
		{[]string{"superuser", "create", "not-an-email", "S3cret-pass", "--dir", dir}, true, "email"},
		{[]string{"superuser", "create", "c@b.co", "--dir", dir}, true, "expected 2 arguments"},
		{[]string{"superuser", "frobnicate", "c@b.co", "x", "--dir", dir}, true, "unknown superuser action"},
		{[]string{"nope"}, true, "unknown command"},
	}
	for _, s := range steps {
		out, err := runCLI(t, s.args...)
		if (err != nil) != s.wantErr {
			t.Fatalf("%v: err = %v (output %q)", s.args, err, out)
		}
		text := out
		if err != nil {
			text += err.Error()
		}
		if !strings.Contains(text, s.want) {
			t.Fatalf("%v: %q does not mention %q", s.args, text, s.want)
		}
	}
}

// Serve gives password hashing Ps of its own on top of the default
// GOMAXPROCS, once however often it runs in a process.
func TestHashingProcs(t *testing.T) {
	t.Setenv("GOMAXPROCS", "") // restored after the test
	os.Unsetenv("GOMAXPROCS")
	defer runtime.SetDefaultGOMAXPROCS()
	runtime.SetDefaultGOMAXPROCS()
	base := runtime.GOMAXPROCS(0)
	for range 3 {
		slots := hashingProcs()
		if slots != max(1, base/2) || runtime.GOMAXPROCS(0) != base+slots {
			t.Fatalf("base %d: %d slots, GOMAXPROCS %d", base, slots, runtime.GOMAXPROCS(0))
		}
	}
	// An explicit GOMAXPROCS wins: serve only sizes the hashing from it.
	t.Setenv("GOMAXPROCS", "4")
	runtime.GOMAXPROCS(4)
	if slots := hashingProcs(); slots != 2 || runtime.GOMAXPROCS(0) != 4 {
		t.Fatalf("GOMAXPROCS=4 in the environment: %d slots, GOMAXPROCS %d", slots, runtime.GOMAXPROCS(0))
	}
}
