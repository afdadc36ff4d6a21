package mailer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"strconv"
	"strings"
	"time"

	"github.com/strata-run/strata"
)

// SMTP sends through the server Config names, dialled afresh per message
// (mail is rare next to requests; a fresh connection picks up settings
// changes and never holds a stale session).
type SMTP struct {
	Config func() strata.SMTPConfig
	// TLSConfig, if set, is used for STARTTLS and implicit TLS (tests use
	// it to trust their own certificate). ServerName defaults to Host.
	TLSConfig *tls.Config
}

// defaultTimeout bounds a send whose context has no deadline.
const defaultTimeout = 30 * time.Second

// Send implements strata.Mailer.
func (s *SMTP) Send(ctx context.Context, m *strata.MailMessage) error {
	cfg := s.Config()
	if cfg.Host == "" || cfg.Port <= 0 {
		return errors.New("smtp: host and port are not configured")
	}
	if !validAddress(m.From.Address) {
		return fmt.Errorf("smtp: invalid sender address")
	}
	for _, a := range m.To {
		if !validAddress(a.Address) {
			return fmt.Errorf("smtp: invalid recipient address")
		}
	}
	raw, err := build(m)
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout)
		defer cancel()
	}
	if err := s.send(ctx, cfg, m, raw); err != nil {
		return fmt.Errorf("smtp %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	return nil
}

func (s *SMTP) tlsConfig(host string) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.TLSConfig != nil {
		c = s.TLSConfig.Clone()
	}
	if c.ServerName == "" {
		c.ServerName = host
	}
	return c
}

func (s *SMTP) send(ctx context.Context, cfg strata.SMTPConfig, m *strata.MailMessage, raw []byte) error {
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	// The whole conversation shares the context's deadline; cancelling the
	// context closes the connection so a stuck server cannot hold us.
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if cfg.TLS {
		tc := tls.Client(conn, s.tlsConfig(cfg.Host))
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return err
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, cfg.Host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if cfg.LocalName != "" {
		if err := c.Hello(cfg.LocalName); err != nil {
			return err
		}
	}
	if !cfg.TLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(s.tlsConfig(cfg.Host)); err != nil {
				return err
			}
		}
	}
	if cfg.Username != "" {
		var auth smtp.Auth
		switch strings.ToUpper(cfg.AuthMethod) {
		case "LOGIN":
			auth = &loginAuth{user: cfg.Username, pass: cfg.Password, host: cfg.Host}
		default:
			auth = smtp.PlainAuth("", cfg.Username, cfg.Password, cfg.Host)
		}
		if err := c.Auth(auth); err != nil {
			return err
		}
	}
	if err := c.Mail(m.From.Address); err != nil {
		return err
	}
	for _, rcpt := range recipients(m) {
		if err := c.Rcpt(rcpt); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(raw); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// loginAuth is the LOGIN mechanism (Office 365 and others). Like
// smtp.PlainAuth it refuses to send credentials over an unencrypted
// connection except to localhost.
type loginAuth struct {
	user, pass, host string
}

func (a *loginAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS && !isLocalhost(server.Name) {
		return "", nil, errors.New("unencrypted connection")
	}
	if server.Name != a.host {
		return "", nil, errors.New("wrong host name")
	}
	return "LOGIN", nil, nil
}

func (a *loginAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	switch strings.ToLower(strings.TrimSpace(string(fromServer))) {
	case "username:":
		return []byte(a.user), nil
	case "password:":
		return []byte(a.pass), nil
	}
	return nil, fmt.Errorf("unexpected LOGIN challenge")
}

func isLocalhost(name string) bool {
	return name == "localhost" || name == "127.0.0.1" || name == "::1"
}
