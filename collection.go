package strata

import (
	"encoding/json"
	"hash/crc32"
	"strconv"
	"strings"
)

// Collection types.
const (
	CollectionBase = "base"
	CollectionAuth = "auth"
	CollectionView = "view"
)

// Fixed ids of the collections every data dir starts with (API.md §1.5).
const (
	SuperusersID   = "pbc_3142635823"
	SuperusersName = "_superusers"
	UsersID        = "_pb_users_auth_"
	UsersName      = "users"
)

// Collection is a table of records with its schema and access rules.
// A nil rule means superusers only; a pointer to "" means everyone.
type Collection struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Type       string   `json:"type"`
	System     bool     `json:"system"`
	Fields     []*Field `json:"fields"`
	Indexes    []string `json:"indexes"`
	ListRule   *string  `json:"listRule"`
	ViewRule   *string  `json:"viewRule"`
	CreateRule *string  `json:"createRule"`
	UpdateRule *string  `json:"updateRule"`
	DeleteRule *string  `json:"deleteRule"`
	ViewQuery  string   `json:"viewQuery,omitempty"`
	Created    string   `json:"created"`
	Updated    string   `json:"updated"`

	// Auth holds the options of auth collections; nil for other types.
	Auth *AuthOptions `json:"-"`
}

// DefaultCollectionID is PocketBase's id for a new collection: "pbc_" +
// decimal CRC32(type+name).
func DefaultCollectionID(typ, name string) string {
	return "pbc_" + strconv.FormatUint(uint64(crc32.ChecksumIEEE([]byte(typ+name))), 10)
}

// IsAuth reports whether records of c can sign in.
func (c *Collection) IsAuth() bool { return c.Type == CollectionAuth }

// IsSuperusers reports whether c is the built-in _superusers collection.
func (c *Collection) IsSuperusers() bool { return c.ID == SuperusersID }

