package service

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// idTokenAlgs is the allow-list of ID token algorithms: asymmetric only.
// "none" and HMAC (whose key would be the client secret, or worse, a
// public key an attacker reads from the JWKS) are refused before any key
// is looked at.
var idTokenAlgs = []string{"RS256", "ES256"}

// verifyIDToken checks an ID token's signature against the provider's
// JWKS, then iss, aud (and azp), exp and, when the authorization request
// carried one, nonce. It returns the claims.
func (p *provider) verifyIDToken(ctx context.Context, raw, nonce string) (map[string]any, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return p.jwks.key(ctx, p, kid, t.Method.Alg())
	}, jwt.WithValidMethods(idTokenAlgs), jwt.WithExpirationRequired(), jwt.WithLeeway(time.Minute),
		jwt.WithAudience(p.clientID), jwt.WithIssuedAt())
	if err != nil {
		return nil, err
	}
	iss, _ := claims["iss"].(string)
	if len(p.issuers) > 0 && !slices.Contains(p.issuers, iss) {
		return nil, fmt.Errorf("issuer %q not allowed", iss)
	}
	if aud, _ := claims.GetAudience(); len(aud) > 1 {
		if azp, _ := claims["azp"].(string); azp != p.clientID {
			return nil, errors.New("azp is not the client id")
		}
	}
	if nonce != "" {
		got, _ := claims["nonce"].(string)
		if subtle.ConstantTimeCompare([]byte(got), []byte(nonce)) != 1 {
			return nil, errors.New("nonce mismatch")
		}
	}
	return claims, nil
}

// jwksCache keeps each JWKS URL's keys for a while; an unknown kid
// refreshes them (key rotation), at most once a minute per URL.
type jwksCache struct {
	mu   sync.Mutex
	sets map[string]*jwkSet
}

type jwkSet struct {
	keys    map[string]jwk // by kid
	list    []jwk
	fetched time.Time
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

var sharedJWKS = &jwksCache{sets: map[string]*jwkSet{}}

const (
	jwksTTL         = 10 * time.Minute
	jwksMinInterval = time.Minute
)

func (c *jwksCache) key(ctx context.Context, p *provider, kid, alg string) (any, error) {
	if p.jwksURL == "" {
		return nil, errors.New("no JWKS URL configured")
	}
	c.mu.Lock()
	set := c.sets[p.jwksURL]
	c.mu.Unlock()
	find := func(s *jwkSet) (jwk, bool) {
		if s == nil {
			return jwk{}, false
		}
		if kid != "" {
			k, ok := s.keys[kid]
			return k, ok
		}
		if len(s.list) == 1 {
			return s.list[0], true
		}
		return jwk{}, false
	}
	k, ok := find(set)
	if !ok || time.Since(set.fetched) > jwksTTL {
		if set == nil || time.Since(set.fetched) > jwksMinInterval {
			fresh, err := fetchJWKS(ctx, p)
			if err != nil {
				return nil, err
			}
			c.mu.Lock()
			c.sets[p.jwksURL] = fresh
			c.mu.Unlock()
			k, ok = find(fresh)
		}
	}
	if !ok {
		return nil, fmt.Errorf("no key %q in the JWKS", kid)
	}
	return k.public(alg)
}

func fetchJWKS(ctx context.Context, p *provider) (*jwkSet, error) {
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := getJSON(ctx, p.client, p.jwksURL, "", &doc); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	s := &jwkSet{keys: map[string]jwk{}, fetched: time.Now()}
	for _, k := range doc.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		s.list = append(s.list, k)
		if k.Kid != "" {
			s.keys[k.Kid] = k
		}
	}
	return s, nil
}

// public returns the key for alg, refusing a key of another type or one
// published for another algorithm.
func (k jwk) public(alg string) (any, error) {
	if k.Alg != "" && k.Alg != alg {
		return nil, fmt.Errorf("key %q is for %s, not %s", k.Kid, k.Alg, alg)
	}
	b64 := func(s string) (*big.Int, error) {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("bad key %q", k.Kid)
		}
		return new(big.Int).SetBytes(b), nil
	}
	switch alg {
	case "RS256":
		if k.Kty != "RSA" {
			break
		}
		n, err := b64(k.N)
		if err != nil {
			return nil, err
		}
		e, err := b64(k.E)
		if err != nil {
			return nil, err
		}
		if n.BitLen() < 2048 || !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31 {
			return nil, fmt.Errorf("weak RSA key %q", k.Kid)
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
	case "ES256":
		if k.Kty != "EC" || k.Crv != "P-256" {
			break
		}
		x, err := b64(k.X)
		if err != nil {
			return nil, err
		}
		y, err := b64(k.Y)
		if err != nil {
			return nil, err
		}
		if x.BitLen() > 256 || y.BitLen() > 256 {
			return nil, fmt.Errorf("bad EC key %q", k.Kid)
		}
		buf := make([]byte, 65)
		buf[0] = 4
		x.FillBytes(buf[1:33])
		y.FillBytes(buf[33:])
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), buf)
		if err != nil {
			return nil, fmt.Errorf("bad EC key %q: %w", k.Kid, err)
		}
		return pub, nil
	}
	return nil, fmt.Errorf("key %q (%s) cannot verify %s", k.Kid, k.Kty, alg)
}
