package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/store/sqlite"
	"github.com/strata-run/strata/store/storetest"
)

func open(tb testing.TB) strata.Store {
	tb.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "data.db"), sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, open) }
