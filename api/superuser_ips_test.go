package api_test

import (
	"net/http"
	"testing"
)

func TestSuperuserIPs(t *testing.T) {
	ts := newTestServer(t)
	ts.su("PATCH", "/api/settings", map[string]any{"superuserIPs": []string{"not an ip"}}).status(400).
		expect("data.superuserIPs.0.code", "validation_invalid_ip")
	// Allowed from loopback: the test client connects from 127.0.0.1.
	ts.su("PATCH", "/api/settings", map[string]any{"superuserIPs": []string{"10.0.0.0/8", "127.0.0.1"}}).status(200)
	ts.su("GET", "/api/settings", nil).status(200)
	// Any other IP only: superuser requests are refused, guests are not affected.
	ts.su("PATCH", "/api/settings", map[string]any{"superuserIPs": []string{"192.0.2.1"}}).status(200)
	ts.su("GET", "/api/settings", nil).status(403)
	ts.do("GET", "/api/health", "", nil).status(200)
	// A spoofed X-Forwarded-For does not help: no trusted proxy is configured.
	req, _ := http.NewRequest("GET", ts.srv.URL+"/api/settings", nil)
	req.Header.Set("Authorization", ts.suToken)
	req.Header.Set("X-Forwarded-For", "192.0.2.1")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 403 {
		t.Fatalf("spoofed X-Forwarded-For: status %d, want 403", res.StatusCode)
	}
}
