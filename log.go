package strata

import (
	"context"
	"time"
)

// Log levels, as slog numbers them and PocketBase stores them.
const (
	LogDebug = -4
	LogInfo  = 0
	LogWarn  = 4
	LogError = 8
)

// Log is one entry of the request log that PocketBase's /api/logs serves.
type Log struct {
	ID      string         `json:"id"`
	Created time.Time      `json:"created"`
	Level   int            `json:"level"`
	Message string         `json:"message"`
	Data    map[string]any `json:"data"`
	// RawData, when set, is Data already encoded as a JSON object; writers
	// on a hot path (one entry per request) set it instead of Data.
	RawData []byte `json:"-"`
}

// LogQuery selects logs with PocketBase's filter and sort syntax over id,
// created, level, message and data.*.
type LogQuery struct {
	Filter string
	Sort   string // default "-created"
	Limit  int
	Offset int
}

// LogStat is the number of logs in the hour starting at Date.
type LogStat struct {
	Date  time.Time
	Total int
}

// LogStore keeps the request log apart from the data, bounded in size.
type LogStore interface {
	// Add queues l for writing and never blocks: when the queue is full
	// the entry is dropped and counted.
	Add(l Log)
	FindLogs(ctx context.Context, q LogQuery) ([]Log, error)
	CountLogs(ctx context.Context, filter string) (int, error)
	// LogStats counts the logs matching filter per hour, oldest first.
	LogStats(ctx context.Context, filter string) ([]LogStat, error)
	// Prune deletes logs created before t and returns how many.
	Prune(ctx context.Context, before time.Time) (int64, error)
}
