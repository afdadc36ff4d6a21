package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeTransportLimits drives the server serve builds, not a test
// server: oversized headers are refused, and a body that does not arrive
// by the request's deadline ends the request then.
func TestServeTransportLimits(t *testing.T) {
	ready := make(chan string, 1)
	cmd := &serveCommand{stdout: io.Discard, stderr: io.Discard, ready: ready}
	if err := cmd.parse([]string{"--http", "127.0.0.1:0", "--request-timeout", "500ms", "--drain-delay", "0s", "--dir", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	addr := <-ready

	req, _ := http.NewRequest("GET", "http://"+addr+"/api/health", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 2<<20))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("2 MiB header: %d", res.StatusCode)
	}

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.Write([]byte("POST /api/collections/users/records HTTP/1.1\r\nHost: strata.test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"em"))
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	res, err = http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("slow body: no answer after %v: %v", time.Since(start), err)
	}
	res.Body.Close()
	if res.StatusCode != 400 || time.Since(start) > 10*time.Second {
		t.Fatalf("slow body: %d after %v, want 400 at the 500ms deadline", res.StatusCode, time.Since(start))
	}
}
