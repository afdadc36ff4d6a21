package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strings"

	"github.com/strata-run/strata"
)

// S3Config is an S3-compatible storage target.
type S3Config struct {
	Enabled        bool   `json:"enabled"`
	Bucket         string `json:"bucket"`
	Region         string `json:"region"`
	Endpoint       string `json:"endpoint"`
	AccessKey      string `json:"accessKey"`
	Secret         string `json:"secret,omitempty"`
	ForcePathStyle bool   `json:"forcePathStyle"`
}

// RateLimitRule is one PocketBase rate-limit rule.
type RateLimitRule struct {
	Label       string `json:"label"`
	Audience    string `json:"audience"`
	Duration    int64  `json:"duration"`
	MaxRequests int    `json:"maxRequests"`
}

// Settings are the application settings in PocketBase's shape (API.md §11),
// persisted in the store and applied without a restart.
type Settings struct {
	SuperuserIPs []string `json:"superuserIPs"`
	SMTP         struct {
		Enabled    bool   `json:"enabled"`
		Port       int    `json:"port"`
		Host       string `json:"host"`
		Username   string `json:"username"`
		Password   string `json:"password,omitempty"`
		AuthMethod string `json:"authMethod"`
		TLS        bool   `json:"tls"`
		LocalName  string `json:"localName"`
	} `json:"smtp"`
	Backups struct {
		Cron        string   `json:"cron"`
		CronMaxKeep int      `json:"cronMaxKeep"`
		S3          S3Config `json:"s3"`
	} `json:"backups"`
	S3   S3Config `json:"s3"`
	Meta struct {
		AppName       string `json:"appName"`
		AppURL        string `json:"appURL"`
		SenderName    string `json:"senderName"`
		SenderAddress string `json:"senderAddress"`
		HideControls  bool   `json:"hideControls"`
	} `json:"meta"`
	RateLimits struct {
		Rules       []RateLimitRule `json:"rules"`
		ExcludedIPs []string        `json:"excludedIPs"`
		Enabled     bool            `json:"enabled"`
	} `json:"rateLimits"`
	TrustedProxy struct {
		Headers       []string `json:"headers"`
		UseLeftmostIP bool     `json:"useLeftmostIP"`
	} `json:"trustedProxy"`
	Batch struct {
		Enabled     bool  `json:"enabled"`
		MaxRequests int   `json:"maxRequests"`
		Timeout     int64 `json:"timeout"`
		MaxBodySize int64 `json:"maxBodySize"`
	} `json:"batch"`
	Logs struct {
		MaxDays   int  `json:"maxDays"`
		MinLevel  int  `json:"minLevel"`
		LogIP     bool `json:"logIP"`
		LogAuthID bool `json:"logAuthId"`
	} `json:"logs"`
}

// DefaultSettings returns PocketBase v0.39's defaults.
func DefaultSettings() *Settings {
	s := &Settings{SuperuserIPs: []string{}}
	s.SMTP.Port = 587
	s.SMTP.Host = "smtp.example.com"
	s.Meta.AppName = "Acme"
	s.Meta.AppURL = "http://localhost:8090"
	s.Meta.SenderName = "Support"
	s.Meta.SenderAddress = "support@example.com"
	s.RateLimits.Rules = []RateLimitRule{
		{Label: "*:auth", Duration: 3, MaxRequests: 2},
		{Label: "*:create", Duration: 5, MaxRequests: 20},
		{Label: "/api/batch", Duration: 1, MaxRequests: 3},
		{Label: "/api/", Duration: 10, MaxRequests: 300},
	}
	s.RateLimits.ExcludedIPs = []string{}
	s.TrustedProxy.Headers = []string{}
	s.Batch.MaxRequests = 50
	s.Batch.Timeout = 3
	s.Logs.MaxDays = 5
	s.Logs.LogIP = true
	return s
}

// Public returns a copy with write-only secrets removed, for API output.
func (s *Settings) Public() *Settings {
	cp := s.clone()
	cp.SMTP.Password = ""
	cp.S3.Secret = ""
	cp.Backups.S3.Secret = ""
	return cp
}

func (s *Settings) clone() *Settings {
	b, err := json.Marshal(s)
	if err != nil {
		panic("settings: " + err.Error())
	}
	out := new(Settings)
	if err := json.Unmarshal(b, out); err != nil {
		panic("settings: " + err.Error())
	}
	return out
}

const settingsKey = "settings"

func (a *App) loadSettings(ctx context.Context) error {
	s := DefaultSettings()
	raw, ok, err := a.store.Setting(ctx, settingsKey)
	if err != nil {
		return fmt.Errorf("load settings: %w", err)
	}
	if ok {
		if err := json.Unmarshal(raw, s); err != nil {
			return fmt.Errorf("load settings: %w", err)
		}
	}
	a.settings.Store(s)
	return nil
}

// Settings returns the current settings (shared; do not modify).
func (a *App) Settings() *Settings { return a.settings.Load() }

