package service

import (
	"context"
	"errors"
	"strings"

	"github.com/strata-run/strata"
)

var (
	errAuthCollection = strata.Errorf(strata.ENotFound, "Missing or invalid auth collection context.")
	errAuthFailed     = strata.Errorf(strata.EInvalid, "Failed to authenticate.")
	errAuthRule       = strata.Errorf(strata.EForbidden, "The request doesn't satisfy the collection requirements to authenticate.")
	errNeedsAuth      = strata.Errorf(strata.EUnauthorized, "The request requires valid record authorization token.")
)

// AuthCollection resolves the collection of an auth route.
func (a *App) AuthCollection(idOrName string) (*strata.Collection, error) {
	c := a.Collection(idOrName)
	if c == nil || !c.IsAuth() {
		return nil, errAuthCollection
	}
	return c, nil
}

// Authenticate resolves an auth token to its record; an invalid or expired
// token yields nil (the request then proceeds as a guest).
func (a *App) Authenticate(ctx context.Context, token string) *strata.Record {
	if token == "" {
		return nil
	}
	rec, _, err := a.VerifyToken(ctx, token, TokenAuth)
	if err != nil {
		return nil
	}
	return rec
}

// AuthResult is a successful sign-in.
type AuthResult struct {
	Token  string
	Record *strata.Record
}

// AuthWithPassword signs in with an identity (email or another identity
// field) and password. Unknown identities cost the same hashing time as
// wrong passwords and get the same answer.
func (a *App) AuthWithPassword(ctx context.Context, req *strata.RequestInfo, c *strata.Collection, identity, password, identityField string) (*AuthResult, error) {
	if !c.Auth.PasswordAuth.Enabled {
		return nil, strata.Errorf(strata.EForbidden, "The collection is not configured to allow password authentication.")
	}
	errs := map[string]any{}
	if identity == "" {
		errs["identity"] = strata.NewFieldError("validation_required", "Cannot be blank.", nil)
	} else if len(identity) > 255 {
		errs["identity"] = strata.NewFieldError("validation_length_too_long", "The length must be no more than 255.", nil)
	}
	if password == "" {
		errs["password"] = strata.NewFieldError("validation_required", "Cannot be blank.", nil)
	} else if len(password) > 255 {
		errs["password"] = strata.NewFieldError("validation_length_too_long", "The length must be no more than 255.", nil)
	}
	fields := c.Auth.PasswordAuth.IdentityFields
	if identityField != "" {
		if !contains(fields, identityField) {
			errs["identityField"] = strata.NewFieldError("validation_in_invalid", "Must be a valid value.", nil)
		}
		fields = []string{identityField}
	}
	if len(errs) > 0 {
		return nil, strata.ValidationError("An error occurred while validating the submitted data.", errs)
	}
	// email first; skip it for identities that are not emails.
	ordered := make([]string, 0, len(fields))
	if contains(fields, "email") {
		ordered = append(ordered, "email")
	}
	for _, f := range fields {
		if f != "email" {
			ordered = append(ordered, f)
		}
	}
	var rec *strata.Record
	for _, name := range ordered {
		f := c.Field(name)
		if f == nil || (name == "email" && !strings.Contains(identity, "@")) {
			continue
		}
		q := &strata.RecordQuery{Collection: c, Schema: a.Schema(), Limit: 1}
		if name == "email" {
			q.EqualFold = map[string]string{name: identity}
		} else {
			q.Equal = map[string]any{name: coerce(f, identity)}
		}
		found, err := a.store.FindRecords(ctx, q)
		if err != nil {
			return nil, err
		}
		if len(found) > 0 {
			rec = found[0]
			break
		}
	}
	if rec == nil {
		a.hasher.Dummy(ctx, password)
		return nil, errAuthFailed
	}
	ok, rehash, err := a.hasher.Verify(ctx, rec.String("password"), password)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errAuthFailed
	}
	if rehash {
		if err := a.upgradeHash(ctx, rec, password); err != nil {
			a.log.Warn("password hash upgrade failed", "collection", c.Name, "record", rec.ID(), "err", err)
		}
	}
	return a.finishAuth(ctx, req, rec, strata.ContextPassword)
}

// upgradeHash replaces a bcrypt hash with Argon2id after a successful
// sign-in. tokenKey stays: the password itself did not change.
func (a *App) upgradeHash(ctx context.Context, rec *strata.Record, password string) error {
	hash, err := a.hasher.Hash(ctx, password)
	if err != nil {
		return err
	}
	_, err = a.write(ctx, func(tx strata.Tx) error {
		cur, err := a.findAllowed(ctx, tx, nil, rec.Collection, rec.ID(), nil)
		if err != nil || cur == nil || cur.String("password") != rec.String("password") {
			return err
		}
		cur.Data["password"] = hash
		return tx.UpdateRecord(ctx, cur)
	})
	return err
}

