package api_test

import (
	"bufio"
	"bytes"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/api"
	"github.com/strata-run/strata/guard"
)

// slowPost sends a create's headers and the first half of its body, and
// returns the connection and the rest of the body.
func slowPost(t *testing.T, ts *testServer) (net.Conn, string) {
	t.Helper()
	c, err := net.Dial("tcp", ts.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	body := `{"title":"sent slowly"}`
	head := "POST /api/collections/posts/records HTTP/1.1\r\nHost: strata.test\r\nContent-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	if _, err := c.Write([]byte(head + body[:10])); err != nil {
		t.Fatal(err)
	}
	return c, body[10:]
}

// A client that sends its body slowly must not hold a concurrency slot
// while it does: with the limit at its floor, a few such clients would
// shut the node to everyone else.
func TestSlowBodyHoldsNoSlot(t *testing.T) {
	base := newTestServer(t)
	id := postsFixture(base)
	conc := guard.NewConcurrency(guard.ConcurrencyOptions{InitialLimit: 1, MinLimit: 1, MaxLimit: 1, MaxWait: 20 * time.Millisecond})
	ts := guarded(base, api.Options{Concurrency: conc, RequestTimeout: time.Minute})

	c, rest := slowPost(t, ts)
	time.Sleep(200 * time.Millisecond) // the server reads the headers and waits for the body
	ts.do("GET", "/api/collections/posts/records/"+id, "", nil).status(200)
	ts.do("POST", "/api/collections/posts/records", "", map[string]any{"title": "fast"}).status(200)

	// Once the body is in, the slow request is served.
	if _, err := c.Write([]byte(rest)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("slow create: %d", res.StatusCode)
	}
	ts.do("GET", "/api/collections/posts/records?filter="+url.QueryEscape("title='sent slowly'"), "", nil).status(200).expect("totalItems", 1)
	if n := conc.InFlight(); n != 0 {
		t.Fatalf("%d slots leaked", n)
	}
}

// A body that has not arrived by the request's deadline ends the request
// with a 400 then, not at the server's 5-minute read timeout.
func TestSlowBodyEndsAtTheRequestDeadline(t *testing.T) {
	base := newTestServer(t)
	postsFixture(base)
	conc := guard.NewConcurrency(guard.ConcurrencyOptions{})
	ts := guarded(base, api.Options{Concurrency: conc, RequestTimeout: 300 * time.Millisecond})

	c, _ := slowPost(t, ts)
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer after %v: %v", time.Since(start), err)
	}
	defer res.Body.Close()
	var msg strings.Builder
	bufio.NewReader(res.Body).WriteTo(&msg)
	if res.StatusCode != 400 || !strings.Contains(msg.String(), "did not arrive") {
		t.Fatalf("slow body: %d %s", res.StatusCode, msg.String())
	}
	if n := conc.InFlight(); n != 0 {
		t.Fatalf("%d slots leaked", n)
	}
	// A request on a fresh connection is not affected.
	ts.do("POST", "/api/collections/posts/records", "", map[string]any{"title": "fast"}).status(200)

	// Superusers hold no slot: their bodies keep the server's read
	// timeout. A backup upload may take longer than a request's deadline.
	var upload bytes.Buffer
	mw := multipart.NewWriter(&upload)
	fw, _ := mw.CreateFormFile("file", "slow.zip")
	fw.Write(bytes.Repeat([]byte("z"), 4096))
	mw.Close()
	c, err = net.Dial("tcp", ts.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	head := "POST /api/backups/upload HTTP/1.1\r\nHost: strata.test\r\nAuthorization: " + ts.suToken +
		"\r\nContent-Type: " + mw.FormDataContentType() + "\r\nContent-Length: " + strconv.Itoa(upload.Len()) + "\r\n\r\n"
	c.Write(append([]byte(head), upload.Bytes()[:100]...))
	time.Sleep(500 * time.Millisecond) // past the 300 ms deadline
	c.Write(upload.Bytes()[100:])
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if res, err = http.ReadResponse(bufio.NewReader(c), nil); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 204 {
		t.Fatalf("superuser's slow backup upload: %d", res.StatusCode)
	}
}
