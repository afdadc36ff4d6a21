package postgres

import (
	"fmt"
	"strings"
)

// PgBouncer in transaction mode (docs/pgbouncer.md).
//
// The store needs no session state: advisory locks are transaction-scoped
// (pg_advisory_xact_lock), there is no LISTEN, no SET, no temporary table,
// and the write token is the primary's global WAL position, readable on any
// server connection. Two things do depend on the session, and are settled
// in the DSN and pgbouncer.ini rather than in code:
//
//   - pgx's default statement cache prepares named statements on one server
//     connection and runs them later, maybe on another: the DSN must say
//     default_query_exec_mode=exec (one round trip per query, with an
//     unnamed statement, so a query never spans two server connections).
//   - Startup parameters (search_path, and the statement_timeout this store
//     sends) are not passed on by PgBouncer before 1.20: they go into the
//     database's connect_query, and statement_timeout into
//     ignore_startup_parameters.

// pgbouncerHint points a connection error that only a pooler gives to the
// documentation that fixes it.
func pgbouncerHint(err error) error {
	if strings.Contains(err.Error(), "unsupported startup parameter") {
		return fmt.Errorf("%w (behind PgBouncer: set search_path and statement_timeout in the database's connect_query and list statement_timeout in ignore_startup_parameters, see docs/pgbouncer.md)", err)
	}
	return err
}
