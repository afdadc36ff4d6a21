package main

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/strata-run/strata/cache"
	"github.com/strata-run/strata/service"
)

// enableListCache chains the shared list cache to the node's record cache,
// which every committed write invalidates before it is answered.
func enableListCache(app *service.App, rc redis.UniversalClient, ttl time.Duration, log *slog.Logger, reg prometheus.Registerer) {
	records, ok := app.RecordCache().(*cache.Records)
	if !ok {
		log.Warn("list cache: no record cache to chain to; lists are not cached")
		return
	}
	records.SetLists(cache.NewLists(rc, cache.ListOptions{TTL: ttl, Logger: log, Registerer: reg}))
	log.Info("list cache on", "ttl", ttl)
}
