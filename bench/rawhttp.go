package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// rawConn is one keep-alive HTTP/1.1 connection that sends prebuilt
// requests and discards the answers. The spike generator shares the
// server's cores, so every microsecond it spends per request is taken from
// the server under test: net/http's client costs ~100 µs of CPU per request
// here (a read and a write goroutine per connection, header maps, channels),
// this costs a write, a read or two and a header scan — what wrk does.
// It speaks only what Strata and PocketBase answer: Content-Length or
// chunked bodies, over plain TCP.
type rawConn struct {
	addr, host string
	timeout    time.Duration
	c          net.Conn
	br         *bufio.Reader
	req        []byte
}

func newRawConn(base string, timeout time.Duration) (*rawConn, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("raw client: want an http:// URL, got %q", base)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return &rawConn{addr: addr, host: u.Host, timeout: timeout}, nil
}

// get sends GET path and returns the status once the body is read. On any
// error the connection is closed; the next call dials again.
func (rc *rawConn) get(path string) (int, error) {
	if rc.c == nil {
		c, err := net.DialTimeout("tcp", rc.addr, rc.timeout)
		if err != nil {
			return 0, err
		}
		rc.c = c
		if rc.br == nil {
			rc.br = bufio.NewReaderSize(c, 16<<10)
		} else {
			rc.br.Reset(c)
		}
	}
	rc.req = append(rc.req[:0], "GET "...)
	rc.req = append(rc.req, path...)
	rc.req = append(rc.req, " HTTP/1.1\r\nHost: "...)
	rc.req = append(rc.req, rc.host...)
	rc.req = append(rc.req, "\r\nUser-Agent: strata-bench\r\n\r\n"...)
	rc.c.SetDeadline(time.Now().Add(rc.timeout))
	status, keep, err := rc.exchange()
	if err != nil || !keep {
		rc.c.Close()
		rc.c = nil
	}
	return status, err
}

var errMalformed = errors.New("raw client: malformed response")

func (rc *rawConn) exchange() (status int, keep bool, err error) {
	if _, err := rc.c.Write(rc.req); err != nil {
		return 0, false, err
	}
	line, err := rc.line()
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, errMalformed
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, errMalformed
	}
	length, chunked, keep := -1, false, true
	for {
		h, err := rc.line()
		if err != nil {
			return status, false, err
		}
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return status, false, errMalformed
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return status, false, errMalformed
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			keep = !bytes.EqualFold(value, []byte("close"))
		}
	}
	switch {
	case chunked:
		err = rc.discardChunked()
	case length >= 0:
		_, err = rc.br.Discard(length)
	default:
		// No length: the body runs to the end of the connection.
		_, err = io.Copy(io.Discard, rc.br)
		keep = false
	}
	return status, keep, err
}

// line reads one CRLF-terminated line without the CRLF. The slice is only
// valid until the next read.
func (rc *rawConn) line() ([]byte, error) {
	l, err := rc.br.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(l, "\r\n"), nil
}

func (rc *rawConn) discardChunked() error {
	for {
		l, err := rc.line()
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(l, []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			return errMalformed
		}
		if n == 0 {
			// Trailers, then the empty line.
			for {
				t, err := rc.line()
				if err != nil {
					return err
				}
				if len(t) == 0 {
					return nil
				}
			}
		}
		if _, err := rc.br.Discard(int(n)); err != nil {
			return err
		}
		if _, err := rc.line(); err != nil {
			return err
		}
	}
}

func (rc *rawConn) close() {
	if rc.c != nil {
		rc.c.Close()
		rc.c = nil
	}
}
