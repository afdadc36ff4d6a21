package strata

import (
	"strings"
	"testing"
)

func TestParseIndex(t *testing.T) {
	good := []struct {
		sql     string
		unique  bool
		name    string
		columns []string
		where   string
	}{
		{"CREATE INDEX `idx_a` ON `posts` (title)", false, "idx_a", []string{"title"}, ""},
		{"create unique index if not exists idx_b on posts (`a`, b DESC, c COLLATE NOCASE)", true, "idx_b", []string{"a", "b", "c"}, ""},
		{"CREATE UNIQUE INDEX `idx_email` ON `users` (`email`) WHERE `email` != ''", true, "idx_email", []string{"email"}, "`email` != ''"},
		{"CREATE INDEX idx_l ON t (LOWER(name));", false, "idx_l", []string{"name"}, ""},
	}
	for _, g := range good {
		idx, err := ParseIndex(g.sql)
		if err != nil {
			t.Fatalf("%q: %v", g.sql, err)
		}
		if idx.Unique != g.unique || idx.Name != g.name || strings.Join(idx.ColumnNames(), ",") != strings.Join(g.columns, ",") || idx.Where != g.where {
			t.Fatalf("%q: parsed %+v", g.sql, idx)
		}
		if got := idx.WithTable("renamed"); !strings.Contains(strings.ToUpper(got), "ON `RENAMED`") {
			t.Fatalf("%q: WithTable = %q", g.sql, got)
		}
	}
	bad := []string{
		"", "DROP TABLE posts", "CREATE INDEX x ON posts ()", "CREATE INDEX x ON posts (a); DROP TABLE posts",
		"CREATE INDEX x ON posts (a) WHERE 1; DROP TABLE posts", "CREATE INDEX x ON posts (a COLLATE evil)",
		"CREATE INDEX x ON posts ((SELECT 1))", "CREATE INDEX `x y` ON posts (a)",
		"CREATE INDEX x ON posts (a) WHERE (SELECT count(*) FROM _params) > 0",
	}
	for _, b := range bad {
		if idx, err := ParseIndex(b); err == nil {
			t.Fatalf("%q parsed as %+v", b, idx)
		}
	}
}

// FuzzParseIndex: anything that parses re-renders to SQL that parses to the
// same index, and nothing outside the grammar (such as a second statement)
// survives into the rendered SQL.
func FuzzParseIndex(f *testing.F) {
	for _, s := range []string{
		"CREATE INDEX `idx_a` ON `posts` (title)",
		"CREATE UNIQUE INDEX idx_b ON posts (a, b DESC) WHERE a != ''",
		"CREATE INDEX i ON t (LOWER(x) COLLATE NOCASE)",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		idx, err := ParseIndex(s)
		if err != nil {
			return
		}
		out := idx.SQL("tbl", func(s string) string { return `"` + s + `"` })
		if strings.Contains(out, ";") {
			t.Fatalf("rendered SQL has a statement separator: %q", out)
		}
		again, err := ParseIndex(out)
		if err != nil {
			t.Fatalf("re-render of %q does not parse: %q: %v", s, out, err)
		}
		if again.Name != idx.Name || again.Unique != idx.Unique || strings.Join(again.ColumnNames(), ",") != strings.Join(idx.ColumnNames(), ",") {
			t.Fatalf("round trip changed the index: %+v vs %+v", idx, again)
		}
	})
}
