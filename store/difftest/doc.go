// Package difftest holds the differential test of the two stores: the same
// generated filters and sorts run on SQLite and on PostgreSQL over the same
// data must return the same records (issue 6). SQLite is the reference, as
// PocketBase runs on it; filter.Eval is consulted when reporting a
// difference. The package has no non-test code besides this comment.
package difftest
