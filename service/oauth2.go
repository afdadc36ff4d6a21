package service

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/strata-run/strata"
)

// _externalAuths links an auth record to an OAuth2 identity (provider,
// providerId), as PocketBase's system collection of the same name and id.
const (
	ExternalAuthsID   = "pbc_2281828961"
	ExternalAuthsName = "_externalAuths"
)

// ensureExternalAuths creates _externalAuths in data dirs made before it
// existed (and in fresh ones, after bootstrap).
func (a *App) ensureExternalAuths(ctx context.Context) error {
	if a.Collection(ExternalAuthsID) != nil {
		return nil
	}
	c := systemCollection(ExternalAuthsID, ExternalAuthsName,
		&strata.Field{ID: strata.DefaultFieldID(strata.FieldText, "provider"), Name: "provider", Type: strata.FieldText, System: true, Required: true},
		&strata.Field{ID: strata.DefaultFieldID(strata.FieldText, "providerId"), Name: "providerId", Type: strata.FieldText, System: true, Required: true})
	// The owner may unlink an identity (PocketBase's deleteRule).
	c.DeleteRule = c.ViewRule
	c.Indexes = []string{
		fmt.Sprintf("CREATE UNIQUE INDEX `idx_%s_record_provider` ON `%s` (`collectionRef`, `recordRef`, `provider`)", ExternalAuthsID, ExternalAuthsName),
		fmt.Sprintf("CREATE UNIQUE INDEX `idx_%s_collection_provider` ON `%s` (`collectionRef`, `provider`, `providerId`)", ExternalAuthsID, ExternalAuthsName),
	}
	_, err := a.write(ctx, func(tx strata.Tx) error { return tx.CreateCollection(ctx, c) })
	if err != nil {
		// Another process may have created it first.
		if rerr := a.reload(ctx); rerr == nil && a.Collection(ExternalAuthsID) != nil {
			return nil
		}
		return err
	}
	return a.reload(ctx)
}

// OAuth2Input is the body of auth-with-oauth2 (API.md §7.3).
type OAuth2Input struct {
	Provider     string
	Code         string
	CodeVerifier string
	RedirectURL  string
	CreateData   map[string]any
}

// OAuth2Meta is the "meta" object of an OAuth2 auth response (API.md §7.4).
type OAuth2Meta struct {
	ID           string         `json:"id"`
	Name         string         `json:"name"`
	Username     string         `json:"username"`
	Email        string         `json:"email"`
	AvatarURL    string         `json:"avatarURL"`
	AvatarURLOld string         `json:"avatarUrl"`
	AccessToken  string         `json:"accessToken"`
	RefreshToken string         `json:"refreshToken"`
	Expiry       string         `json:"expiry"`
	RawUser      map[string]any `json:"rawUser"`
	IsNew        bool           `json:"isNew"`
}

var (
	errOAuth2Disabled = strata.Errorf(strata.EForbidden, "The collection is not configured to allow OAuth2 authentication.")
	errOAuth2Token    = strata.Errorf(strata.EInvalid, "Failed to fetch OAuth2 token.")
	errOAuth2User     = strata.Errorf(strata.EInvalid, "Failed to fetch OAuth2 user.")
	// errOAuth2Unverified: an account already uses the provider's email
	// but never proved it owns it. Linking would hand the caller an
	// account someone else may have pre-registered (or pre-linked), so
	// the caller has to prove ownership through the email first (password
	// reset or OTP verifies the account and replaces its password). Only
	// the owner of the provider-verified email can read this message, so
	// it tells nobody else that the address is registered.
	errOAuth2Unverified = strata.Errorf(strata.EInvalid,
		"An unverified account already uses this email. Verify it (or reset its password) first, then sign in with OAuth2 again.")
)

