package service

import (
	"context"
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/strata-run/strata"
)

// Token types (the "type" claim).
const (
	TokenAuth          = "auth"
	TokenFile          = "file"
	TokenVerification  = "verification"
	TokenPasswordReset = "passwordReset"
	TokenEmailChange   = "emailChange"
)

// tokenClaims are PocketBase's claims (API.md §7.2): no iat.
type tokenClaims struct {
	ID           string `json:"id"`
	Type         string `json:"type"`
	CollectionID string `json:"collectionId"`
	Refreshable  *bool  `json:"refreshable,omitempty"`
	Email        string `json:"email,omitempty"`
	NewEmail     string `json:"newEmail,omitempty"`
	jwt.RegisteredClaims
}

// tokenConfig returns the collection's config for a token type.
func tokenConfig(c *strata.Collection, typ string) *strata.TokenConfig {
	if c.Auth == nil {
		return nil
	}
	switch typ {
	case TokenAuth:
		return &c.Auth.AuthToken
	case TokenFile:
		return &c.Auth.FileToken
	case TokenVerification:
		return &c.Auth.VerificationToken
	case TokenPasswordReset:
		return &c.Auth.PasswordResetToken
	case TokenEmailChange:
		return &c.Auth.EmailChangeToken
	}
	return nil
}

// signingKey binds a token to the record's tokenKey and the collection's
// per-type secret: rotating either invalidates every earlier token.
func signingKey(r *strata.Record, typ string) []byte {
	cfg := tokenConfig(r.Collection, typ)
	if cfg == nil {
		return nil
	}
	return []byte(r.String("tokenKey") + cfg.Secret)
}

// NewToken signs a token of typ for the auth record r. duration 0 uses the
// collection's configured duration.
func NewToken(r *strata.Record, typ string, duration time.Duration, refreshable bool, extra map[string]string) (string, error) {
	cfg := tokenConfig(r.Collection, typ)
	if cfg == nil {
		return "", strata.Errorf(strata.EInvalid, "Not an auth collection.")
	}
	if duration <= 0 {
		duration = time.Duration(cfg.Duration) * time.Second
	}
	claims := tokenClaims{
		ID: r.ID(), Type: typ, CollectionID: r.Collection.ID,
		Email: extra["email"], NewEmail: extra["newEmail"],
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Now().Add(duration))},
	}
	if typ == TokenAuth {
		claims.Refreshable = &refreshable
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(signingKey(r, typ))
}

// tokenParser accepts HS256 only, and requires exp: alg "none" or RS/HS
// confusion never gets as far as a signature check.
var tokenParser = jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())

// errInvalidToken is returned for every token failure so callers cannot
// tell which check failed.
var errInvalidToken = errors.New("invalid or expired token")

// VerifyToken checks a token of the expected type and returns its record and
// claims. The unverified claims only select which record's key to try; they
// are trusted after the signature, expiry and type check out.
func (a *App) VerifyToken(ctx context.Context, token, typ string) (*strata.Record, *tokenClaims, error) {
	var unverified tokenClaims
	if _, _, err := tokenParser.ParseUnverified(token, &unverified); err != nil {
		return nil, nil, errInvalidToken
	}
	if unverified.Type != typ || unverified.ID == "" || unverified.CollectionID == "" {
		return nil, nil, errInvalidToken
	}
	c := a.Collection(unverified.CollectionID)
	if c == nil || !c.IsAuth() || c.ID != unverified.CollectionID {
		return nil, nil, errInvalidToken
	}
	rec, err := a.findByID(ctx, c, unverified.ID)
	if err != nil || rec == nil {
		return nil, nil, errInvalidToken
	}
	var claims tokenClaims
	_, err = tokenParser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) {
		return signingKey(rec, typ), nil
	})
	if err != nil || claims.Type != typ || claims.ID != rec.ID() || claims.CollectionID != c.ID {
		return nil, nil, errInvalidToken
	}
	return rec, &claims, nil
}
