package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/strata-run/strata/store/migrate"
	"github.com/strata-run/strata/store/postgres"
)

// runMigrate is `strata migrate --from DIR --db postgres://…`: it copies a
// Strata strata_data or a PocketBase pb_data (v0.23+) into PostgreSQL and
// verifies the copy by row counts and checksums (docs/migrate.md).
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", envOr("STRATA_DIR", "./strata_data"), "strata_data or pb_data directory (or its data.db) to copy from (env STRATA_DIR)")
	db := fs.String("db", envOr("STRATA_DB", ""), "postgres:// URL to copy into (env STRATA_DB)")
	batch := fs.Int("batch", migrate.DefaultBatch, "records per transaction")
	force := fs.Bool("force", false, "copy into a database that already holds data: the source's collections replace those with the same id or name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("migrate: unexpected argument %q", fs.Arg(0))
	}
	if !strings.HasPrefix(*db, "postgres://") && !strings.HasPrefix(*db, "postgresql://") {
		return errors.New("migrate: --db postgres://… is required (the database to copy into)")
	}
	if *batch < 1 || *batch > 100000 {
		return fmt.Errorf("migrate: --batch must be between 1 and 100000, got %d", *batch)
	}
	src, err := migrate.Open(ctx, *from)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer src.Close()
	dst, err := postgres.Open(ctx, *db, postgres.Options{})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer dst.Close()

	fmt.Fprintf(stdout, "Copying %s database %s into PostgreSQL\n", src.Kind(), *from)
	rep, err := migrate.Copy(ctx, src, dst, migrate.Options{Batch: *batch, Force: *force, Log: stdout})
	if rep != nil && len(rep.Collections) > 0 {
		printVerification(stdout, rep)
	}
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	fmt.Fprintln(stdout, "Verified: every collection has the same records on both sides.")
	fmt.Fprintln(stdout, "Start Strata on the copy with: strata serve --db <the same URL>")
	return nil
}

// printVerification writes the per-collection counts and checksums.
func printVerification(w io.Writer, rep *migrate.Report) {
	fmt.Fprintln(w, "\nVerification:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "collection\tsource\tdestination\tchecksum\tresult")
	for _, c := range rep.Collections {
		result, sum := "ok", c.SourceCheck[:16]
		if !c.OK() {
			result, sum = "MISMATCH", c.SourceCheck[:16]+" ≠ "+c.DestCheck[:16]
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", c.Name, c.SourceCount, c.DestCount, sum, result)
	}
	tw.Flush()
	if rep.Settings {
		fmt.Fprintln(w, "settings: copied and read back equal")
	}
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "not copied: %s\n", s)
	}
}
