package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/strata-run/strata"
)

// OTPs and MFA sessions live in the system collections PocketBase has for
// them, so that any node can finish a flow another node started and the
// superuser API can inspect (and revoke) them. Collection ids are fixed
// (API.md §1.5).
const (
	OTPsID   = "pbc_1638494021"
	OTPsName = "_otps"
	MFAsID   = "pbc_2279338944"
	MFAsName = "_mfas"
)

// ensureAuthSystemCollections creates _otps and _mfas in data dirs made
// before they existed (and in fresh ones, after bootstrap).
func (a *App) ensureAuthSystemCollections(ctx context.Context) error {
	var missing []*strata.Collection
	if a.Collection(OTPsID) == nil {
		missing = append(missing, systemCollection(OTPsID, OTPsName,
			&strata.Field{ID: strata.DefaultFieldID(strata.FieldPassword, "password"), Name: "password", Type: strata.FieldPassword,
				System: true, Hidden: true, Required: true},
			&strata.Field{ID: strata.DefaultFieldID(strata.FieldText, "sentTo"), Name: "sentTo", Type: strata.FieldText, System: true, Hidden: true}))
	}
	if a.Collection(MFAsID) == nil {
		missing = append(missing, systemCollection(MFAsID, MFAsName,
			&strata.Field{ID: strata.DefaultFieldID(strata.FieldText, "method"), Name: "method", Type: strata.FieldText, System: true, Required: true}))
	}
	if len(missing) == 0 {
		return nil
	}
	_, err := a.write(ctx, func(tx strata.Tx) error {
		for _, c := range missing {
			if err := tx.CreateCollection(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// Another process may have created them first.
		if rerr := a.reload(ctx); rerr == nil && a.Collection(OTPsID) != nil && a.Collection(MFAsID) != nil {
			return nil
		}
		return err
	}
	return a.reload(ctx)
}

// systemCollection is a base collection keyed to one auth record, readable
// by that record only, written by the service only.
func systemCollection(id, name string, extra ...*strata.Field) *strata.Collection {
	now := strata.NowDate()
	own := ptr("@request.auth.id != '' && recordRef = @request.auth.id && collectionRef = @request.auth.collectionId")
	c := &strata.Collection{ID: id, Name: name, Type: strata.CollectionBase, System: true, Created: now, Updated: now,
		ListRule: own, ViewRule: own}
	c.Fields = []*strata.Field{idField(),
		{ID: strata.DefaultFieldID(strata.FieldText, "collectionRef"), Name: "collectionRef", Type: strata.FieldText, System: true, Required: true},
		{ID: strata.DefaultFieldID(strata.FieldText, "recordRef"), Name: "recordRef", Type: strata.FieldText, System: true, Required: true},
	}
	c.Fields = append(c.Fields, extra...)
	c.Fields = append(c.Fields, autodateFields()...)
	c.Indexes = []string{fmt.Sprintf("CREATE INDEX `idx_%s_collectionRef_recordRef` ON `%s` (`collectionRef`, `recordRef`)", id, name)}
	return c
}

var (
	errOTPInvalid   = strata.Errorf(strata.EInvalid, "Invalid or expired OTP.")
	errMFAInvalid   = strata.Errorf(strata.EInvalid, "Invalid or expired MFA session.")
	errMFADifferent = strata.Errorf(strata.EInvalid, "A different authentication method is required.")
)

// MFARequired is the first step of a multi-factor sign-in: the credentials
// were right, and a second, different method must follow with ID as mfaId
// (API.md §7.6; the HTTP layer answers 401 {"mfaId": ID}).
type MFARequired struct {
	ID string
}

func (e *MFARequired) Error() string { return "multi-factor authentication required" }

// newID returns a record id in PocketBase's default pattern.
func newID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 15)
	for i := range b {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic("crypto/rand: " + err.Error())
		}
		b[i] = alphabet[n.Int64()]
	}
	return string(b)
}

func randomDigits(n int) string {
	if n <= 0 {
		n = 8
	}
	b := make([]byte, n)
	for i := range b {
		d, err := rand.Int(rand.Reader, big.NewInt(10))
		if err != nil {
			panic("crypto/rand: " + err.Error())
		}
		b[i] = byte('0' + d.Int64())
	}
	return string(b)
}

// otpHash is what _otps stores instead of the code: SHA-256 over the OTP id
// and code. A fast hash is enough here: a code lives minutes, accepts five
// wrong tries, and hashing it with Argon2id would spend the sign-in
// hashing capacity on every request-otp.
func otpHash(id, code string) string {
	sum := sha256.Sum256([]byte("strata-otp\x00" + id + "\x00" + code))
	return hex.EncodeToString(sum[:])
}

