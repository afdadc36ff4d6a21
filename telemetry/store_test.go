package telemetry

import (
	"context"
	"path/filepath"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/store/sqlite"
	"github.com/strata-run/strata/store/storetest"
)

// The conformance suite calls the store with plain contexts, so the traced
// store is given root spans: every call then goes through the span path,
// and the suite proves the wrapper changes no store semantics.
func TestTraceStoreConformance(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	storetest.Run(t, func(tb testing.TB) strata.Store {
		tb.Helper()
		s, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "data.db"), sqlite.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.Close() })
		return wrapStore(&tracedStore{next: s, system: DBSQLite, roots: tp})
	})
	t.Cleanup(func() {
		// Runs after the parallel subtests: check that the spans were made.
		byID := map[string]sdktrace.ReadOnlySpan{}
		names := map[string]int{}
		for _, s := range rec.Ended() {
			byID[s.SpanContext().SpanID().String()] = s
			names[s.Name()]++
		}
		for _, n := range []string{"Write", "InsertRecord", "FindRecords", "CountRecords", "Changes", "CreateCollection", "UpdateCollection", "PutSetting"} {
			if names[n] == 0 {
				t.Errorf("no %s span among %v", n, names)
			}
		}
		for _, s := range rec.Ended() {
			if s.Name() != "InsertRecord" {
				continue
			}
			parent, ok := byID[s.Parent().SpanID().String()]
			if !ok || parent.Name() != "Write" {
				t.Fatalf("InsertRecord span's parent is not a Write span: %v", s.Parent())
			}
			if attr(s, "db.system") != DBSQLite || attr(s, "db.collection.name") == "" {
				t.Fatalf("InsertRecord attributes: %v", s.Attributes())
			}
		}
	})
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

// Backups and /readyz find their methods on the store by type assertion;
// the wrapper must not hide them.
func TestTraceStoreKeepsOptionalMethods(t *testing.T) {
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "data.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := TraceStore(s, DBSQLite)
	if _, ok := st.(pinger); !ok {
		t.Error("Ping hidden")
	}
	if sn, ok := st.(snapshotter); !ok || sn.Path() != s.Path() {
		t.Error("snapshot methods hidden")
	}
	if u, ok := st.(interface{ Unwrap() strata.Store }); !ok || u.Unwrap() != strata.Store(s) {
		t.Error("Unwrap missing")
	}
	if err := st.(pinger).Ping(context.Background()); err != nil {
		t.Error(err)
	}
	// Outside a trace nothing is started: the call is passed through.
	if _, err := st.Collections(context.Background()); err != nil {
		t.Fatal(err)
	}
}
