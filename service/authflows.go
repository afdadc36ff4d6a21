package service

import (
	"context"
	"strings"
	"time"

	"github.com/strata-run/strata"
)

// The account flows of API.md §7.3. Requests that mail a link answer the
// same whether or not the address belongs to an account, and return before
// any mail is sent (the mail queue is asynchronous), so neither the answer
// nor its timing enumerates accounts. The links carry typed tokens signed
// with the record's tokenKey and the collection's per-type secret.

func errNotForSuperusers() error {
	return strata.Errorf(strata.EInvalid, "The request is not supported for superusers.")
}

func invalidToken(key string) error {
	return strata.ValidationError(validationMsg, map[string]any{
		key: strata.NewFieldError("validation_invalid_token", "Invalid or expired token.", nil)})
}

// RequestVerification mails a verification link to an unverified record.
func (a *App) RequestVerification(ctx context.Context, c *strata.Collection, email string) error {
	if c.IsSuperusers() {
		return errNotForSuperusers()
	}
	if errs := requireEmail("email", email); errs != nil {
		return strata.ValidationError(validationMsg, errs)
	}
	rec, err := a.findByEmail(ctx, c, email)
	if err != nil || rec == nil || rec.Bool("verified") {
		return err
	}
	if a.recentlySent("verification|" + c.ID + "|" + rec.ID()) {
		return nil
	}
	addr := rec.String("email")
	token, err := NewToken(rec, TokenVerification, 0, false, map[string]string{"email": addr})
	if err != nil {
		return err
	}
	a.enqueueMail(mailJob{msg: a.renderMail("verification", c.Auth.VerificationTemplate, addr, map[string]string{"{TOKEN}": token})})
	return nil
}

// ConfirmVerification marks the token's record verified. The token must
// name the record's current email: a link mailed to an old address does
// not verify a new one.
func (a *App) ConfirmVerification(ctx context.Context, c *strata.Collection, token string) error {
	if c.IsSuperusers() {
		return errNotForSuperusers()
	}
	if token == "" {
		return strata.ValidationError(validationMsg, map[string]any{"token": strata.NewFieldError("validation_required", "Cannot be blank.", nil)})
	}
	rec, claims, err := a.VerifyToken(ctx, token, TokenVerification)
	if err != nil || rec.Collection.ID != c.ID || !strings.EqualFold(claims.Email, rec.String("email")) {
		return invalidToken("token")
	}
	if rec.Bool("verified") {
		return nil
	}
	_, _, err = a.UpdateRecord(ctx, superuserRequest(), c, rec.ID(), Input{"verified": true})
	return err
}

// RequestPasswordReset mails a password-reset link.
func (a *App) RequestPasswordReset(ctx context.Context, c *strata.Collection, email string) error {
	if !c.Auth.PasswordAuth.Enabled {
		return strata.Errorf(strata.EInvalid, "The collection is not configured to allow password authentication.")
	}
	if errs := requireEmail("email", email); errs != nil {
		return strata.ValidationError(validationMsg, errs)
	}
	rec, err := a.findByEmail(ctx, c, email)
	if err != nil || rec == nil {
		return err
	}
	if a.recentlySent("passwordReset|" + c.ID + "|" + rec.ID()) {
		return nil
	}
	addr := rec.String("email")
	token, err := NewToken(rec, TokenPasswordReset, 0, false, map[string]string{"email": addr})
	if err != nil {
		return err
	}
	a.enqueueMail(mailJob{msg: a.renderMail("password-reset", c.Auth.ResetPasswordTemplate, addr, map[string]string{"{TOKEN}": token})})
	return nil
}

// ConfirmPasswordReset sets a new password. The change rotates tokenKey, so
// the reset token (and every session) stops working: a link works once.
// The record becomes verified when the token was mailed to its current
// address (receiving the mail proves control of it).
func (a *App) ConfirmPasswordReset(ctx context.Context, c *strata.Collection, token, password, passwordConfirm string) error {
	errs := map[string]any{}
	if token == "" {
		errs["token"] = strata.NewFieldError("validation_required", "Cannot be blank.", nil)
	}
	if password == "" {
		errs["password"] = strata.NewFieldError("validation_required", "Cannot be blank.", nil)
	}
	if passwordConfirm == "" {
		errs["passwordConfirm"] = strata.NewFieldError("validation_required", "Cannot be blank.", nil)
	} else if password != passwordConfirm {
		errs["passwordConfirm"] = strata.NewFieldError("validation_values_mismatch", "Values don't match.", nil)
	}
	if len(errs) > 0 {
		return strata.ValidationError(validationMsg, errs)
	}
	rec, claims, err := a.VerifyToken(ctx, token, TokenPasswordReset)
	if err != nil || rec.Collection.ID != c.ID {
		return invalidToken("token")
	}
	in := Input{"password": password, "passwordConfirm": passwordConfirm}
	if !rec.Bool("verified") && claims.Email != "" && strings.EqualFold(claims.Email, rec.String("email")) {
		in["verified"] = true
	}
	_, _, err = a.UpdateRecord(ctx, superuserRequest(), c, rec.ID(), in)
	return err
}

