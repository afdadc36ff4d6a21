package postgres_test

import (
	"context"
	"testing"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/store/postgres"
	"github.com/strata-run/strata/store/postgres/pgtest"
	"github.com/strata-run/strata/store/storetest"
)

func open(tb testing.TB) strata.Store {
	tb.Helper()
	s, err := postgres.Open(context.Background(), pgtest.Schema(tb), postgres.Options{MaxConns: 8})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, open) }
