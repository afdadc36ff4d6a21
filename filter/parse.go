// Package filter implements the PocketBase filter language (API.md §6): a
// hand-written lexer and parser producing an AST, a compiler from that AST to
// parameterised SQL through a Dialect, and an in-memory evaluator that gives
// the same answer as the SQL for a single record.
//
// Typical use by a store:
//
//	e, err := filter.ParseCached(rule)
//	args := &filter.Args{Dialect: filter.SQLite}
//	where, err := filter.Compile(e, &filter.Env{Dialect: filter.SQLite, Collection: c, Alias: c.Name, Schema: s, Request: req}, args)
//	rows, err := db.Query("SELECT * FROM `posts` WHERE "+where, args.Values()...)
package filter

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/strata-run/strata"
)

// Limits of the language (API.md §6.2, §6.1).
const (
	MaxLength       = 3500 // characters of one filter
	MaxComparisons  = 200  // comparisons in one filter
	MaxCallNesting  = 3    // nesting depth of function calls
	MaxCallArgs     = 10   // arguments of one function call
	MaxRelationHops = 6    // relation hops in one identifier path
)

// Expr is a boolean filter expression: *Compare or *Logical.
type Expr interface {
	// Pos is the byte offset of the expression in the source.
	Pos() int
	expr()
}

// Operand is one side of a comparison or a function argument: *Ident,
// *Number, *Text or *Call.
type Operand interface {
	Pos() int
	operand()
}

// JoinOp joins two expressions.
type JoinOp int

// Logical operators; And binds tighter than Or.
const (
	And JoinOp = iota
	Or
)

func (j JoinOp) String() string {
	if j == And {
		return "&&"
	}
	return "||"
}

// Logical is Left && Right or Left || Right.
type Logical struct {
	Op          JoinOp
	Left, Right Expr
	At          int
}

// Compare is Left Op Right. Op is one of = != > >= < <= ~ !~, optionally
// prefixed by ? (any-of semantics for multi-valued operands).
type Compare struct {
	Op          string
	Left, Right Operand
	At          int
}

// Any reports whether the operator has the any-of "?" prefix.
func (c *Compare) Any() bool { return strings.HasPrefix(c.Op, "?") }

// BaseOp is the operator without the "?" prefix.
func (c *Compare) BaseOp() string { return strings.TrimPrefix(c.Op, "?") }

// Ident is an identifier such as title, author.name:lower or @request.auth.id.
type Ident struct {
	Name string
	At   int
}

// Number is a numeric literal as written.
type Number struct {
	Raw string
	At  int
}

// Text is a quoted string literal with escapes resolved.
type Text struct {
	Value string
	At    int
}

// Call is a function call such as geoDistance(a, b, c, d).
type Call struct {
	Name string
	Args []Operand
	At   int
}

// Pos implements Expr.
func (l *Logical) Pos() int { return l.At }

// Pos implements Expr.
func (c *Compare) Pos() int { return c.At }

// Pos implements Operand.
func (i *Ident) Pos() int { return i.At }

// Pos implements Operand.
func (n *Number) Pos() int { return n.At }

// Pos implements Operand.
func (t *Text) Pos() int { return t.At }

// Pos implements Operand.
func (c *Call) Pos() int { return c.At }

func (*Logical) expr()   {}
func (*Compare) expr()   {}
func (*Ident) operand()  {}
func (*Number) operand() {}
func (*Text) operand()   {}
func (*Call) operand()   {}

// SyntaxError is the cause (Err) of the *strata.Error returned for a
// malformed filter. Pos is a 0-based byte offset into the source.
type SyntaxError struct {
	Pos int
	Msg string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%s at position %d", e.Msg, e.Pos) }

func syntaxErr(pos int, format string, args ...any) error {
	se := &SyntaxError{Pos: pos, Msg: fmt.Sprintf(format, args...)}
	return &strata.Error{Code: strata.EInvalid, Message: "Invalid filter: " + se.Error() + ".", Err: se}
}

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tNumber
	tText
	tOp
	tAnd
	tOr
	tLParen
	tRParen
	tComma
)

type token struct {
	kind tokKind
	val  string
	pos  int
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of input"
	case tText:
		return "text literal"
	}
	return strconv.Quote(t.val)
}

