// Package migrate copies a SQLite database — Strata's strata_data or
// PocketBase's pb_data, which share the layout of collections and records —
// into another strata.Store (PostgreSQL in practice), then proves the copy:
// every collection's row count and an order-independent checksum of its
// records must be equal on both sides.
//
// Records keep their ids, created/updated dates, password hashes (bcrypt
// from PocketBase is verified by Strata and upgraded on the next sign-in)
// and token keys: they go through Tx.InsertRecord, which stores every field
// as given.
package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/strata-run/strata"
)

// SettingsKey is the settings document Strata and PocketBase keep in _params.
const SettingsKey = "settings"

// DefaultBatch is how many records go into one destination transaction.
const DefaultBatch = 500

// bootstrapped are the collections `strata serve` creates in an empty store
// (service.App's bootstrap: _superusers, users, _otps, _mfas,
// _externalAuths, _authOrigins). A destination holding only these, with no records, is
// still empty: the source's versions replace them.
var bootstrapped = map[string]bool{
	strata.SuperusersID: true,
	strata.UsersID:      true,
	"pbc_1638494021":    true, // _otps
	"pbc_2279338944":    true, // _mfas
	"pbc_2281828961":    true, // _externalAuths
	"pbc_4275539003":    true, // _authOrigins
}

// Options tune Copy.
type Options struct {
	// Batch is the number of records per destination transaction;
	// 0 means DefaultBatch.
	Batch int
	// Force copies into a destination that already holds data: collections
	// of the source replace those with the same id or name, others stay.
	Force bool
	// Log receives progress and notices, one line each; nil discards them.
	Log io.Writer
}

// Report is what Copy did and what verification found.
type Report struct {
	Source      string // KindStrata or KindPocketBase
	Collections []CollectionReport
	// Skipped lists source collections that were not copied, with why.
	Skipped []string
	// Settings is true when a settings document was copied and read back
	// equal.
	Settings bool
}

// CollectionReport is the verification of one collection.
type CollectionReport struct {
	ID, Name               string
	SourceCount, DestCount int
	SourceCheck, DestCheck string // hex checksums
	// Replaced is true when a destination collection of the same id or
	// name was dropped for this one (Options.Force).
	Replaced bool
}

// OK reports whether both sides hold the same records.
func (c CollectionReport) OK() bool {
	return c.SourceCount == c.DestCount && c.SourceCheck == c.DestCheck
}

// ErrMismatch is returned (wrapped) when verification finds a difference.
var ErrMismatch = errors.New("verification failed")