func requireEmail(key, v string) map[string]any {
	switch {
	case v == "":
		return map[string]any{key: strata.NewFieldError("validation_required", "Cannot be blank.", nil)}
	case !validEmail(v):
		return map[string]any{key: strata.NewFieldError("validation_is_email", "Must be a valid email address.", nil)}
	}
	return nil
}

const validationMsg = "An error occurred while validating the submitted data."

// findByEmail returns c's record with this email (case-insensitive), or nil.
func (a *App) findByEmail(ctx context.Context, c *strata.Collection, email string) (*strata.Record, error) {
	recs, err := a.store.FindRecords(ctx, &strata.RecordQuery{Collection: c, Schema: a.Schema(),
		EqualFold: map[string]string{"email": email}, Limit: 1})
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	return recs[0], nil
}

// RequestOTP mails a one-time password to email and returns its id. An
// unknown email gets a well-formed id too, and both paths return without
// touching the store's writer (the OTP is stored by the mail job, before
// the mail goes out), so neither answer nor timing tells them apart.
func (a *App) RequestOTP(ctx context.Context, c *strata.Collection, email string) (string, error) {
	if !c.Auth.OTP.Enabled {
		return "", strata.Errorf(strata.EForbidden, "The collection is not configured to allow OTP authentication.")
	}
	if errs := requireEmail("email", email); errs != nil {
		return "", strata.ValidationError(validationMsg, errs)
	}
	id := newID()
	rec, err := a.findByEmail(ctx, c, email)
	if err != nil || rec == nil {
		return id, err
	}
	code := randomDigits(c.Auth.OTP.Length)
	otps := a.Collection(OTPsID)
	row := &strata.Record{Collection: otps, Data: map[string]any{
		"id": id, "collectionRef": c.ID, "recordRef": rec.ID(), "password": otpHash(id, code),
		"sentTo": rec.String("email"), "created": strata.NowDate(), "updated": strata.NowDate(),
	}}
	duration := time.Duration(c.Auth.OTP.Duration) * time.Second
	msg := a.renderMail("otp", c.Auth.OTP.EmailTemplate, rec.String("email"), map[string]string{"{OTP}": code, "{OTP_ID}": id})
	a.enqueueMail(mailJob{msg: msg, before: func(ctx context.Context) error {
		_, err := a.write(ctx, func(tx strata.Tx) error {
			if err := a.deleteExpired(ctx, tx, otps, rec, duration); err != nil {
				return err
			}
			return tx.InsertRecord(ctx, row)
		})
		return err
	}})
	return id, nil
}

// deleteExpired removes rec's rows of sys older than ttl.
func (a *App) deleteExpired(ctx context.Context, tx strata.Tx, sys *strata.Collection, rec *strata.Record, ttl time.Duration) error {
	old, err := tx.FindRecords(ctx, &strata.RecordQuery{Collection: sys, Schema: a.Schema(),
		Equal: map[string]any{"collectionRef": rec.Collection.ID, "recordRef": rec.ID()}})
	if err != nil {
		return err
	}
	for _, o := range old {
		if t, ok := strata.ParseDate(o.String("created")); !ok || time.Since(t) > ttl {
			if err := tx.DeleteRecord(ctx, o); err != nil {
				return err
			}
		}
	}
	return nil
}

// AuthWithOTP signs in with an OTP id and code. The OTP is consumed by the
// first success; five wrong codes per OTP within 180 s answer 429.
func (a *App) AuthWithOTP(ctx context.Context, req *strata.RequestInfo, c *strata.Collection, otpID, code string) (*AuthResult, error) {
	if !c.Auth.OTP.Enabled {
		return nil, strata.Errorf(strata.EForbidden, "The collection is not configured to allow OTP authentication.")
	}
	errs := map[string]any{}
	if otpID == "" {
		errs["otpId"] = strata.NewFieldError("validation_required", "Cannot be blank.", nil)
	} else if len(otpID) > 255 {
		errs["otpId"] = strata.NewFieldError("validation_length_too_long", "The length must be no more than 255.", nil)
	}
	if code == "" {
		errs["password"] = strata.NewFieldError("validation_required", "Cannot be blank.", nil)
	} else if len(code) > 255 {
		errs["password"] = strata.NewFieldError("validation_length_too_long", "The length must be no more than 255.", nil)
	}
	if len(errs) > 0 {
		return nil, strata.ValidationError(validationMsg, errs)
	}
	lim := a.limiters()
	if d, blocked := lim.otpFails.blocked(otpID); blocked {
		return nil, tooMany(d)
	}
	fail := func() error {
		if d, ok := lim.otpFails.take(otpID); !ok {
			return tooMany(d)
		}
		return errOTPInvalid
	}
	otps := a.Collection(OTPsID)
	ttl := time.Duration(c.Auth.OTP.Duration) * time.Second
	var sentTo, recordID string
	// Check and consume in one transaction: two concurrent right answers
	// cannot both sign in.
	_, err := a.write(ctx, func(tx strata.Tx) error {
		rows, err := tx.FindRecords(ctx, &strata.RecordQuery{Collection: otps, Schema: a.Schema(), IDs: []string{otpID}, Limit: 1})
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return errOTPInvalid
		}
		row := rows[0]
		created, ok := strata.ParseDate(row.String("created"))
		if !ok || time.Since(created) > ttl || row.String("collectionRef") != c.ID {
			return errOTPInvalid
		}
		if subtle.ConstantTimeCompare([]byte(row.String("password")), []byte(otpHash(otpID, code))) != 1 {
			return errOTPInvalid
		}
		sentTo, recordID = row.String("sentTo"), row.String("recordRef")
		return tx.DeleteRecord(ctx, row)
	})
	if errors.Is(err, errOTPInvalid) {
		return nil, fail()
	}
	if err != nil {
		return nil, err
	}
	rec, err := a.findByID(ctx, c, recordID)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, errOTPInvalid
	}
	if !rec.Bool("verified") && sentTo != "" && strings.EqualFold(sentTo, rec.String("email")) {
		if rec, err = a.verifyByOTP(ctx, rec); err != nil {
			return nil, err
		}
	}
	return a.finishAuth(ctx, req, rec, strata.ContextOTP)
}

