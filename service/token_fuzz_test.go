package service_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/service"
	"github.com/strata-run/strata/store/sqlite"
)

// FuzzVerifyToken feeds arbitrary strings to the token parser: nothing may
// panic, and only the exact token that was issued verifies (any other
// string, including every mutation of it, is rejected).
func FuzzVerifyToken(f *testing.F) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(f.TempDir(), "data.db"), sqlite.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	app, err := service.New(ctx, service.Config{Store: st})
	if err != nil {
		f.Fatal(err)
	}
	if err := app.CreateSuperuser(ctx, "fuzz@strata.test", "fuzz-pass-123"); err != nil {
		f.Fatal(err)
	}
	res, err := app.AuthWithPassword(ctx, nil, app.Collection(strata.SuperusersID), "fuzz@strata.test", "fuzz-pass-123", "")
	if err != nil {
		f.Fatal(err)
	}
	valid := res.Token
	f.Add(valid)
	f.Add(strings.ToUpper(valid))
	f.Add("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpZCI6IngiLCJ0eXBlIjoiYXV0aCJ9.")
	f.Add("a.b.c")
	f.Add("")
	f.Add(strings.Repeat(".", 1000))
	types := []string{service.TokenAuth, service.TokenFile, service.TokenVerification, service.TokenPasswordReset, service.TokenEmailChange}
	f.Fuzz(func(t *testing.T, token string) {
		for _, typ := range types {
			rec, claims, err := app.VerifyToken(ctx, token, typ)
			if err == nil && (token != valid || typ != service.TokenAuth || rec == nil || claims == nil) {
				t.Fatalf("accepted %q as %s", token, typ)
			}
		}
	})
}