// AuthWithOAuth2 exchanges an authorization code with a provider and signs
// in the record linked to (or created for) the provider's identity.
func (a *App) AuthWithOAuth2(ctx context.Context, req *strata.RequestInfo, c *strata.Collection, in OAuth2Input) (*AuthResult, *OAuth2Meta, error) {
	if !c.Auth.OAuth2.Enabled {
		return nil, nil, errOAuth2Disabled
	}
	errs := map[string]any{}
	if in.Provider == "" {
		errs["provider"] = strata.NewFieldError("validation_required", "Cannot be blank.", nil)
	} else if len(in.Provider) > 100 {
		errs["provider"] = strata.NewFieldError("validation_length_too_long", "The length must be no more than 100.", nil)
	}
	if in.Code == "" {
		errs["code"] = strata.NewFieldError("validation_required", "Cannot be blank.", nil)
	}
	if len(in.CodeVerifier) > 255 {
		errs["codeVerifier"] = strata.NewFieldError("validation_length_too_long", "The length must be no more than 255.", nil)
	}
	var p *provider
	if len(errs) == 0 {
		var err error
		if p, err = a.oauth2Provider(ctx, c, in.Provider); err != nil {
			return nil, nil, err
		}
		if p == nil {
			errs["provider"] = strata.NewFieldError("validation_invalid_provider",
				fmt.Sprintf("Provider with name %s is missing or is not enabled.", in.Provider), nil)
		}
	}
	if len(errs) > 0 {
		return nil, nil, strata.ValidationError(validationMsg, errs)
	}
	tok, err := p.exchange(ctx, in.Code, in.CodeVerifier, in.RedirectURL)
	if err != nil {
		a.log.Info("oauth2 code exchange failed", "collection", c.Name, "provider", p.name, "err", err)
		return nil, nil, &strata.Error{Code: strata.EInvalid, Message: errOAuth2Token.Message, Err: err}
	}
	user, err := p.fetchUser(ctx, tok, in.CodeVerifier)
	if err != nil {
		a.log.Info("oauth2 user fetch failed", "collection", c.Name, "provider", p.name, "err", err)
		return nil, nil, &strata.Error{Code: strata.EInvalid, Message: errOAuth2User.Message, Err: err}
	}
	meta := &OAuth2Meta{ID: user.ID, Name: user.Name, Username: user.Username, Email: user.Email,
		AvatarURL: user.AvatarURL, AvatarURLOld: user.AvatarURL, AccessToken: tok.AccessToken,
		RefreshToken: tok.RefreshToken, RawUser: user.Raw}
	if meta.RawUser == nil {
		meta.RawUser = map[string]any{}
	}
	if !tok.Expiry.IsZero() {
		meta.Expiry = tok.Expiry.UTC().Format(strata.DateLayout)
	}
	rec, isNew, err := a.oauth2Record(ctx, req, c, p.name, user, in.CreateData)
	if err != nil {
		return nil, nil, err
	}
	meta.IsNew = isNew
	res, err := a.finishAuth(ctx, req, rec, strata.ContextOAuth2)
	if err != nil {
		return nil, nil, err
	}
	return res, meta, nil
}

// oauth2Record picks the record for an OAuth2 identity (API.md §7.4): the
// linked one, the caller's own (linking), the one with the provider's
// verified email if that record is verified too, or a new one.
func (a *App) oauth2Record(ctx context.Context, req *strata.RequestInfo, c *strata.Collection, provider string, user *ExternalUser, createData map[string]any) (*strata.Record, bool, error) {
	ext := a.Collection(ExternalAuthsID)
	links, err := a.store.FindRecords(ctx, &strata.RecordQuery{Collection: ext, Schema: a.Schema(), Limit: 1,
		Equal: map[string]any{"collectionRef": c.ID, "provider": provider, "providerId": user.ID}})
	if err != nil {
		return nil, false, err
	}
	if len(links) > 0 {
		rec, err := a.findByID(ctx, c, links[0].String("recordRef"))
		if err != nil {
			return nil, false, err
		}
		if rec != nil {
			rec, err = a.oauth2Verify(ctx, rec, provider, user)
			return rec, false, err
		}
		// The record is gone: the link is stale.
		if _, err := a.write(ctx, func(tx strata.Tx) error { return tx.DeleteRecord(ctx, links[0]) }); err != nil {
			return nil, false, err
		}
	}
	var rec *strata.Record
	if req != nil && req.Auth != nil && req.Auth.Collection != nil && req.Auth.Collection.ID == c.ID {
		if rec, err = a.findByID(ctx, c, req.Auth.ID()); err != nil {
			return nil, false, err
		}
	}
	if rec == nil && user.Email != "" && user.EmailVerified {
		found, err := a.findByEmail(ctx, c, user.Email)
		if err != nil {
			return nil, false, err
		}
		if found != nil && !found.Bool("verified") {
			return nil, false, errOAuth2Unverified
		}
		rec = found
	}
	if rec != nil {
		_, err := a.write(ctx, func(tx strata.Tx) error { return a.insertLink(ctx, tx, rec, provider, user.ID) })
		if err != nil {
			return nil, false, err
		}
		rec, err = a.oauth2Verify(ctx, rec, provider, user)
		return rec, false, err
	}
	if c.IsSuperusers() {
		return nil, false, strata.Errorf(strata.EInvalid, "Superusers cannot sign up with OAuth2.")
	}
	rec, err = a.oauth2Create(ctx, req, c, provider, user, createData)
	return rec, err == nil, err
}

// oauth2Verify marks rec verified when the provider vouches for its
// email, as PocketBase does for a linked record. Only records reached
// through their link or the caller's own session get here: an unverified
// record found by email alone is refused before (errOAuth2Unverified), so
// the upgrade never hands someone a pre-registered account. The password
// stays: the record's owner set it.
func (a *App) oauth2Verify(ctx context.Context, rec *strata.Record, provider string, user *ExternalUser) (*strata.Record, error) {
	if rec.Bool("verified") || !user.EmailVerified || user.Email == "" || !strings.EqualFold(rec.String("email"), user.Email) {
		return rec, nil
	}
	// Verifying drops the record's earlier links (dropExternalAuths); the
	// identity that just vouched for the email is the owner's, so it is
	// linked again in the same transaction.
	var upd *strata.Record
	_, err := a.write(ctx, func(tx strata.Tx) error {
		var err error
		if upd, err = a.updateInTx(ctx, tx, superuserRequest(), rec.Collection, rec.ID(), Input{"verified": true}); err != nil {
			return err
		}
		return a.insertLink(ctx, tx, upd, provider, user.ID)
	})
	if err != nil {
		return nil, fmt.Errorf("mark verified after OAuth2: %w", err)
	}
	return upd, nil
}