type lexer struct {
	src string
	pos int
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

func (l *lexer) skipSpace() {
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			l.pos++
		case c == '/' && l.pos+1 < len(l.src) && l.src[l.pos+1] == '/':
			for l.pos < len(l.src) && l.src[l.pos] != '\n' {
				l.pos++
			}
		default:
			return
		}
	}
}

var operators = []string{"?!~", "?!=", "?>=", "?<=", "!=", "!~", ">=", "<=", "?=", "?>", "?<", "?~", "=", ">", "<", "~"}

func (l *lexer) next() (token, error) {
	l.skipSpace()
	start := l.pos
	if l.pos >= len(l.src) {
		return token{kind: tEOF, pos: start}, nil
	}
	c := l.src[l.pos]
	switch {
	case c == '(':
		l.pos++
		return token{tLParen, "(", start}, nil
	case c == ')':
		l.pos++
		return token{tRParen, ")", start}, nil
	case c == ',':
		l.pos++
		return token{tComma, ",", start}, nil
	case c == '&' || c == '|':
		if l.pos+1 < len(l.src) && l.src[l.pos+1] == c {
			l.pos += 2
			if c == '&' {
				return token{tAnd, "&&", start}, nil
			}
			return token{tOr, "||", start}, nil
		}
		return token{}, syntaxErr(start, "unexpected character %q", c)
	case c == '\'' || c == '"':
		return l.text(c)
	case isDigit(c) || c == '-':
		return l.number()
	case isLetter(c) || c == '_' || c == '@' || c == '#':
		for l.pos++; l.pos < len(l.src); l.pos++ {
			d := l.src[l.pos]
			if !(isLetter(d) || isDigit(d) || d == '_' || d == '.' || d == ':') {
				break
			}
		}
		name := l.src[start:l.pos]
		last := name[len(name)-1]
		if last == '.' || last == ':' {
			return token{}, syntaxErr(l.pos-1, "identifier %q must not end with %q", name, last)
		}
		if name == "@" || name == "_" || name == "#" {
			return token{}, syntaxErr(start, "invalid identifier %q", name)
		}
		return token{tIdent, name, start}, nil
	}
	for _, op := range operators {
		if strings.HasPrefix(l.src[l.pos:], op) {
			l.pos += len(op)
			return token{tOp, op, start}, nil
		}
	}
	if c >= 0x80 {
		return token{}, syntaxErr(start, "unexpected non-ASCII character")
	}
	return token{}, syntaxErr(start, "unexpected character %q", c)
}

func (l *lexer) number() (token, error) {
	start := l.pos
	if l.src[l.pos] == '-' {
		l.pos++
	}
	digits := l.pos
	for l.pos < len(l.src) && isDigit(l.src[l.pos]) {
		l.pos++
	}
	if l.pos == digits {
		return token{}, syntaxErr(start, "invalid number")
	}
	if l.pos < len(l.src) && l.src[l.pos] == '.' {
		l.pos++
		frac := l.pos
		for l.pos < len(l.src) && isDigit(l.src[l.pos]) {
			l.pos++
		}
		if l.pos == frac {
			return token{}, syntaxErr(start, "invalid number")
		}
	}
	if l.pos < len(l.src) {
		if d := l.src[l.pos]; isLetter(d) || d == '_' || d == '.' {
			return token{}, syntaxErr(start, "invalid number")
		}
	}
	return token{tNumber, l.src[start:l.pos], start}, nil
}

func (l *lexer) text(quote byte) (token, error) {
	start := l.pos
	l.pos++
	var b strings.Builder
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == quote:
			l.pos++
			return token{tText, b.String(), start}, nil
		case c == '\\' && l.pos+1 < len(l.src):
			e := l.src[l.pos+1]
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '\\', '\'', '"':
				b.WriteByte(e)
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
			}
			l.pos += 2
		default:
			b.WriteByte(c)
			l.pos++
		}
	}
	return token{}, syntaxErr(start, "unterminated text literal")
}

type parser struct {
	lex         lexer
	tok         token
	comparisons int
}

