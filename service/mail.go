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
		a.log.Warn("mail queue full; mail dropped", "kind", job.msg.Kind)
	}
}

func (a *App) mailWorker() {
	for job := range a.flows.queue {
		ctx, cancel := context.WithTimeout(context.Background(), mailSendTimeout)
		err := error(nil)
		if job.before != nil {
			err = job.before(ctx)
		}
		if err == nil {
			err = a.sendNow(ctx, job.msg)
		}
		if err != nil {
			// The error may name the server, never the message body.
			a.log.Error("mail failed", "kind", job.msg.Kind, "err", err)
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