// verifyByOTP marks rec verified: its owner proved control of the email.
// Unless MFA is on, the password is replaced by a random one (and tokenKey
// rotated): whoever created the unverified account before the owner, with a
// password of their choosing, is locked out (account pre-hijacking).
func (a *App) verifyByOTP(ctx context.Context, rec *strata.Record) (*strata.Record, error) {
	in := Input{"verified": true}
	if !rec.Collection.Auth.MFA.Enabled {
		p := randomSecret(30)
		in["password"], in["passwordConfirm"] = p, p
	}
	upd, _, err := a.UpdateRecord(ctx, superuserRequest(), rec.Collection, rec.ID(), in)
	return upd, err
}

// mfaRequired reports whether rec must pass a second factor.
func (a *App) mfaRequired(ctx context.Context, req *strata.RequestInfo, rec *strata.Record) (bool, error) {
	o := rec.Collection.Auth.MFA
	if !o.Enabled {
		return false, nil
	}
	if strings.TrimSpace(o.Rule) == "" {
		return true, nil
	}
	rreq := &strata.RequestInfo{Method: "POST"}
	if req != nil {
		cp := *req
		rreq = &cp
	}
	rreq.Auth = rec
	got, err := a.findAllowed(ctx, a.store, rreq, rec.Collection, rec.ID(), &o.Rule)
	if err != nil {
		return false, ruleError(err)
	}
	return got != nil, nil
}

// mfaIDOf reads mfaId from the body or the query (API.md §7.6).
func mfaIDOf(req *strata.RequestInfo) string {
	if req == nil {
		return ""
	}
	if v, ok := req.Body["mfaId"].(string); ok && v != "" {
		return v
	}
	return req.Query["mfaId"]
}

// checkMFA runs the MFA step after the credentials of method succeeded:
// nil to proceed, *MFARequired to ask for a second method, or a 400.
func (a *App) checkMFA(ctx context.Context, req *strata.RequestInfo, rec *strata.Record, method string) error {
	need, err := a.mfaRequired(ctx, req, rec)
	if err != nil || !need {
		return err
	}
	c := rec.Collection
	mfas := a.Collection(MFAsID)
	ttl := time.Duration(c.Auth.MFA.Duration) * time.Second
	id := mfaIDOf(req)
	if id == "" {
		row := &strata.Record{Collection: mfas, Data: map[string]any{"id": newID(), "collectionRef": c.ID,
			"recordRef": rec.ID(), "method": method, "created": strata.NowDate(), "updated": strata.NowDate()}}
		_, err := a.write(ctx, func(tx strata.Tx) error {
			if err := a.deleteExpired(ctx, tx, mfas, rec, ttl); err != nil {
				return err
			}
			return tx.InsertRecord(ctx, row)
		})
		if err != nil {
			return err
		}
		return &MFARequired{ID: row.ID()}
	}
	_, err = a.write(ctx, func(tx strata.Tx) error {
		rows, err := tx.FindRecords(ctx, &strata.RecordQuery{Collection: mfas, Schema: a.Schema(), IDs: []string{id}, Limit: 1})
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return errMFAInvalid
		}
		row := rows[0]
		created, ok := strata.ParseDate(row.String("created"))
		if !ok || time.Since(created) > ttl || row.String("collectionRef") != c.ID || row.String("recordRef") != rec.ID() {
			return errMFAInvalid
		}
		if row.String("method") == method {
			return errMFADifferent
		}
		return tx.DeleteRecord(ctx, row)
	})
	return err
}
