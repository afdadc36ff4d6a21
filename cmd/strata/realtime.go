package main

import (
	"context"
	"log/slog"

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
	hub := realtime.New(app, app.Bus(), realtime.Config{Logger: log})
	s.EnableRealtime(hub)
	go hub.Run(ctx)
	return s
}
