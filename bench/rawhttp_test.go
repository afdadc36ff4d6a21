package bench

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRawConn(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			w.Write([]byte(`{"ok":true}`)) // Content-Length
		case "/big":
			w.WriteHeader(503)
			w.Write([]byte(strings.Repeat("x", 100_000))) // chunked
			w.(http.Flusher).Flush()
			w.Write([]byte("tail"))
		case "/close":
			w.Header().Set("Connection", "close")
			w.Write([]byte("bye"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	rc, err := newRawConn(srv.URL, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.close()
	for _, c := range []struct {
		path   string
		status int
	}{{"/small", 200}, {"/big", 503}, {"/small", 200}, {"/close", 200}, {"/small", 200}, {"/missing", 404}} {
		status, err := rc.get(c.path)
		if err != nil || status != c.status {
			t.Fatalf("GET %s: %d %v, want %d", c.path, status, err, c.status)
		}
	}
}

func TestRawConnMalformed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			bufio.NewReader(c).ReadString('\n')
			c.Write([]byte("SMTP ready\r\n\r\n"))
			c.Close()
		}
	}()
	rc, err := newRawConn("http://"+ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.get("/"); err == nil {
		t.Fatal("a response that is not HTTP was accepted")
	}
	if rc.c != nil {
		t.Fatal("the connection stayed open after a malformed response")
	}
	if _, err := newRawConn("https://example.com", time.Second); err == nil {
		t.Fatal("https accepted")
	}
}
