package strata

import (
	"context"
	"net/mail"
)

// MailMessage is one outgoing e-mail. HTML is the body PocketBase's
// templates produce; Text, when empty, is derived by the Mailer.
type MailMessage struct {
	From    mail.Address
	To      []mail.Address
	Subject string
	HTML    string
	Text    string
	// Kind names the template ("verification", "password-reset",
	// "email-change", "otp"); it is for logs and tests, never sent.
	Kind string
}

// Mailer delivers mail. Implementations must be safe for concurrent use and
// honour ctx's deadline: a slow mail server must never hold a caller longer.
type Mailer interface {
	Send(ctx context.Context, m *MailMessage) error
}

// SMTPConfig is the SMTP part of the settings (API.md §11), read on every
// send so that a settings change applies without a restart.
type SMTPConfig struct {
	Enabled bool
	Host    string
	Port    int
	// Username and Password authenticate with AuthMethod "PLAIN" (default)
	// or "LOGIN"; an empty Username skips authentication.
	Username   string
	Password   string
	AuthMethod string
	// TLS selects implicit TLS (usually port 465); otherwise STARTTLS is
	// used whenever the server offers it.
	TLS       bool
	LocalName string
}
