package realtime_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/realtime"
)

// noFollow is a client that returns redirects instead of following them.
var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// redirect sends the browser's request to /api/oauth2-redirect and returns
// the status and Location.
func (e *env) redirect(method, query string, form url.Values) (int, string) {
	e.tb.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, e.srv.URL+"/api/oauth2-redirect"+query, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := noFollow.Do(req)
	if err != nil {
		e.tb.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode, res.Header.Get("Location")
}

const (
	success = "./oauth2-redirect-success"
	failure = "./oauth2-redirect-failure"
)

func TestOAuth2Redirect(t *testing.T) {
	t.Parallel()
	e := newEnv(t, realtime.Config{})
	s := e.connect()

	// Not subscribed to @oauth2 (yet): nothing is sent, failure page.
	if code, loc := e.redirect("GET", "?state="+s.id+"&code=abc", nil); code != 307 || loc != failure {
		t.Fatalf("unsubscribed: %d %q", code, loc)
	}
	e.subscribe(s, "", "@oauth2")
	if code, loc := e.redirect("GET", "?state="+s.id+"&code=c0de", nil); code != 307 || loc != success {
		t.Fatalf("GET: %d %q", code, loc)
	}
	m := s.next(t)
	if m.event != "@oauth2" || m.id != s.id || m.data != `{"state":"`+s.id+`","code":"c0de"}` {
		t.Fatalf("event %+v", m)
	}
	// One answer per subscription: a replay finds nobody.
	if code, loc := e.redirect("GET", "?state="+s.id+"&code=again", nil); code != 307 || loc != failure {
		t.Fatalf("replay: %d %q", code, loc)
	}
	s.none(t, 100*time.Millisecond)

	// POST (Apple's form_post) answers 303; a provider error reaches the
	// client and lands on the failure page. Numeric-looking values stay
	// strings.
	e.subscribe(s, "", "posts/*", "@oauth2")
	code, loc := e.redirect("POST", "", url.Values{"state": {s.id}, "code": {"12345"}, "user": {`{"name":{"firstName":"A"}}`}})
	if code != 303 || loc != success {
		t.Fatalf("POST: %d %q", code, loc)
	}
	if m := s.next(t); m.data != `{"state":"`+s.id+`","code":"12345"}` {
		t.Fatalf("POST event %s", m.data)
	}
	e.subscribe(s, "", "@oauth2")
	if code, loc := e.redirect("GET", "?state="+s.id+"&error=access_denied", nil); code != 307 || loc != failure {
		t.Fatalf("error: %d %q", code, loc)
	}
	var d map[string]string
	if m := s.next(t); json.Unmarshal([]byte(m.data), &d) != nil || d["error"] != "access_denied" || d["code"] != "" || d["state"] != s.id {
		t.Fatalf("error event %s", m.data)
	}

	// Unknown, missing, malformed or foreign state: failure, never an error.
	other := strings.Repeat("Z", realtime.NodeIDLen) + s.id[realtime.NodeIDLen:]
	if other == s.id {
		other = strings.Repeat("Y", realtime.NodeIDLen) + s.id[realtime.NodeIDLen:]
	}
	for _, q := range []string{"", "?code=x", "?state=nope&code=x", "?state=" + other + "&code=x", "?state=%00&code=x"} {
		if code, loc := e.redirect("GET", q, nil); code != 307 || loc != failure {
			t.Fatalf("%q: %d %q", q, code, loc)
		}
	}
	if code, loc := e.redirect("POST", "", url.Values{"code": {"x"}}); code != 303 || loc != failure {
		t.Fatalf("POST without state: %d %q", code, loc)
	}

	// The landing pages are Strata's own.
	for _, p := range []string{"/api/oauth2-redirect-success", "/api/oauth2-redirect-failure"} {
		res, err := http.Get(e.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(b), "close this window") {
			t.Fatalf("%s: %d %s", p, res.StatusCode, b)
		}
	}
}

func TestSendDirectOtherNode(t *testing.T) {
	t.Parallel()
	hub := realtime.New(nil, nil, realtime.Config{NodeID: "nodeAAAA"})
	c, err := hub.Connect("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := hub.SendDirect("nodeBBBB"+c.ID()[realtime.NodeIDLen:], "@oauth2", "{}", true); got != realtime.OtherNode {
		t.Fatalf("foreign id: %v", got)
	}
	if got := hub.SendDirect(c.ID(), "@oauth2", "{}", true); got != realtime.NoSuchClient {
		t.Fatalf("unsubscribed: %v", got)
	}
	if err := hub.Subscribe(c.ID(), "127.0.0.1", nil, []string{"@oauth2"}); err != nil {
		t.Fatal(err)
	}
	if got := hub.SendDirect(c.ID(), "@oauth2", "{}", true); got != realtime.Delivered {
		t.Fatalf("subscribed: %v", got)
	}
}