func (p *parser) advance() error {
	t, err := p.lex.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

// Parse parses a filter expression. Syntax errors and exceeded limits are
// *strata.Error with Code EInvalid whose message includes the byte position;
// the cause is a *SyntaxError.
func Parse(src string) (Expr, error) {
	if len(src) > MaxLength {
		return nil, syntaxErr(MaxLength, "filter longer than %d characters", MaxLength)
	}
	p := &parser{lex: lexer{src: src}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	e, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		return nil, syntaxErr(p.tok.pos, "unexpected %s", p.tok.describe())
	}
	return e, nil
}

func (p *parser) parseOr() (Expr, error) {
	left, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for p.tok.kind == tOr {
		at := p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		right, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		left = &Logical{Op: Or, Left: left, Right: right, At: at}
	}
	return left, nil
}

func (p *parser) parseAnd() (Expr, error) {
	left, err := p.parseTerm()
	if err != nil {
		return nil, err
	}
	for p.tok.kind == tAnd {
		at := p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		right, err := p.parseTerm()
		if err != nil {
			return nil, err
		}
		left = &Logical{Op: And, Left: left, Right: right, At: at}
	}
	return left, nil
}

func (p *parser) parseTerm() (Expr, error) {
	if p.tok.kind == tLParen {
		open := p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.kind == tRParen {
			return nil, syntaxErr(p.tok.pos, "empty group")
		}
		e, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tRParen {
			return nil, syntaxErr(p.tok.pos, "expected \")\" to close the group opened at position %d, got %s", open, p.tok.describe())
		}
		return e, p.advance()
	}
	if p.tok.kind == tEOF {
		return nil, syntaxErr(p.tok.pos, "expected an expression, got end of input")
	}
	left, err := p.parseOperand(0)
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tOp {
		return nil, syntaxErr(p.tok.pos, "expected an operator, got %s", p.tok.describe())
	}
	op := p.tok
	if err := p.advance(); err != nil {
		return nil, err
	}
	right, err := p.parseOperand(0)
	if err != nil {
		return nil, err
	}
	p.comparisons++
	if p.comparisons > MaxComparisons {
		return nil, syntaxErr(op.pos, "more than %d comparisons", MaxComparisons)
	}
	return &Compare{Op: op.val, Left: left, Right: right, At: left.Pos()}, nil
}

func (p *parser) parseOperand(depth int) (Operand, error) {
	t := p.tok
	switch t.kind {
	case tNumber:
		return &Number{Raw: t.val, At: t.pos}, p.advance()
	case tText:
		return &Text{Value: t.val, At: t.pos}, p.advance()
	case tIdent:
		// A function call is an identifier directly followed by "(".
		if p.lex.pos < len(p.lex.src) && p.lex.src[p.lex.pos] == '(' {
			return p.parseCall(depth + 1)
		}
		return &Ident{Name: t.val, At: t.pos}, p.advance()
	}
	return nil, syntaxErr(t.pos, "expected an operand, got %s", t.describe())
}

func (p *parser) parseCall(depth int) (Operand, error) {
	name := p.tok
	if depth > MaxCallNesting {
		return nil, syntaxErr(name.pos, "functions nested deeper than %d", MaxCallNesting)
	}
	if err := p.advance(); err != nil { // the identifier
		return nil, err
	}
	if err := p.advance(); err != nil { // "("
		return nil, err
	}
	c := &Call{Name: name.val, At: name.pos}
	for p.tok.kind != tRParen {
		arg, err := p.parseOperand(depth)
		if err != nil {
			return nil, err
		}
		c.Args = append(c.Args, arg)
		if len(c.Args) > MaxCallArgs {
			return nil, syntaxErr(arg.Pos(), "more than %d function arguments", MaxCallArgs)
		}
		if p.tok.kind == tComma {
			if err := p.advance(); err != nil {
				return nil, err
			}
			continue
		}
		if p.tok.kind != tRParen {
			return nil, syntaxErr(p.tok.pos, "expected \",\" or \")\" in call of %s, got %s", c.Name, p.tok.describe())
		}
	}
	return c, p.advance()
}

// String renders the expression back to filter syntax (fully parenthesised
// joins), mainly for tests and logs.
func String(e Expr) string {
	switch e := e.(type) {
	case *Logical:
		return "(" + String(e.Left) + " " + e.Op.String() + " " + String(e.Right) + ")"
	case *Compare:
		return operandString(e.Left) + " " + e.Op + " " + operandString(e.Right)
	}
	return ""
}

func operandString(o Operand) string {
	switch o := o.(type) {
	case *Ident:
		return o.Name
	case *Number:
		return o.Raw
	case *Text:
		return strconv.Quote(o.Value)
	case *Call:
		parts := make([]string, len(o.Args))
		for i, a := range o.Args {
			parts[i] = operandString(a)
		}
		return o.Name + "(" + strings.Join(parts, ", ") + ")"
	}
	return ""
}