// Field returns the field named name (case-sensitive), or nil.
func (c *Collection) Field(name string) *Field {
	for _, f := range c.Fields {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// FieldByID returns the field with the given id, or nil.
func (c *Collection) FieldByID(id string) *Field {
	for _, f := range c.Fields {
		if f.ID == id {
			return f
		}
	}
	return nil
}

// Clone returns a deep copy that can be modified without affecting c, which
// may be shared by concurrent requests through the collection cache.
func (c *Collection) Clone() *Collection {
	b, err := c.StorageJSON()
	if err != nil {
		panic("strata: clone collection: " + err.Error())
	}
	var out Collection
	if err := json.Unmarshal(b, &out); err != nil {
		panic("strata: clone collection: " + err.Error())
	}
	return &out
}

// MarshalJSON adds the auth options (or the view query) to the common keys,
// as PocketBase serializes each collection type. Secrets are write-only and
// never part of it; see StorageJSON.
func (c *Collection) MarshalJSON() ([]byte, error) { return c.marshal(false) }

// StorageJSON is the collection as a store persists it: MarshalJSON plus the
// token and OAuth2 client secrets.
func (c *Collection) StorageJSON() ([]byte, error) { return c.marshal(true) }

func (c *Collection) marshal(withSecrets bool) ([]byte, error) {
	type plain Collection
	base, err := json.Marshal((*plain)(c))
	if err != nil {
		return nil, err
	}
	if c.Type != CollectionAuth || c.Auth == nil {
		return base, nil
	}
	auth := c.Auth
	if !withSecrets {
		cp := *c.Auth
		for _, t := range cp.tokens() {
			t.Secret = ""
		}
		cp.OAuth2.Providers = make([]OAuth2Provider, len(c.Auth.OAuth2.Providers))
		for i, p := range c.Auth.OAuth2.Providers {
			p.ClientSecret = ""
			cp.OAuth2.Providers[i] = p
		}
		auth = &cp
	}
	opts, err := json.Marshal(auth)
	if err != nil {
		return nil, err
	}
	// Both are JSON objects: splice opts' members into base.
	out := make([]byte, 0, len(base)+len(opts))
	out = append(out, base[:len(base)-1]...)
	out = append(out, ',')
	out = append(out, opts[1:]...)
	return out, nil
}

// tokens lists the token configs so secrets can be handled in one loop.
func (o *AuthOptions) tokens() []*TokenConfig {
	return []*TokenConfig{&o.AuthToken, &o.PasswordResetToken, &o.EmailChangeToken, &o.VerificationToken, &o.FileToken}
}

// Tokens lists the collection's token configs by their JSON names.
func (o *AuthOptions) Tokens() map[string]*TokenConfig {
	return map[string]*TokenConfig{
		"authToken": &o.AuthToken, "passwordResetToken": &o.PasswordResetToken,
		"emailChangeToken": &o.EmailChangeToken, "verificationToken": &o.VerificationToken,
		"fileToken": &o.FileToken,
	}
}

// UnmarshalJSON reads a collection of any type, including auth options.
func (c *Collection) UnmarshalJSON(b []byte) error {
	type plain Collection
	if err := json.Unmarshal(b, (*plain)(c)); err != nil {
		return err
	}
	if c.Type == CollectionAuth {
		// Decoding over existing options is a partial update (PATCH sends
		// only what changes); a new collection starts from the defaults.
		if c.Auth == nil {
			c.Auth = DefaultAuthOptions()
		}
		if err := json.Unmarshal(b, c.Auth); err != nil {
			return err
		}
	} else {
		c.Auth = nil
	}
	return nil
}

// EmailTemplate is a mail subject and HTML body with {PLACEHOLDERS}.
type EmailTemplate struct {
	Subject string `json:"subject"`
	Body    string `json:"body"`
}

// TokenConfig is one token type's lifetime and signing secret. The secret
// is write-only: it is stored but never returned by the API.
type TokenConfig struct {
	Duration int64  `json:"duration"`
	Secret   string `json:"secret,omitempty"`
}

// OAuth2Provider configures one OAuth2/OpenID Connect provider.
type OAuth2Provider struct {
	Name         string         `json:"name"`
	ClientID     string         `json:"clientId"`
	ClientSecret string         `json:"clientSecret,omitempty"`
	AuthURL      string         `json:"authURL"`
	TokenURL     string         `json:"tokenURL"`
	UserInfoURL  string         `json:"userInfoURL"`
	DisplayName  string         `json:"displayName"`
	PKCE         *bool          `json:"pkce"`
	Extra        map[string]any `json:"extra"`
}

// AuthOptions are the options of an auth collection (API.md §3.1).
type AuthOptions struct {
	AuthRule   *string `json:"authRule"`
	ManageRule *string `json:"manageRule"`
	AuthAlert  struct {
		Enabled       bool          `json:"enabled"`
		EmailTemplate EmailTemplate `json:"emailTemplate"`
	} `json:"authAlert"`
	OAuth2 struct {
		Providers    []OAuth2Provider  `json:"providers"`
		MappedFields map[string]string `json:"mappedFields"`
		Enabled      bool              `json:"enabled"`
	} `json:"oauth2"`
	PasswordAuth struct {
		Enabled        bool     `json:"enabled"`
		IdentityFields []string `json:"identityFields"`
	} `json:"passwordAuth"`
	MFA struct {
		Enabled  bool   `json:"enabled"`
		Duration int64  `json:"duration"`
		Rule     string `json:"rule"`
	} `json:"mfa"`
	OTP struct {
		Enabled       bool          `json:"enabled"`
		Duration      int64         `json:"duration"`
		Length        int           `json:"length"`
		EmailTemplate EmailTemplate `json:"emailTemplate"`
	} `json:"otp"`
	AuthToken                  TokenConfig   `json:"authToken"`
	PasswordResetToken         TokenConfig   `json:"passwordResetToken"`
	EmailChangeToken           TokenConfig   `json:"emailChangeToken"`
	VerificationToken          TokenConfig   `json:"verificationToken"`
	FileToken                  TokenConfig   `json:"fileToken"`
	VerificationTemplate       EmailTemplate `json:"verificationTemplate"`
	ResetPasswordTemplate      EmailTemplate `json:"resetPasswordTemplate"`
	ConfirmEmailChangeTemplate EmailTemplate `json:"confirmEmailChangeTemplate"`
}

// DefaultAuthOptions returns PocketBase's defaults for a new auth collection.
// Token secrets are left empty; the service generates them on creation.
func DefaultAuthOptions() *AuthOptions {
	empty := ""
	o := &AuthOptions{AuthRule: &empty}
	o.AuthAlert.Enabled = true
	o.AuthAlert.EmailTemplate = EmailTemplate{
		Subject: "Login from a new location",
		Body:    "<p>Hello,</p>\n<p>We noticed a login to your {APP_NAME} account from a new location:</p>\n<p><em>{ALERT_INFO}</em></p>\n<p>If this wasn't you, you should immediately change your {APP_NAME} account password to revoke access from all other locations.</p>\n<p>Thanks,<br/>\n{APP_NAME} team</p>",
	}
	o.OAuth2.Providers = []OAuth2Provider{}
	o.OAuth2.MappedFields = map[string]string{"id": "", "name": "", "username": "", "avatarURL": ""}
	o.PasswordAuth.Enabled = true
	o.PasswordAuth.IdentityFields = []string{"email"}
	o.MFA.Duration = 600
	o.OTP.Duration = 180
	o.OTP.Length = 8
	o.OTP.EmailTemplate = EmailTemplate{
		Subject: "OTP for {APP_NAME}",
		Body:    "<p>Hello,</p>\n<p>Your one-time password is: <strong>{OTP}</strong></p>\n<p><i>If you didn't ask for the one-time password, you can ignore this email.</i></p>\n<p>Thanks,<br/>\n{APP_NAME} team</p>",
	}
	o.AuthToken.Duration = 432000
	o.PasswordResetToken.Duration = 1800
	o.EmailChangeToken.Duration = 1800
	o.VerificationToken.Duration = 86400
	o.FileToken.Duration = 180
	o.VerificationTemplate = EmailTemplate{
		Subject: "Verify your {APP_NAME} email",
		Body:    "<p>Hello,</p>\n<p>Thank you for joining us at {APP_NAME}.</p>\n<p>Click on the button below to verify your email address.</p>\n<p>\n  <a class=\"btn\" href=\"{APP_URL}/_/#/auth/confirm-verification/{TOKEN}\" target=\"_blank\" rel=\"noopener\">Verify</a>\n</p>\n<p>\n  Thanks,<br/>\n  {APP_NAME} team\n</p>",
	}
	o.ResetPasswordTemplate = EmailTemplate{
		Subject: "Reset your {APP_NAME} password",
		Body:    "<p>Hello,</p>\n<p>Click on the button below to reset your password.</p>\n<p>\n  <a class=\"btn\" href=\"{APP_URL}/_/#/auth/confirm-password-reset/{TOKEN}\" target=\"_blank\" rel=\"noopener\">Reset password</a>\n</p>\n<p><i>If you didn't ask to reset your password, you can ignore this email.</i></p>\n<p>\n  Thanks,<br/>\n  {APP_NAME} team\n</p>",
	}
	o.ConfirmEmailChangeTemplate = EmailTemplate{
		Subject: "Confirm your {APP_NAME} new email address",
		Body:    "<p>Hello,</p>\n<p>Click on the button below to confirm your new email address.</p>\n<p>\n  <a class=\"btn\" href=\"{APP_URL}/_/#/auth/confirm-email-change/{TOKEN}\" target=\"_blank\" rel=\"noopener\">Confirm new email</a>\n</p>\n<p><i>If you didn't ask to change your email address, you can ignore this email.</i></p>\n<p>\n  Thanks,<br/>\n  {APP_NAME} team\n</p>",
	}
	return o
}

// Schema resolves collections by id or name. The filter compiler and the
// stores use it to follow relations into other collections.
type Schema interface {
	// Collection returns the collection with the given id or name
	// (case-insensitive name match), or nil.
	Collection(idOrName string) *Collection
}

// RuleIsSet reports whether a rule is non-nil, i.e. not superusers-only.
func RuleIsSet(r *string) bool { return r != nil }

// RuleIsPublic reports whether a rule lets everyone through.
func RuleIsPublic(r *string) bool { return r != nil && strings.TrimSpace(*r) == "" }
