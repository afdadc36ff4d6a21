// Package prometheus holds Strata's Prometheus alert rules; its test checks
// them with promtool and against the metrics Strata exports.
package prometheus

import (
	"os"
	"os/exec"
	"regexp"
	"testing"
)

// exported lists metric families Strata registers (api, store/sqlite,
// cache, sqlite.LogStore, guard) that alerts.yml may use.
var (
	exported = map[string]bool{
		"strata_http_requests_total": true, "strata_http_request_duration_seconds_bucket": true,
		"strata_http_requests_in_flight": true, "strata_store_write_queue_length": true,
		"strata_store_pool_wait_total": true, "strata_logs_dropped_total": true,
		// store/postgres (deploy/scrape_test.go checks them in a real scrape)
		"strata_store_replica_lag_seconds": true, "strata_store_replica_max_lag_seconds": true,
		"strata_store_replica_up": true,
		// guard (../scrape_test.go finds it in a real scrape)
		"strata_guard_shed_total": true,
	}
)

func TestAlertRules(t *testing.T) {
	// CI installs promtool (scripts/ensure-services.sh): a missing one is a
	// failure, never a skip.
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (run scripts/ensure-services.sh): %v", err)
	}
	out, err := exec.Command(promtool, "check", "rules", "alerts.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	raw, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range regexp.MustCompile(`strata_[a-z_]+`).FindAllString(string(raw), -1) {
		if !exported[name] {
			t.Errorf("alerts.yml uses %s, which Strata does not export", name)
		}
	}
}

// TestAlertRuleUnitTests runs alerts_test.yml: each rule fires on the
// series it is meant for, after its "for", and on no other.
func TestAlertRuleUnitTests(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (run scripts/ensure-services.sh): %v", err)
	}
	out, err := exec.Command(promtool, "test", "rules", "alerts_test.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}
