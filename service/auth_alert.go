package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"sort"
	"time"

	"github.com/strata-run/strata"
)

// _authOrigins remembers the devices each auth record signed in from, as
// PocketBase's system collection of the same name and id: a sign-in from
// a device not in the list sends the collection's login alert
// (authAlert), except for the very first sign-in.
const (
	AuthOriginsID   = "pbc_4275539003"
	AuthOriginsName = "_authOrigins"
	// maxAuthOrigins is how many devices are remembered per record (the
	// least recently used is forgotten first), as in PocketBase.
	maxAuthOrigins = 5
	// originTouchAfter: a known device's "updated" (its place in the LRU
	// order) is refreshed at most this often, so that a sign-in from a
	// known device costs a read, not a write.
	originTouchAfter = 24 * time.Hour
	// maxAlertUserAgent bounds the User-Agent kept in fingerprints and
	// alert mails.
	maxAlertUserAgent = 300
)

// ensureAuthOrigins creates _authOrigins in data dirs made before it
// existed (and in fresh ones, after bootstrap).
func (a *App) ensureAuthOrigins(ctx context.Context) error {
	if a.Collection(AuthOriginsID) != nil {
		return nil
	}
	c := systemCollection(AuthOriginsID, AuthOriginsName,
		&strata.Field{ID: strata.DefaultFieldID(strata.FieldText, "fingerprint"), Name: "fingerprint", Type: strata.FieldText, System: true, Required: true})
	// The owner may forget a device (PocketBase's deleteRule).
	c.DeleteRule = c.ViewRule
	c.Indexes = append(c.Indexes, fmt.Sprintf("CREATE UNIQUE INDEX `idx_%s_unique_pairs` ON `%s` (`collectionRef`, `recordRef`, `fingerprint`)",
		AuthOriginsID, AuthOriginsName))
	_, err := a.write(ctx, func(tx strata.Tx) error { return tx.CreateCollection(ctx, c) })
	if err != nil {
		// Another process may have created it first.
		if rerr := a.reload(ctx); rerr == nil && a.Collection(AuthOriginsID) != nil {
			return nil
		}
		return err
	}
	return a.reload(ctx)
}

// NoteSignIn is called after a completed password, OTP or OAuth2 sign-in
// (not after refresh, impersonation or an MFA first step). When the
// collection's login alerts are on, it remembers the device and mails an
// alert if the device is new and the record had signed in before. All of
// it happens on the mail queue: the sign-in never waits for it, and a
// failure is only logged.
func (a *App) NoteSignIn(rec *strata.Record, ip, userAgent string) {
	if rec == nil || rec.Collection == nil || rec.Collection.Auth == nil || !rec.Collection.Auth.AuthAlert.Enabled {
		return
	}
	if a.Collection(AuthOriginsID) == nil {
		return
	}
	if len(userAgent) > maxAlertUserAgent {
		userAgent = userAgent[:maxAlertUserAgent]
	}
	now := time.Now()
	fp := fingerprint(ip, userAgent)
	a.enqueueMail(mailJob{kind: "login-alert", build: func(ctx context.Context) (*strata.MailMessage, error) {
		isNew, seenBefore, err := a.rememberOrigin(ctx, rec, fp, now)
		if err != nil || !isNew || !seenBefore || rec.String("email") == "" {
			return nil, err
		}
		c := rec.Collection
		return a.renderMail("login-alert", c.Auth.AuthAlert.EmailTemplate, rec.String("email"),
			map[string]string{"{ALERT_INFO}": alertInfo(now, ip, userAgent)}), nil
	}})
}

// fingerprint identifies a device: the client's network (IPv4 /24, IPv6
// /64) and its User-Agent. PocketBase hashes the full address; the network
// keeps a phone whose IPv6 privacy address rotates, or a laptop that got a
// new DHCP lease, from looking like a new device every day.
func fingerprint(ip, userAgent string) string {
	network := ip
	if parsed := net.ParseIP(ip); parsed != nil {
		if v4 := parsed.To4(); v4 != nil {
			network = v4.Mask(net.CIDRMask(24, 32)).String() + "/24"
		} else {
			network = parsed.Mask(net.CIDRMask(64, 128)).String() + "/64"
		}
	}
	sum := sha256.Sum256([]byte(network + "\x00" + userAgent))
	return hex.EncodeToString(sum[:16])
}

// alertInfo is {ALERT_INFO}: when and from where, as PocketBase words it.
func alertInfo(t time.Time, ip, userAgent string) string {
	return t.UTC().Format(strata.DateLayout) + " - " + ip + " " + userAgent
}

// rememberOrigin records that rec signed in from fingerprint fp. isNew
// reports a device not remembered before; seenBefore that the record had
// other devices (i.e. this is not its first sign-in).
func (a *App) rememberOrigin(ctx context.Context, rec *strata.Record, fp string, now time.Time) (isNew, seenBefore bool, err error) {
	origins := a.Collection(AuthOriginsID)
	q := &strata.RecordQuery{Collection: origins, Schema: a.Schema(),
		Equal: map[string]any{"collectionRef": rec.Collection.ID, "recordRef": rec.ID()}}
	rows, err := a.store.FindRecords(ctx, q)
	if err != nil {
		return false, false, fmt.Errorf("read auth origins: %w", err)
	}
	for _, o := range rows {
		if o.String("fingerprint") != fp {
			continue
		}
		if t, ok := strata.ParseDate(o.String("updated")); ok && now.Sub(t) < originTouchAfter {
			return false, true, nil
		}
		_, err := a.write(ctx, func(tx strata.Tx) error {
			o.Data["updated"] = strata.NowDate()
			return tx.UpdateRecord(ctx, o)
		})
		return false, true, err
	}
	// Forget the least recently used devices beyond the limit, then add
	// this one.
	sort.Slice(rows, func(i, j int) bool { return rows[i].String("updated") > rows[j].String("updated") })
	stamp := strata.NowDate()
	row := &strata.Record{Collection: origins, Data: map[string]any{"id": newID(), "collectionRef": rec.Collection.ID,
		"recordRef": rec.ID(), "fingerprint": fp, "created": stamp, "updated": stamp}}
	_, err = a.write(ctx, func(tx strata.Tx) error {
		for i := maxAuthOrigins - 1; i < len(rows); i++ {
			if err := tx.DeleteRecord(ctx, rows[i]); err != nil {
				return err
			}
		}
		return tx.InsertRecord(ctx, row)
	})
	if ErrorIs(err, strata.EInvalid) {
		// A concurrent sign-in from the same device stored it first.
		return false, true, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("store auth origin: %w", err)
	}
	return true, len(rows) > 0, nil
}
