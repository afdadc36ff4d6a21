package strata

import (
	"fmt"
	"regexp"
	"strings"
)

// Index is a collection's CREATE INDEX statement taken apart, so it can be
// validated and re-rendered for any table name and SQL dialect instead of
// being executed as the client wrote it.
type Index struct {
	Unique  bool
	Name    string
	Table   string
	Columns []IndexColumn
	Where   string // raw condition, validated by validIndexWhere

	raw        string // the statement as written
	tableStart int    // byte span of the table name token in raw
	tableEnd   int
}

// IndexColumn is one indexed column or expression.
type IndexColumn struct {
	Name    string // column name, or an expression such as LOWER(email)
	Collate string // e.g. NOCASE
	Desc    bool
}

var (
	indexHeadRe = regexp.MustCompile(`(?is)^\s*create\s+(unique\s+)?index\s+(if\s+not\s+exists\s+)?([` + "`" + `"\[]?[\w.]+[` + "`" + `"\]]?)\s+on\s+([` + "`" + `"\[]?\w+[` + "`" + `"\]]?)\s*\((.*)\)\s*(?:where\s+(.+?))?\s*;?\s*$`)
	identRe     = regexp.MustCompile(`^\w+$`)
	indexExprRe = regexp.MustCompile(`^(?i:lower|upper|trim|json_extract|coalesce)\(\s*[\w` + "`" + `"]+\s*(,\s*'[$.\w\[\]]*'\s*)?\)$`)
	// whereRe allows column comparisons with literals joined by AND/OR;
	// enough for partial unique indexes such as `email != ''`.
	whereTokRe = regexp.MustCompile(`(?i)^(\s+|\w+|'[^';]*'|[` + "`" + `"]\w+[` + "`" + `"]|!=|<>|<=|>=|=|<|>|\(|\)|,)`)
)

func unquoteIdent(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && (s[0] == '`' || s[0] == '"' || s[0] == '[') {
		return s[1 : len(s)-1]
	}
	return s
}

// ParseIndex parses a CREATE [UNIQUE] INDEX statement. Column expressions are
// limited to plain columns and a few functions of one column, and a WHERE
// clause to simple comparisons, so the statement can never carry anything
// but an index definition.
func ParseIndex(sql string) (*Index, error) {
	loc := indexHeadRe.FindStringSubmatchIndex(sql)
	if loc == nil {
		return nil, fmt.Errorf("invalid CREATE INDEX statement")
	}
	m := make([]string, len(loc)/2)
	for i := range m {
		if loc[2*i] >= 0 {
			m[i] = sql[loc[2*i]:loc[2*i+1]]
		}
	}
	idx := &Index{Unique: m[1] != "", Name: unquoteIdent(m[3]), Table: unquoteIdent(m[4]),
		raw: sql, tableStart: loc[8], tableEnd: loc[9]}
	if !identRe.MatchString(idx.Name) || !identRe.MatchString(idx.Table) {
		return nil, fmt.Errorf("invalid index or table name")
	}
	for _, part := range splitTopLevel(m[5]) {
		col, err := parseIndexColumn(part)
		if err != nil {
			return nil, err
		}
		idx.Columns = append(idx.Columns, col)
	}
	if len(idx.Columns) == 0 {
		return nil, fmt.Errorf("index has no columns")
	}
	if w := strings.TrimSpace(m[6]); w != "" {
		if err := validIndexWhere(w); err != nil {
			return nil, err
		}
		idx.Where = w
	}
	return idx, nil
}

func splitTopLevel(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

func parseIndexColumn(s string) (IndexColumn, error) {
	var c IndexColumn
	words := strings.Fields(s)
	if len(words) == 0 {
		return c, fmt.Errorf("empty index column")
	}
	// Trailing ASC/DESC and COLLATE x.
	for len(words) > 1 {
		last := strings.ToUpper(words[len(words)-1])
		switch {
		case last == "ASC":
			words = words[:len(words)-1]
		case last == "DESC":
			c.Desc = true
			words = words[:len(words)-1]
		case len(words) > 2 && strings.EqualFold(words[len(words)-2], "collate"):
			c.Collate = strings.ToUpper(words[len(words)-1])
			if c.Collate != "NOCASE" && c.Collate != "BINARY" && c.Collate != "RTRIM" {
				return c, fmt.Errorf("unsupported collation %q", words[len(words)-1])
			}
			words = words[:len(words)-2]
		default:
			return c, fmt.Errorf("invalid index column %q", s)
		}
	}
	expr := strings.Join(words, " ")
	if name := unquoteIdent(expr); identRe.MatchString(name) {
		c.Name = name
		return c, nil
	}
	if indexExprRe.MatchString(expr) {
		c.Name = expr
		return c, nil
	}
	return c, fmt.Errorf("unsupported index expression %q", expr)
}

func validIndexWhere(w string) error {
	for rest := w; rest != ""; {
		m := whereTokRe.FindString(rest)
		if m == "" {
			return fmt.Errorf("unsupported index WHERE clause")
		}
		rest = rest[len(m):]
	}
	return nil
}

// ColumnNames returns the plain column names the index covers (expressions
// are reduced to the column they wrap).
func (idx *Index) ColumnNames() []string {
	var out []string
	for _, c := range idx.Columns {
		name := c.Name
		if i := strings.IndexByte(name, '('); i >= 0 {
			inner := name[i+1:]
			if j := strings.IndexAny(inner, ",)"); j >= 0 {
				inner = inner[:j]
			}
			name = unquoteIdent(inner)
		}
		out = append(out, name)
	}
	return out
}

// WithTable returns the statement as written with its table name replaced
// (collections are renamed; PocketBase keeps the client's text otherwise).
func (idx *Index) WithTable(table string) string {
	return idx.raw[:idx.tableStart] + "`" + table + "`" + idx.raw[idx.tableEnd:]
}

// SQL renders the index for table with quote() quoting identifiers.
func (idx *Index) SQL(table string, quote func(string) string) string {
	var b strings.Builder
	b.WriteString("CREATE ")
	if idx.Unique {
		b.WriteString("UNIQUE ")
	}
	b.WriteString("INDEX ")
	b.WriteString(quote(idx.Name))
	b.WriteString(" ON ")
	b.WriteString(quote(table))
	b.WriteString(" (")
	for i, c := range idx.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		if identRe.MatchString(c.Name) {
			b.WriteString(quote(c.Name))
		} else {
			b.WriteString(c.Name)
		}
		if c.Collate != "" {
			b.WriteString(" COLLATE " + c.Collate)
		}
		if c.Desc {
			b.WriteString(" DESC")
		}
	}
	b.WriteString(")")
	if idx.Where != "" {
		b.WriteString(" WHERE " + idx.Where)
	}
	return b.String()
}
