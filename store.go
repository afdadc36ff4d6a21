package strata

import (
	"context"
	"encoding/json"
	"time"
)

// Request contexts a rule can test with @request.context.
const (
	ContextDefault       = "default"
	ContextOAuth2        = "oauth2"
	ContextOTP           = "otp"
	ContextPassword      = "password"
	ContextRealtime      = "realtime"
	ContextProtectedFile = "protectedFile"
	ContextBatch         = "batch"
	ContextExpand        = "expand"
)

// RequestInfo is what rules see as @request: the caller and what it sent.
type RequestInfo struct {
	Auth    *Record           // nil for guests
	Method  string            // HTTP method, upper case
	Context string            // one of the Context* constants
	Query   map[string]string // first value of each query parameter
	Headers map[string]string // lower-case keys, "-" replaced by "_"
	// Body holds the submitted values after modifiers are applied; BodyKeys
	// lists the keys that were actually sent (for :isset / :changed).
	Body map[string]any
}

// IsSuperuser reports whether the caller signed in as a superuser.
func (r *RequestInfo) IsSuperuser() bool {
	return r != nil && r.Auth != nil && r.Auth.Collection.IsSuperusers()
}

// Filter is one filter expression to AND into a query. Restricted marks a
// client-supplied filter: it may not use @collection, @request or hidden
// fields (API.md §5.3); rules are unrestricted.
type Filter struct {
	Expr       string
	Restricted bool
}

// RecordQuery selects records of one collection. Every condition is ANDed.
type RecordQuery struct {
	Collection *Collection
	Schema     Schema
	Request    *RequestInfo // what @request.* resolves to
	Filters    []Filter
	// IDs restricts the result to these record ids when non-nil.
	IDs []string
	// RelationField, with RelationIDs, keeps records whose relation field
	// (single or multiple) holds any of RelationIDs: back-relation expands.
	RelationField string
	RelationIDs   []string
	// Equal keeps records whose named fields equal the given values exactly.
	Equal map[string]any
	// EqualFold is like Equal but ASCII case-insensitive (email look-ups).
	EqualFold map[string]string
	Sort      string // PocketBase sort syntax: "-created,title"
	// SortRestricted marks a client-supplied sort (same limits as a
	// restricted Filter).
	SortRestricted bool
	Limit          int // 0 = no limit
	Offset         int
	// Snapshot, when non-nil, is read in place of the collection's table:
	// every condition applies to these rows (e.g. records already deleted,
	// as the change log kept them) as to stored rows, while relations,
	// back-relations and @collection still read the live tables. It is how
	// a rule is checked for a deleted record. Ids should be distinct, so
	// that results can be told apart; results come in Snapshot order
	// unless Sort says otherwise.
	Snapshot []*Record
}

// Change is one entry of the change log, written in the same transaction as
// the record change it describes. Seq is assigned by the store in commit
// order. Record holds the stored row (after the change; before it for a
// delete) as JSON with every field, hidden ones included.
type Change struct {
	Seq            int64           `json:"seq"`
	CollectionID   string          `json:"collectionId"`
	CollectionName string          `json:"collectionName"`
	RecordID       string          `json:"recordId"`
	Action         string          `json:"action"` // create, update or delete
	Time           time.Time       `json:"time"`
	Record         json.RawMessage `json:"record"`
}

// Change actions.
const (
	ActionCreate = "create"
	ActionUpdate = "update"
	ActionDelete = "delete"
)

// Reader is the read side of a store, shared by Store and Tx.
type Reader interface {
	// FindRecords returns the records matching q, in q.Sort order.
	FindRecords(ctx context.Context, q *RecordQuery) ([]*Record, error)
	// CountRecords returns how many records match q (ignoring sort and paging).
	CountRecords(ctx context.Context, q *RecordQuery) (int, error)
	// Setting reads one settings document; ok is false when it was never written.
	Setting(ctx context.Context, key string) (value json.RawMessage, ok bool, err error)
	// Changes returns change-log entries with Seq > after, oldest first.
	Changes(ctx context.Context, after int64, limit int) ([]Change, error)
}

// Store persists collections, records, settings and the change log.
// Implementations translate driver errors to *Error at their boundary: a
// unique-index violation is an EInvalid with validation_not_unique per field.
type Store interface {
	Reader
	// Collections loads every collection definition.
	Collections(ctx context.Context) ([]*Collection, error)
	// LastChangeSeq is the Seq of the newest change-log entry (0 when the
	// log is empty): where a new follower of the log starts.
	LastChangeSeq(ctx context.Context) (int64, error)
	// PruneChanges deletes up to max of the oldest change-log entries
	// written before before, and returns how many it deleted. It never
	// deletes the newest entry, so sequence numbers never go back.
	PruneChanges(ctx context.Context, before time.Time, max int) (int, error)
	// Write runs fn in one transaction and returns the change-log entries
	// it appended, after commit. If fn returns an error nothing is written.
	Write(ctx context.Context, fn func(Tx) error) ([]Change, error)
	// Close releases connections.
	Close() error
}

// Tx is a write transaction. Reads through it see its own writes.
type Tx interface {
	Reader
	CreateCollection(ctx context.Context, c *Collection) error
	// UpdateCollection migrates the table of old to the definition of c
	// (same id), keeping the data of fields present in both.
	UpdateCollection(ctx context.Context, old, c *Collection) error
	DeleteCollection(ctx context.Context, c *Collection) error
	// TruncateCollection deletes every record of c, logging each deletion.
	TruncateCollection(ctx context.Context, c *Collection) error

	InsertRecord(ctx context.Context, r *Record) error
	UpdateRecord(ctx context.Context, r *Record) error
	// DeleteRecord deletes r (as read before the delete, for the log).
	DeleteRecord(ctx context.Context, r *Record) error

	PutSetting(ctx context.Context, key string, value json.RawMessage) error
}

// RecordCache keeps recently read records by collection and id so that hot
// reads skip the store. It holds data only: callers check rules on every
// read. Implementations are safe for concurrent use.
type RecordCache interface {
	// Get returns a cached record; callers must not modify it.
	Get(collectionID, id string) (*Record, bool)
	// Generation is read before loading a record from the store and
	// passed to Fill, which drops the record if an invalidation happened
	// in between (the load may have seen data older than that write).
	Generation() uint64
	Fill(collectionID, id string, r *Record, gen uint64)
	// Invalidate drops the records named by committed changes.
	Invalidate(changes []Change)
	// Purge drops everything (schema changes).
	Purge()
}
