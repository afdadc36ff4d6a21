package filter

import (
	"strings"
)

// Sort limits (API.md §5.1).
const (
	MaxSortKeys   = 8
	MaxSortKeyLen = 255
)

// CompileSort compiles a PocketBase sort spec ("-created,title:lower,
// author.name,@random") to an ORDER BY list (without the keywords),
// appending bind values to args. Keys are fields, single-relation paths
// (scalar subqueries), JSON paths, :lower, @random and @rowid; multi-valued
// paths, unknown fields and (when env.Restricted) hidden fields are
// EInvalid, and @request/@collection EForbidden. An empty spec returns "".
func CompileSort(spec string, env *Env, args *Args) (string, error) {
	if strings.TrimSpace(spec) == "" {
		return "", nil
	}
	if args.Dialect == nil {
		args.Dialect = env.dialect()
	}
	keys := strings.Split(spec, ",")
	if len(keys) > MaxSortKeys {
		return "", invalid("Invalid sort: more than %d keys.", MaxSortKeys)
	}
	c := newCompiler(env, args, new(int), 0)
	var out []string
	for _, k := range keys {
		k = strings.TrimSpace(k)
		if len(k) > MaxSortKeyLen {
			return "", invalid("Invalid sort: key longer than %d characters.", MaxSortKeyLen)
		}
		desc := false
		switch {
		case strings.HasPrefix(k, "-"):
			desc, k = true, k[1:]
		case strings.HasPrefix(k, "+"):
			k = k[1:]
		}
		switch k {
		case "":
			return "", invalid("Invalid sort: empty key.")
		case "@random":
			out = append(out, c.d.OrderBy(SQLOperand{SQL: c.d.Random(), Kind: KindNumber}, desc))
			continue
		case "@rowid":
			out = append(out, c.d.OrderBy(SQLOperand{SQL: c.d.RowID(env.alias()), Kind: KindNumber}, desc))
			continue
		}
		e, err := Parse(k + " = 1")
		if err != nil {
			return "", invalid("Invalid sort key %q.", k)
		}
		cmp, ok := e.(*Compare)
		id, ok2 := cmp.Left.(*Ident)
		if !ok || !ok2 || id.Name != k {
			return "", invalid("Invalid sort key %q.", k)
		}
		v, err := c.ident(id)
		if err != nil {
			return "", err
		}
		v = c.scalar(v)
		if len(v.from) > 0 {
			return "", invalid("Invalid sort: %q is multi-valued.", k)
		}
		out = append(out, c.d.OrderBy(v.operand(), desc))
	}
	return strings.Join(out, ", "), nil
}
