// Package mailer delivers Strata's e-mail: over SMTP when the settings
// enable it, otherwise through a development mailer that keeps each message
// as an .eml file and logs where it is, so that a fresh install shows its
// verification links without any mail server.
package mailer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"html"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/strata-run/strata"
)

// Switch sends through SMTP while the current settings enable it and
// through Dev otherwise. Config is called on every send.
type Switch struct {
	Config func() strata.SMTPConfig
	SMTP   *SMTP
	Dev    *Dev
}

// New returns the mailer a node uses: SMTP from config() when enabled, else
// .eml files under devDir and a log line per message.
func New(config func() strata.SMTPConfig, devDir string, log *slog.Logger) *Switch {
	return &Switch{Config: config, SMTP: &SMTP{Config: config}, Dev: &Dev{Dir: devDir, Log: log}}
}

// Send implements strata.Mailer.
func (s *Switch) Send(ctx context.Context, m *strata.MailMessage) error {
	if s.Config().Enabled {
		return s.SMTP.Send(ctx, m)
	}
	return s.Dev.Send(ctx, m)
}

var (
	tagRe   = regexp.MustCompile(`(?s)<[^>]*>`)
	hrefRe  = regexp.MustCompile(`(?i)<a\s[^>]*href="([^"]*)"[^>]*>`)
	blankRe = regexp.MustCompile(`\n{3,}`)
)

// plainText derives a text body from HTML: links keep their target, tags go.
func plainText(h string) string {
	t := hrefRe.ReplaceAllString(h, "$1 ")
	t = strings.NewReplacer("<br>", "\n", "<br/>", "\n", "<br />", "\n", "</p>", "\n\n").Replace(t)
	t = tagRe.ReplaceAllString(t, "")
	t = html.UnescapeString(t)
	return strings.TrimSpace(blankRe.ReplaceAllString(t, "\n\n"))
}

// noCRLF keeps a header value on one line: header injection is impossible
// whatever a template or record contains.
func noCRLF(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

// build renders m as an RFC 5322 message with a text and an HTML part.
func build(m *strata.MailMessage) ([]byte, error) {
	if len(m.To) == 0 {
		return nil, fmt.Errorf("mail without recipients")
	}
	var b bytes.Buffer
	var idb [12]byte
	rand.Read(idb[:])
	boundary := "strata-" + hex.EncodeToString(idb[:])
	to := make([]string, len(m.To))
	for i, a := range m.To {
		to[i] = noCRLF(a.String())
	}
	host := "strata.local"
	if at := strings.LastIndexByte(m.From.Address, '@'); at >= 0 {
		host = noCRLF(m.From.Address[at+1:])
	}
	fmt.Fprintf(&b, "From: %s\r\n", noCRLF(m.From.String()))
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(to, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", noCRLF(m.Subject)))
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().UTC().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", hex.EncodeToString(idb[:]), host)
	b.WriteString("MIME-Version: 1.0\r\n")
	fmt.Fprintf(&b, "Content-Type: multipart/alternative; boundary=%q\r\n\r\n", boundary)
	text := m.Text
	if text == "" {
		text = plainText(m.HTML)
	}
	for _, part := range []struct{ ct, body string }{{"text/plain", text}, {"text/html", m.HTML}} {
		fmt.Fprintf(&b, "--%s\r\nContent-Type: %s; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", boundary, part.ct)
		qp := quotedprintable.NewWriter(&b)
		if _, err := qp.Write([]byte(part.body)); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes(), nil
}

func recipients(m *strata.MailMessage) []string {
	out := make([]string, len(m.To))
	for i, a := range m.To {
		out[i] = a.Address
	}
	return out
}

// validAddress rejects addresses net/smtp would pass on verbatim.
func validAddress(a string) bool {
	if strings.ContainsAny(a, "\r\n<>") {
		return false
	}
	_, err := mail.ParseAddress(a)
	return err == nil
}