// Copy copies src's collections, records and settings into dst in batches
// of transactions, then verifies the copy. A destination that already
// holds data is refused unless opts.Force is set. The returned report is
// filled as far as Copy got, also on error.
func Copy(ctx context.Context, src Source, dst strata.Store, opts Options) (*Report, error) {
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	logf := func(format string, args ...any) {
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, format+"\n", args...)
		}
	}
	rep := &Report{Source: src.Kind()}

	all, err := src.Collections(ctx)
	if err != nil {
		return rep, fmt.Errorf("read source collections: %w", err)
	}
	var cols []*strata.Collection
	for _, c := range all {
		if c.Type == strata.CollectionView {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s: view collections are not supported by Strata yet; recreate it by hand", c.Name))
			continue
		}
		for _, f := range c.Fields {
			if !strata.KnownFieldType(f.Type) {
				return rep, fmt.Errorf("collection %q: field %q has type %q, which Strata does not know", c.Name, f.Name, f.Type)
			}
		}
		if c.Field("id") == nil {
			return rep, fmt.Errorf("collection %q has no id field", c.Name)
		}
		cols = append(cols, c)
	}
	for _, s := range rep.Skipped {
		logf("skipped %s", s)
	}

	existing, err := dst.Collections(ctx)
	if err != nil {
		return rep, fmt.Errorf("read destination collections: %w", err)
	}
	if err := checkEmpty(ctx, dst, existing, opts.Force); err != nil {
		return rep, err
	}
	replaced := map[string]bool{}
	_, err = dst.Write(ctx, func(tx strata.Tx) error {
		for _, c := range cols {
			for _, old := range existing {
				if old.ID == c.ID || strings.EqualFold(old.Name, c.Name) {
					if err := tx.DeleteCollection(ctx, old); err != nil {
						return fmt.Errorf("drop destination collection %q: %w", old.Name, err)
					}
					replaced[c.ID] = true
				}
			}
			if err := tx.CreateCollection(ctx, c); err != nil {
				return fmt.Errorf("create collection %q: %w", c.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	logf("created %d collections", len(cols))

	for _, c := range cols {
		n := 0
		err := src.Scan(ctx, c, opts.Batch, func(page []*strata.Record) error {
			_, err := dst.Write(ctx, func(tx strata.Tx) error {
				for _, r := range page {
					if err := tx.InsertRecord(ctx, r); err != nil {
						return fmt.Errorf("record %q: %w", r.ID(), err)
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			n += len(page)
			if n%(opts.Batch*20) == 0 {
				logf("  %s: %d records so far", c.Name, n)
			}
			return nil
		})
		if err != nil {
			return rep, fmt.Errorf("copy %q: %w", c.Name, err)
		}
		logf("copied %s: %d records", c.Name, n)
	}

	settings, ok, err := src.Setting(ctx, SettingsKey)
	if err != nil {
		return rep, fmt.Errorf("read source settings: %w", err)
	}
	var obj map[string]any
	switch {
	case !ok:
		logf("no settings in the source: the destination keeps its own (or the defaults)")
	case json.Unmarshal(settings, &obj) != nil:
		// PocketBase encrypts settings when PB_ENCRYPTION_KEY is set.
		rep.Skipped = append(rep.Skipped, "settings: not a JSON object (encrypted with PB_ENCRYPTION_KEY?); set them again in the dashboard")
		logf("skipped settings: not a JSON object (encrypted with PB_ENCRYPTION_KEY?)")
		ok = false
	default:
		if _, err := dst.Write(ctx, func(tx strata.Tx) error { return tx.PutSetting(ctx, SettingsKey, settings) }); err != nil {
			return rep, fmt.Errorf("copy settings: %w", err)
		}
		logf("copied settings")
	}

	if err := verify(ctx, src, dst, cols, opts.Batch, rep); err != nil {
		return rep, err
	}
	for i := range rep.Collections {
		rep.Collections[i].Replaced = replaced[rep.Collections[i].ID]
	}
	if ok {
		back, found, err := dst.Setting(ctx, SettingsKey)
		if err != nil {
			return rep, fmt.Errorf("verify settings: %w", err)
		}
		if !found || !sameJSON(settings, back) {
			return rep, fmt.Errorf("%w: settings differ after the copy", ErrMismatch)
		}
		rep.Settings = true
	}
	var bad []string
	for _, c := range rep.Collections {
		if !c.OK() {
			bad = append(bad, c.Name)
		}
	}
	if len(bad) > 0 {
		return rep, fmt.Errorf("%w: %s", ErrMismatch, strings.Join(bad, ", "))
	}
	return rep, nil
}

// checkEmpty refuses a destination with data unless force is set.
func checkEmpty(ctx context.Context, dst strata.Store, existing []*strata.Collection, force bool) error {
	if force {
		return nil
	}
	var busy []string
	for _, c := range existing {
		if !bootstrapped[c.ID] {
			busy = append(busy, c.Name)
			continue
		}
		n, err := dst.CountRecords(ctx, &strata.RecordQuery{Collection: c, Schema: schema(existing)})
		if err != nil {
			return fmt.Errorf("count destination %q: %w", c.Name, err)
		}
		if n > 0 {
			busy = append(busy, fmt.Sprintf("%s (%d records)", c.Name, n))
		}
	}
	if len(busy) > 0 {
		return fmt.Errorf("the destination is not empty (%s); use --force to replace the collections the source has", strings.Join(busy, ", "))
	}
	return nil
}

// schema resolves collections for record queries.
type schema []*strata.Collection

func (s schema) Collection(idOrName string) *strata.Collection {
	for _, c := range s {
		if c.ID == idOrName || strings.EqualFold(c.Name, idOrName) {
			return c
		}
	}
	return nil
}

// verify fills rep.Collections with counts and checksums of both sides.
// The destination is read back through its Store with its own collection
// definitions, so the check covers the full round trip.
func verify(ctx context.Context, src Source, dst strata.Store, cols []*strata.Collection, batch int, rep *Report) error {
	dstCols, err := dst.Collections(ctx)
	if err != nil {
		return fmt.Errorf("verify: read destination collections: %w", err)
	}
	var srcStore strata.Store
	var srcCols []*strata.Collection
	if v, ok := src.(verifier); ok {
		srcStore = v.Store()
		if srcCols, err = srcStore.Collections(ctx); err != nil {
			return fmt.Errorf("verify: read source collections: %w", err)
		}
	}
	for _, c := range cols {
		cr := CollectionReport{ID: c.ID, Name: c.Name}
		var sum Checksum
		if srcStore != nil {
			cr.SourceCount, sum, err = storeChecksum(ctx, srcStore, schema(srcCols), c.ID, batch)
		} else {
			err = src.Scan(ctx, c, batch, func(page []*strata.Record) error {
				for _, r := range page {
					if err := sum.Add(r); err != nil {
						return err
					}
				}
				cr.SourceCount += len(page)
				return nil
			})
		}
		if err != nil {
			return fmt.Errorf("verify %q in the source: %w", c.Name, err)
		}
		cr.SourceCheck = sum.String()
		n, dsum, err := storeChecksum(ctx, dst, schema(dstCols), c.ID, batch)
		if err != nil {
			return fmt.Errorf("verify %q in the destination: %w", c.Name, err)
		}
		cr.DestCount, cr.DestCheck = n, dsum.String()
		rep.Collections = append(rep.Collections, cr)
	}
	return nil
}

// storeChecksum reads every record of a collection through a Store, in id
// order with a keyset (id > last) so each page is an index range.
func storeChecksum(ctx context.Context, st strata.Store, sch schema, id string, batch int) (int, Checksum, error) {
	var sum Checksum
	c := sch.Collection(id)
	if c == nil {
		return 0, sum, fmt.Errorf("collection %s is missing", id)
	}
	total, err := st.CountRecords(ctx, &strata.RecordQuery{Collection: c, Schema: sch})
	if err != nil {
		return 0, sum, err
	}
	n, last := 0, ""
	for {
		q := &strata.RecordQuery{Collection: c, Schema: sch, Sort: "id", Limit: batch}
		if n > 0 {
			q.Filters = []strata.Filter{{Expr: "id > " + filterString(last)}}
		}
		page, err := st.FindRecords(ctx, q)
		if err != nil {
			return 0, sum, err
		}
		for _, r := range page {
			if err := sum.Add(r); err != nil {
				return 0, sum, err
			}
		}
		n += len(page)
		if len(page) < batch {
			break
		}
		last = page[len(page)-1].ID()
	}
	if n != total {
		// Keyset paging and COUNT disagree only if ids are not unique or
		// the table changed while it was read.
		return 0, sum, fmt.Errorf("read %d records of %q but it counts %d", n, c.Name, total)
	}
	return n, sum, nil
}

// filterString quotes s as a filter-language string literal.
func filterString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// Checksum is an order-independent digest of a set of records: the lane-
// wise sum (mod 2^64) of the SHA-256 of each record's canonical encoding.
// Summing rather than hashing a sequence lets both sides be read in any
// order; unlike XOR, a record counted twice does not cancel out.
type Checksum [4]uint64

// Add folds one record into the checksum.
func (s *Checksum) Add(r *strata.Record) error {
	b, err := Canonical(r)
	if err != nil {
		return err
	}
	h := sha256.Sum256(b)
	for i := range s {
		s[i] += binary.BigEndian.Uint64(h[8*i:])
	}
	return nil
}

// String is the checksum in hex.
func (s Checksum) String() string {
	var b [32]byte
	for i, v := range s {
		binary.BigEndian.PutUint64(b[8*i:], v)
	}
	return hex.EncodeToString(b[:])
}

// Canonical is the encoding of a record that both sides of a copy must
// agree on: a JSON object of every field of its collection (hidden ones
// included) with values normalised to what the stores return — JSON
// values decoded, numbers as float64, missing multi-values as [].
func Canonical(r *strata.Record) ([]byte, error) {
	m := make(map[string]any, len(r.Collection.Fields))
	for _, f := range r.Collection.Fields {
		v, err := normalize(f, r.Data[f.Name])
		if err != nil {
			return nil, fmt.Errorf("record %q field %q: %w", r.ID(), f.Name, err)
		}
		m[f.Name] = v
	}
	return json.Marshal(m)
}

func normalize(f *strata.Field, v any) (any, error) {
	switch x := v.(type) {
	case json.RawMessage:
		var out any
		if err := json.Unmarshal(x, &out); err != nil {
			return nil, err
		}
		v = out
	case []byte:
		v = string(x)
	}
	switch f.Type {
	case strata.FieldNumber:
		n, _ := v.(float64)
		if math.IsInf(n, 0) || math.IsNaN(n) {
			return fmt.Sprint(n), nil // encoding/json rejects them
		}
		return n, nil
	case strata.FieldBool:
		b, _ := v.(bool)
		return b, nil
	case strata.FieldJSON, strata.FieldGeoPoint:
		// Round-trip so that maps and numbers encode one way.
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		var out any
		if err := json.Unmarshal(b, &out); err != nil {
			return nil, err
		}
		return out, nil
	}
	if f.IsMultiple() {
		list, _ := v.([]string)
		if list == nil {
			list = []string{}
		}
		return slices.Clone(list), nil
	}
	s, _ := v.(string)
	return s, nil
}

// sameJSON reports whether two JSON documents have equal values.
func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	bx, _ := json.Marshal(x)
	by, _ := json.Marshal(y)
	return string(bx) == string(by)
}
