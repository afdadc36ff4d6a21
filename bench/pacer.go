package bench

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Pacer schedules open-loop sends at a constant rate: request i is due at
// Offset(i) after the start, whatever happened to earlier requests. The
// latency of a request is measured from that due time, so a server that
// stalls is charged for every request it delayed (no coordinated omission).
type Pacer struct {
	Rate float64 // requests per second, > 0
}

// Offset is when request i (from 0) is due, relative to the start.
func (p Pacer) Offset(i int64) time.Duration {
	return time.Duration(float64(i) * float64(time.Second) / p.Rate)
}

// Due is how many requests are due by elapsed (Offset(i) <= elapsed).
func (p Pacer) Due(elapsed time.Duration) int64 {
	if elapsed < 0 {
		return 0
	}
	return int64(elapsed.Seconds()*p.Rate) + 1
}

// ParseRate reads "2000/s", "2000", "120/m" or "5/100ms" as requests per second.
func ParseRate(s string) (float64, error) {
	num, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("rate %q: want a positive number of requests, e.g. 2000/s", s)
	}
	if !ok {
		return n, nil
	}
	var d time.Duration
	switch per {
	case "s", "":
		d = time.Second
	case "m":
		d = time.Minute
	case "h":
		d = time.Hour
	default:
		if d, err = time.ParseDuration(per); err != nil || d <= 0 {
			return 0, fmt.Errorf("rate %q: unknown unit %q", s, per)
		}
	}
	return n / d.Seconds(), nil
}