// finishAuth checks authRule, then MFA (API.md §7.1, §7.6), and issues
// the token. authCtx doubles as the MFA method name ("password", "otp",
// "oauth2").
func (a *App) finishAuth(ctx context.Context, req *strata.RequestInfo, rec *strata.Record, authCtx string) (*AuthResult, error) {
	if err := a.checkAuthRule(ctx, req, rec, authCtx); err != nil {
		return nil, err
	}
	if err := a.checkMFA(ctx, req, rec, authCtx); err != nil {
		return nil, err
	}
	token, err := NewToken(rec, TokenAuth, 0, true, nil)
	if err != nil {
		return nil, err
	}
	return &AuthResult{Token: token, Record: rec}, nil
}

func (a *App) checkAuthRule(ctx context.Context, req *strata.RequestInfo, rec *strata.Record, authCtx string) error {
	c := rec.Collection
	if c.Auth.AuthRule == nil {
		return errAuthRule
	}
	if strings.TrimSpace(*c.Auth.AuthRule) == "" {
		return nil
	}
	rreq := &strata.RequestInfo{Method: "POST", Context: authCtx}
	if req != nil {
		cp := *req
		cp.Context = authCtx
		rreq = &cp
	}
	rreq.Auth = rec
	got, err := a.findAllowed(ctx, a.store, rreq, c, rec.ID(), c.Auth.AuthRule)
	if err != nil {
		return ruleError(err)
	}
	if got == nil {
		return errAuthRule
	}
	return nil
}

// AuthRefresh issues a fresh token for the caller's own record (or returns
// the same one when it is not refreshable, e.g. after impersonation).
func (a *App) AuthRefresh(ctx context.Context, req *strata.RequestInfo, c *strata.Collection, token string) (*AuthResult, error) {
	if req == nil || req.Auth == nil {
		return nil, errNeedsAuth
	}
	if req.Auth.Collection.ID != c.ID {
		return nil, strata.Errorf(strata.EForbidden, "The request requires auth record from %s collection.", c.Name)
	}
	rec, claims, err := a.VerifyToken(ctx, token, TokenAuth)
	if err != nil {
		return nil, errNeedsAuth
	}
	if err := a.checkAuthRule(ctx, req, rec, strata.ContextDefault); err != nil {
		return nil, err
	}
	if claims.Refreshable != nil && !*claims.Refreshable {
		return &AuthResult{Token: token, Record: rec}, nil
	}
	fresh, err := NewToken(rec, TokenAuth, 0, true, nil)
	if err != nil {
		return nil, err
	}
	return &AuthResult{Token: fresh, Record: rec}, nil
}

// UpsertSuperuser creates a superuser or sets the password of an existing
// one (CLI: strata superuser upsert).
func (a *App) UpsertSuperuser(ctx context.Context, email, password string) (created bool, err error) {
	c := a.Collection(strata.SuperusersID)
	existing, err := a.findSuperuser(ctx, email)
	if err != nil {
		return false, err
	}
	if existing == nil {
		return true, a.CreateSuperuser(ctx, email, password)
	}
	_, _, err = a.UpdateRecord(ctx, superuserRequest(), c, existing.ID(), Input{"password": password, "passwordConfirm": password})
	return false, err
}

// CreateSuperuser creates a superuser; it fails if the email is taken.
func (a *App) CreateSuperuser(ctx context.Context, email, password string) error {
	c := a.Collection(strata.SuperusersID)
	_, _, err := a.CreateRecord(ctx, superuserRequest(), c, Input{"email": email, "password": password, "passwordConfirm": password})
	return err
}

// UpdateSuperuserPassword changes an existing superuser's password.
func (a *App) UpdateSuperuserPassword(ctx context.Context, email, password string) error {
	existing, err := a.findSuperuser(ctx, email)
	if err != nil {
		return err
	}
	if existing == nil {
		return strata.Errorf(strata.ENotFound, "Superuser %s not found.", email)
	}
	_, _, err = a.UpdateRecord(ctx, superuserRequest(), existing.Collection, existing.ID(), Input{"password": password, "passwordConfirm": password})
	return err
}

// DeleteSuperuser deletes a superuser by email.
func (a *App) DeleteSuperuser(ctx context.Context, email string) error {
	existing, err := a.findSuperuser(ctx, email)
	if err != nil {
		return err
	}
	if existing == nil {
		return strata.Errorf(strata.ENotFound, "Superuser %s not found.", email)
	}
	_, err = a.DeleteRecord(ctx, superuserRequest(), existing.Collection, existing.ID())
	return err
}

func (a *App) findSuperuser(ctx context.Context, email string) (*strata.Record, error) {
	c := a.Collection(strata.SuperusersID)
	recs, err := a.store.FindRecords(ctx, &strata.RecordQuery{Collection: c, Schema: a.Schema(),
		EqualFold: map[string]string{"email": email}, Limit: 1})
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	return recs[0], nil
}

// superuserRequest is the identity of the command line: a superuser.
func superuserRequest() *strata.RequestInfo {
	c := &strata.Collection{ID: strata.SuperusersID, Name: strata.SuperusersName, Type: strata.CollectionAuth}
	return &strata.RequestInfo{Auth: &strata.Record{Collection: c, Data: map[string]any{"id": ""}}, Context: strata.ContextDefault}
}

// ErrorIs reports whether err carries code.
func ErrorIs(err error, code strata.ErrorCode) bool {
	var e *strata.Error
	return errors.As(err, &e) && e.Code == code
}
