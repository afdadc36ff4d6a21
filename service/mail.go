package service

import (
	"context"
	"html"
	"net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-run/strata"
)

// flowState is what the sign-in flows keep on a node: the mailer and its
// queue, the attempt limiters, and recently sent mails (repeats are
// skipped). None of it is needed by another node: OTPs and MFA sessions
// live in the store (_otps, _mfas).
type flowState struct {
	mailer atomic.Pointer[mailerBox]
	limits atomic.Pointer[authLimiters]

	queue     chan mailJob
	startOnce sync.Once
	// inflight counts queued and sending mails (tests wait on it).
	inflight sync.WaitGroup

	recentMu sync.Mutex
	recent   map[string]time.Time
}

type mailerBox struct{ m strata.Mailer }

type mailJob struct {
	before func(context.Context) error // e.g. store the OTP first
	msg    *strata.MailMessage
	// build, when set, decides in the background whether there is a
	// mail at all (nil: none) and writes it; kind names it in logs.
	build func(context.Context) (*strata.MailMessage, error)
	kind  string
}

// jobKind names a job in logs.
func (j *mailJob) jobKind() string {
	if j.msg != nil {
		return j.msg.Kind
	}
	return j.kind
}

const (
	mailQueueSize   = 1024
	mailWorkers     = 4
	mailSendTimeout = 30 * time.Second
	// mailRepeatWindow skips a second identical request (same kind,
	// record) within this window, as PocketBase does.
	mailRepeatWindow = 2 * time.Minute
	maxRecent        = 50_000
)

func newFlowState() *flowState {
	f := &flowState{queue: make(chan mailJob, mailQueueSize), recent: map[string]time.Time{}}
	f.limits.Store(newAuthLimiters(DefaultAuthLimits()))
	return f
}

// SetMailer sets how mail is delivered (cmd wires mailer.New). Without one,
// mails are dropped with a warning.
func (a *App) SetMailer(m strata.Mailer) { a.flows.mailer.Store(&mailerBox{m: m}) }

// SMTPConfig returns the current SMTP settings for the mailer.
func (a *App) SMTPConfig() strata.SMTPConfig {
	s := a.Settings().SMTP
	return strata.SMTPConfig{Enabled: s.Enabled, Host: s.Host, Port: s.Port, Username: s.Username, Password: s.Password,
		AuthMethod: s.AuthMethod, TLS: s.TLS, LocalName: s.LocalName}
}

// WaitMail blocks until every queued mail was handled (tests, shutdown).
func (a *App) WaitMail() { a.flows.inflight.Wait() }

func (a *App) sendNow(ctx context.Context, m *strata.MailMessage) error {
	box := a.flows.mailer.Load()
	if box == nil || box.m == nil {
		a.log.Warn("no mailer configured; mail dropped", "kind", m.Kind)
		return nil
	}
	return box.m.Send(ctx, m)
}

// enqueueMail hands a mail to the background senders and returns at once:
// no request waits for a mail server. A full queue drops the mail.
func (a *App) enqueueMail(job mailJob) {
	f := a.flows
	f.startOnce.Do(func() {
		for range mailWorkers {
			go a.mailWorker()
		}
	})
	f.inflight.Add(1)
	select {
	case f.queue <- job:
	default:
		f.inflight.Done()
		a.log.Warn("mail queue full; mail dropped", "kind", job.jobKind())
	}
}

func (a *App) mailWorker() {
	for job := range a.flows.queue {
		ctx, cancel := context.WithTimeout(context.Background(), mailSendTimeout)
		err := error(nil)
		msg := job.msg
		if job.before != nil {
			err = job.before(ctx)
		}
		if err == nil && job.build != nil {
			msg, err = job.build(ctx)
		}
		if err == nil && msg != nil {
			err = a.sendNow(ctx, msg)
		}
		if err != nil {
			// The error may name the server, never the message body.
			a.log.Error("mail failed", "kind", job.jobKind(), "err", err)
		}
		cancel()
		a.flows.inflight.Done()
	}
}

// recentlySent reports whether key was sent within the repeat window and
// otherwise records it.
func (a *App) recentlySent(key string) bool {
	f := a.flows
	now := time.Now()
	f.recentMu.Lock()
	defer f.recentMu.Unlock()
	if t, ok := f.recent[key]; ok && now.Sub(t) < mailRepeatWindow {
		return true
	}
	if len(f.recent) >= maxRecent {
		for k, t := range f.recent {
			if now.Sub(t) >= mailRepeatWindow || len(f.recent) >= maxRecent*9/10 {
				delete(f.recent, k)
			}
		}
	}
	f.recent[key] = now
	return false
}