// dropExternalAuths deletes every OAuth2 link of rec. It runs when rec
// becomes verified: links made while nobody had proven they own the email
// may belong to whoever registered the address first (account
// pre-hijacking), and must not survive the real owner's verification.
func (a *App) dropExternalAuths(ctx context.Context, tx strata.Tx, rec *strata.Record) error {
	ext := a.Collection(ExternalAuthsID)
	if ext == nil {
		return nil
	}
	for {
		links, err := tx.FindRecords(ctx, &strata.RecordQuery{Collection: ext, Schema: a.Schema(), Limit: 100,
			Equal: map[string]any{"collectionRef": rec.Collection.ID, "recordRef": rec.ID()}})
		if err != nil {
			return err
		}
		for _, l := range links {
			if err := tx.DeleteRecord(ctx, l); err != nil {
				return err
			}
		}
		if len(links) < 100 {
			return nil
		}
	}
}

// insertLink stores the (provider, providerId) link of rec.
func (a *App) insertLink(ctx context.Context, tx strata.Tx, rec *strata.Record, provider, providerID string) error {
	now := strata.NowDate()
	row := &strata.Record{Collection: a.Collection(ExternalAuthsID), Data: map[string]any{
		"id": newID(), "collectionRef": rec.Collection.ID, "recordRef": rec.ID(), "provider": provider,
		"providerId": providerID, "created": now, "updated": now}}
	if err := tx.InsertRecord(ctx, row); err != nil {
		if ErrorIs(err, strata.EInvalid) {
			return &strata.Error{Code: strata.EInvalid, Message: "The account is already linked to another " + provider + " identity.", Err: err}
		}
		return fmt.Errorf("link %s identity: %w", provider, err)
	}
	return nil
}

// oauth2Create creates a record through the normal create path (createRule
// with @request.context "oauth2") and links it, in one transaction.
func (a *App) oauth2Create(ctx context.Context, req *strata.RequestInfo, c *strata.Collection, provider string, user *ExternalUser, createData map[string]any) (*strata.Record, error) {
	in := Input{}
	for k, v := range createData {
		switch k {
		case "password", "passwordConfirm", "verified", "email", "tokenKey":
			// Server-chosen: see below.
		default:
			in[k] = v
		}
	}
	// The email is the provider's. A different one from createData is
	// ignored: it would let an identity pre-claim someone else's address.
	if user.Email != "" {
		in["email"] = user.Email
	} else if e, _ := createData["email"].(string); e != "" {
		in["email"] = e
	}
	for key, field := range c.Auth.OAuth2.MappedFields {
		if field == "" || in[field] != nil {
			continue
		}
		f := c.Field(field)
		if f == nil || f.Type == strata.FieldFile {
			continue // avatars are not downloaded
		}
		var v string
		switch key {
		case "id":
			v = user.ID
		case "name":
			v = user.Name
		case "username":
			v = user.Username
		case "avatarURL":
			v = user.AvatarURL
		}
		if v != "" {
			in[field] = v
		}
	}
	pass := randomSecret(30)
	in["password"], in["passwordConfirm"] = pass, pass
	rreq := &strata.RequestInfo{Method: "POST"}
	if req != nil {
		cp := *req
		rreq = &cp
	}
	rreq.Context = strata.ContextOAuth2
	var rec *strata.Record
	_, err := a.write(ctx, func(tx strata.Tx) error {
		var err error
		if rec, err = a.createInTx(ctx, tx, rreq, c, in); err != nil {
			return err
		}
		if user.EmailVerified && user.Email != "" && strings.EqualFold(rec.String("email"), user.Email) && !rec.Bool("verified") {
			rec.Data["verified"] = true
			rec.Data["updated"] = strata.NowDate()
			if err := tx.UpdateRecord(ctx, rec); err != nil {
				return err
			}
		}
		return a.insertLink(ctx, tx, rec, provider, user.ID)
	})
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// ExternalUser is an identity as a provider describes it.
type ExternalUser struct {
	ID        string
	Name      string
	Username  string
	Email     string
	AvatarURL string
	// EmailVerified: the provider vouches that the user controls Email.
	// Only such an email may select an existing account.
	EmailVerified bool
	Raw           map[string]any
}

// oauth2Token is a token endpoint's answer.
type oauth2Token struct {
	AccessToken  string
	RefreshToken string
	IDToken      string
	Expiry       time.Time
}
