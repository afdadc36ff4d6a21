package api_test

import (
	"bufio"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"testing"
	"time"
)

// smtpSink is a loopback SMTP server that accepts every message (enough of
// RFC 5321 for net/smtp: EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT) and hands
// them to the test parsed.
type smtpSink struct {
	ln    net.Listener
	mails chan *sunkMail
	// auths records the AUTH PLAIN credentials seen ("user:pass").
	auths chan string
}

// sunkMail is one received message.
type sunkMail struct {
	To      []string
	Subject string
	HTML    string
	Text    string
}

func newSMTPSink(tb testing.TB) *smtpSink {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &smtpSink{ln: ln, mails: make(chan *sunkMail, 64), auths: make(chan string, 64)}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(tb, c)
		}
	}()
	return s
}

func (s *smtpSink) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *smtpSink) serve(tb testing.TB, c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	say := func(line string) { io.WriteString(c, line+"\r\n") }
	say("220 sink ESMTP")
	var rcpts []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			say("250-sink")
			say("250 AUTH PLAIN")
		case strings.HasPrefix(cmd, "HELO"):
			say("250 sink")
		case strings.HasPrefix(cmd, "AUTH PLAIN"):
			raw, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(line)[len("AUTH PLAIN "):])
			parts := strings.Split(string(raw), "\x00")
			if len(parts) == 3 {
				s.auths <- parts[1] + ":" + parts[2]
			}
			say("235 ok")
		case strings.HasPrefix(cmd, "MAIL FROM"):
			rcpts = nil
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO"):
			rcpts = append(rcpts, strings.Trim(strings.TrimSpace(line)[len("RCPT TO:"):], "<>"))
			say("250 ok")
		case cmd == "DATA":
			say("354 go ahead")
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(strings.TrimPrefix(l, "."))
			}
			m, err := parseMail(data.String())
			if err != nil {
				tb.Errorf("smtp sink: %v", err)
				say("554 bad message")
				continue
			}
			m.To = rcpts
			s.mails <- m
			say("250 queued")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("250 ok")
		}
	}
}

func parseMail(raw string) (*sunkMail, error) {
	msg, err := mail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		return nil, err
	}
	dec := new(mime.WordDecoder)
	subj, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return nil, err
	}
	out := &sunkMail{Subject: subj}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return nil, err
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(quotedprintable.NewReader(p))
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") {
			out.HTML = string(body)
		} else {
			out.Text = string(body)
		}
	}
	return out, nil
}

// next waits for the next mail.
func (s *smtpSink) next(tb testing.TB) *sunkMail {
	tb.Helper()
	select {
	case m := <-s.mails:
		return m
	case <-time.After(10 * time.Second):
		tb.Fatal("no mail arrived")
		return nil
	}
}

// none asserts that no mail arrives for a moment.
func (s *smtpSink) none(tb testing.TB) {
	tb.Helper()
	select {
	case m := <-s.mails:
		tb.Fatalf("unexpected mail to %v: %q", m.To, m.Subject)
	case <-time.After(300 * time.Millisecond):
	}
}

// link returns the token at the end of the first link with path part in
// the mail's HTML body.
func (m *sunkMail) link(tb testing.TB, part string) string {
	tb.Helper()
	re := regexp.MustCompile(`href="[^"]*/` + regexp.QuoteMeta(part) + `/([^"]+)"`)
	g := re.FindStringSubmatch(m.HTML)
	if g == nil {
		tb.Fatalf("no %s link in mail: %s", part, m.HTML)
	}
	return g[1]
}
