package main

import (
	"context"
	"log/slog"
	"os"
	"strconv"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/api"
	"github.com/strata-run/strata/bus/memory"
	"github.com/strata-run/strata/realtime"
	"github.com/strata-run/strata/service"
)

// newBus returns the node's bus: in process while Strata runs on one node.
func newBus() strata.Bus { return memory.New() }

// withRealtime runs the realtime hub on app's bus until ctx ends (then
// every stream is told to reconnect and closed, so that shutdown does not
// wait on them) and serves /api/realtime from s.
func withRealtime(ctx context.Context, app *service.App, s *api.Server, log *slog.Logger) *api.Server {
	if app.Bus() == nil {
		return s
	}
	cfg := realtime.Config{Logger: log}
	// STRATA_REALTIME_CLIENTS_PER_IP raises (or, negative, lifts) the
	// per-address stream limit: a local load generator is one address.
	if v := os.Getenv("STRATA_REALTIME_CLIENTS_PER_IP"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			log.Warn("ignoring STRATA_REALTIME_CLIENTS_PER_IP", "value", v)
		} else {
			cfg.MaxClientsPerIP = n
		}
	}
	hub := realtime.New(app, app.Bus(), cfg)
	s.EnableRealtime(hub)
	go hub.Run(ctx)
	return s
}