// renderMail fills a template: placeholders are HTML-escaped in the body
// and kept verbatim in the subject (it is encoded as a header).
func (a *App) renderMail(kind string, t strata.EmailTemplate, to string, vars map[string]string) *strata.MailMessage {
	st := a.Settings()
	all := map[string]string{"{APP_NAME}": st.Meta.AppName, "{APP_URL}": strings.TrimRight(st.Meta.AppURL, "/")}
	for k, v := range vars {
		all[k] = v
	}
	var subj, body []string
	for k, v := range all {
		subj = append(subj, k, v)
		body = append(body, k, html.EscapeString(v))
	}
	return &strata.MailMessage{
		From:    mail.Address{Name: st.Meta.SenderName, Address: st.Meta.SenderAddress},
		To:      []mail.Address{{Address: to}},
		Subject: strings.NewReplacer(subj...).Replace(t.Subject),
		HTML:    strings.NewReplacer(body...).Replace(t.Body),
		Kind:    kind,
	}
}

// TestEmailTemplates are the templates POST /api/settings/test/email can
// send, by PocketBase's names.
var TestEmailTemplates = []string{"verification", "password-reset", "email-change", "otp", "login-alert"}

// testMailTimeout bounds the test mail: the superuser waits for the
// answer of the mail server.
const testMailTimeout = 15 * time.Second

// SendTestEmail sends template of collection (default _superusers) to email
// with placeholder data, synchronously so that a mail server's refusal is
// reported. The record behind it is made up and never stored; tokens in
// links are signed for it and open nothing.
func (a *App) SendTestEmail(ctx context.Context, email, template, collection string) error {
	errs := map[string]any{}
	c := a.Collection(strata.SuperusersID)
	if collection != "" {
		if len(collection) > 255 {
			errs["collection"] = strata.NewFieldError("validation_length_out_of_range", "The length must be between 1 and 255.", nil)
		} else if c = a.Collection(collection); c == nil || !c.IsAuth() {
			errs["collection"] = strata.NewFieldError("validation_invalid_auth_collection", "Must be a valid auth collection id or name.", nil)
		}
	}
	if fe := requireEmail("email", email); fe != nil {
		errs["email"] = fe["email"]
	}
	if template == "" {
		errs["template"] = strata.NewFieldError("validation_required", "Cannot be blank.", nil)
	} else if !contains(TestEmailTemplates, template) {
		errs["template"] = strata.NewFieldError("validation_in_invalid", "Must be a valid value.", nil)
	}
	if len(errs) > 0 {
		return strata.ValidationError("Failed to send the test email.", errs)
	}
	rec := &strata.Record{Collection: c, Data: map[string]any{}}
	for _, f := range c.Fields {
		if !f.Hidden {
			rec.Data[f.Name] = "__pb_test_" + f.Name + "__"
		}
	}
	rec.Data["tokenKey"] = randomSecret(50)
	rec.Data["email"] = email
	o := c.Auth
	var msg *strata.MailMessage
	withToken := func(kind string, t strata.EmailTemplate, typ string, claims map[string]string) error {
		token, err := NewToken(rec, typ, 0, false, claims)
		if err != nil {
			return err
		}
		msg = a.renderMail(kind, t, email, map[string]string{"{TOKEN}": token})
		return nil
	}
	var err error
	switch template {
	case "verification":
		err = withToken(template, o.VerificationTemplate, TokenVerification, map[string]string{"email": email})
	case "password-reset":
		err = withToken(template, o.ResetPasswordTemplate, TokenPasswordReset, map[string]string{"email": email})
	case "email-change":
		err = withToken(template, o.ConfirmEmailChangeTemplate, TokenEmailChange, map[string]string{"email": email, "newEmail": email})
	case "otp":
		msg = a.renderMail(template, o.OTP.EmailTemplate, email, map[string]string{"{OTP}": "123456", "{OTP_ID}": "_PB_TEST_OTP_ID_"})
	case "login-alert":
		msg = a.renderMail(template, o.AuthAlert.EmailTemplate, email,
			map[string]string{"{ALERT_INFO}": alertInfo(time.Now(), "127.0.0.1", "TEST_USER_AGENT")})
	}
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), testMailTimeout)
	defer cancel()
	if err := a.sendNow(sctx, msg); err != nil {
		// Only superusers get here: the mail server's answer is theirs.
		return &strata.Error{Code: strata.EInvalid, Message: "Failed to send the test email. Raw error: " + err.Error(), Err: err}
	}
	return nil
}