// emailChangeMailTimeout bounds the one synchronous mail: the caller is
// told when the confirmation could not be sent.
const emailChangeMailTimeout = 15 * time.Second

// RequestEmailChange mails a confirmation link to newEmail for the caller's
// own record.
func (a *App) RequestEmailChange(ctx context.Context, req *strata.RequestInfo, c *strata.Collection, newEmail string) error {
	if c.IsSuperusers() {
		return errNotForSuperusers()
	}
	if req == nil || req.Auth == nil {
		return errNeedsAuth
	}
	if req.Auth.Collection.ID != c.ID {
		return strata.Errorf(strata.EForbidden, "The request requires auth record from %s collection.", c.Name)
	}
	if errs := requireEmail("newEmail", newEmail); errs != nil {
		return strata.ValidationError(validationMsg, errs)
	}
	rec, err := a.findByID(ctx, c, req.Auth.ID())
	if err != nil {
		return err
	}
	if rec == nil {
		return errNeedsAuth
	}
	if strings.EqualFold(newEmail, rec.String("email")) {
		return strata.ValidationError(validationMsg, map[string]any{
			"newEmail": strata.NewFieldError("validation_not_in_invalid", "Must be a valid value.", nil)})
	}
	if taken, err := a.findByEmail(ctx, c, newEmail); err != nil {
		return err
	} else if taken != nil {
		return strata.ValidationError(validationMsg, map[string]any{
			"newEmail": strata.NewFieldError("validation_invalid_new_email", "Invalid new email address.", nil)})
	}
	token, err := NewToken(rec, TokenEmailChange, 0, false, map[string]string{"email": rec.String("email"), "newEmail": newEmail})
	if err != nil {
		return err
	}
	msg := a.renderMail("email-change", c.Auth.ConfirmEmailChangeTemplate, newEmail, map[string]string{"{TOKEN}": token})
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), emailChangeMailTimeout)
	defer cancel()
	if err := a.sendNow(sctx, msg); err != nil {
		a.log.Error("mail failed", "kind", msg.Kind, "err", err)
		return strata.Errorf(strata.EInvalid, "Failed to request email change.")
	}
	return nil
}

// ConfirmEmailChange applies the new email after checking the record's
// current password; the record becomes verified (the new address received
// the link) and tokenKey rotates.
func (a *App) ConfirmEmailChange(ctx context.Context, c *strata.Collection, token, password string) error {
	if c.IsSuperusers() {
		return errNotForSuperusers()
	}
	errs := map[string]any{}
	if token == "" {
		errs["token"] = strata.NewFieldError("validation_required", "Cannot be blank.", nil)
	}
	if password == "" {
		errs["password"] = strata.NewFieldError("validation_required", "Cannot be blank.", nil)
	} else if len(password) > 255 {
		errs["password"] = strata.NewFieldError("validation_length_too_long", "The length must be no more than 255.", nil)
	}
	if len(errs) > 0 {
		return strata.ValidationError(validationMsg, errs)
	}
	rec, claims, err := a.VerifyToken(ctx, token, TokenEmailChange)
	if err != nil || rec.Collection.ID != c.ID || claims.NewEmail == "" || !strings.EqualFold(claims.Email, rec.String("email")) {
		a.hasher.Dummy(ctx, password)
		return invalidToken("token")
	}
	ok, _, err := a.hasher.Verify(ctx, rec.String("password"), password)
	if err != nil {
		return err
	}
	if !ok {
		return strata.ValidationError(validationMsg, map[string]any{
			"password": strata.NewFieldError("validation_invalid_password", "Missing or invalid auth record password.", nil)})
	}
	if taken, err := a.findByEmail(ctx, c, claims.NewEmail); err != nil {
		return err
	} else if taken != nil {
		return strata.ValidationError(validationMsg, map[string]any{
			"token": strata.NewFieldError("validation_invalid_new_email", "Invalid new email address.", nil)})
	}
	_, _, err = a.UpdateRecord(ctx, superuserRequest(), c, rec.ID(), Input{"email": claims.NewEmail, "verified": true})
	return err
}

// Impersonate issues a non-refreshable auth token for any record of c, for
// superusers only. durationSec 0 uses the collection's auth token duration.
func (a *App) Impersonate(ctx context.Context, req *strata.RequestInfo, c *strata.Collection, id string, durationSec int64) (*AuthResult, error) {
	if req == nil || req.Auth == nil {
		return nil, errNeedsAuth
	}
	if !req.IsSuperuser() {
		return nil, strata.Errorf(strata.EForbidden, "The authorized record is not allowed to perform this action.")
	}
	if durationSec < 0 || durationSec > 94670856 {
		return nil, strata.ValidationError(validationMsg, map[string]any{
			"duration": strata.NewFieldError("validation_min_greater_equal_than_required", "Must be between 0 and 94670856.", nil)})
	}
	rec, err := a.findByID(ctx, c, id)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, strata.Errorf(strata.ENotFound, "The requested resource wasn't found.")
	}
	token, err := NewToken(rec, TokenAuth, time.Duration(durationSec)*time.Second, false, nil)
	if err != nil {
		return nil, err
	}
	return &AuthResult{Token: token, Record: rec}, nil
}