// UpdateSettings merges a partial settings document (superusers only) and
// persists it.
func (a *App) UpdateSettings(ctx context.Context, req *strata.RequestInfo, patch json.RawMessage) (*Settings, error) {
	if !req.IsSuperuser() {
		return nil, errSuperuserOnly
	}
	a.schemaMu.Lock()
	defer a.schemaMu.Unlock()
	var next *Settings
	if _, err := a.write(ctx, func(tx strata.Tx) error {
		// Merge onto the stored settings, not this node's copy: another
		// node may have changed them since this one last loaded them.
		next = DefaultSettings()
		if raw, ok, err := tx.Setting(ctx, settingsKey); err != nil {
			return fmt.Errorf("load settings: %w", err)
		} else if ok {
			if err := json.Unmarshal(raw, next); err != nil {
				return fmt.Errorf("load settings: %w", err)
			}
		}
		dec := json.NewDecoder(bytes.NewReader(patch))
		if err := dec.Decode(next); err != nil {
			return strata.ValidationError("Failed to load the submitted data due to invalid formatting.", nil)
		}
		if errs := next.validate(); len(errs) > 0 {
			return strata.ValidationError("An error occurred while submitting the form.", errs)
		}
		raw, err := json.Marshal(next)
		if err != nil {
			return fmt.Errorf("encode settings: %w", err)
		}
		return tx.PutSetting(ctx, settingsKey, raw)
	}); err != nil {
		return nil, err
	}
	a.settings.Store(next)
	return next, nil
}

func (s *Settings) validate() map[string]any {
	errs := map[string]any{}
	sub := func(group string) map[string]any {
		m, ok := errs[group].(map[string]any)
		if !ok {
			m = map[string]any{}
			errs[group] = m
		}
		return m
	}
	req := strata.NewFieldError("validation_required", "Cannot be blank.", nil)
	if strings.TrimSpace(s.Meta.AppName) == "" {
		sub("meta")["appName"] = req
	} else if len(s.Meta.AppName) > 255 {
		sub("meta")["appName"] = strata.NewFieldError("validation_length_out_of_range", "The length must be between 1 and 255.", nil)
	}
	if s.Meta.AppURL == "" {
		sub("meta")["appURL"] = req
	} else if u, err := url.Parse(s.Meta.AppURL); err != nil || u.Scheme == "" || u.Host == "" {
		sub("meta")["appURL"] = strata.NewFieldError("validation_is_url", "Must be a valid URL.", nil)
	}
	if s.Meta.SenderName == "" {
		sub("meta")["senderName"] = req
	}
	if s.Meta.SenderAddress == "" {
		sub("meta")["senderAddress"] = req
	} else if _, err := mail.ParseAddress(s.Meta.SenderAddress); err != nil {
		sub("meta")["senderAddress"] = strata.NewFieldError("validation_is_email", "Must be a valid email address.", nil)
	}
	if s.SMTP.Enabled {
		if s.SMTP.Host == "" {
			sub("smtp")["host"] = req
		}
		if s.SMTP.Port <= 0 || s.SMTP.Port > 65535 {
			sub("smtp")["port"] = strata.NewFieldError("validation_required", "Cannot be blank.", nil)
		}
	}
	if s.Batch.MaxRequests < 0 {
		sub("batch")["maxRequests"] = strata.NewFieldError("validation_min_greater_equal_than_required", "Must be no less than 0.", nil)
	}
	if s.Batch.Timeout < 0 {
		sub("batch")["timeout"] = strata.NewFieldError("validation_min_greater_equal_than_required", "Must be no less than 0.", nil)
	}
	if s.Batch.MaxBodySize < 0 {
		sub("batch")["maxBodySize"] = strata.NewFieldError("validation_min_greater_equal_than_required", "Must be no less than 0.", nil)
	}
	if s.Logs.MaxDays < 0 {
		sub("logs")["maxDays"] = strata.NewFieldError("validation_min_greater_equal_than_required", "Must be no less than 0.", nil)
	}
	rules := map[string]any{}
	seen := map[string]bool{}
	for i, r := range s.RateLimits.Rules {
		re := map[string]any{}
		if strings.TrimSpace(r.Label) == "" {
			re["label"] = req
		} else if seen[r.Label+"|"+r.Audience] {
			re["label"] = strata.NewFieldError("validation_duplicated_rate_limit_tag", "Rate limit tag with label "+r.Label+" already exists.", nil)
		}
		seen[r.Label+"|"+r.Audience] = true
		if r.Audience != "" && r.Audience != "@guest" && r.Audience != "@auth" {
			re["audience"] = strata.NewFieldError("validation_in_invalid", "Must be a valid value.", nil)
		}
		if r.Duration < 1 {
			re["duration"] = strata.NewFieldError("validation_min_greater_equal_than_required", "Must be no less than 1.", nil)
		}
		if r.MaxRequests < 1 {
			re["maxRequests"] = strata.NewFieldError("validation_min_greater_equal_than_required", "Must be no less than 1.", nil)
		}
		if len(re) > 0 {
			rules[fmt.Sprint(i)] = re
		}
	}
	if len(rules) > 0 {
		sub("rateLimits")["rules"] = rules
	}
	for i, ip := range s.SuperuserIPs {
		if net.ParseIP(strings.TrimSpace(ip)) == nil {
			if _, _, err := net.ParseCIDR(strings.TrimSpace(ip)); err != nil {
				ips, _ := errs["superuserIPs"].(map[string]any)
				if ips == nil {
					ips = map[string]any{}
					errs["superuserIPs"] = ips
				}
				ips[fmt.Sprint(i)] = strata.NewFieldError("validation_invalid_ip", "Must be a valid IP address or CIDR range.", nil)
			}
		}
	}
	if s.SuperuserIPs == nil {
		s.SuperuserIPs = []string{}
	}
	if s.RateLimits.ExcludedIPs == nil {
		s.RateLimits.ExcludedIPs = []string{}
	}
	if s.TrustedProxy.Headers == nil {
		s.TrustedProxy.Headers = []string{}
	}
	if s.RateLimits.Rules == nil {
		s.RateLimits.Rules = []RateLimitRule{}
	}
	return errs
}
