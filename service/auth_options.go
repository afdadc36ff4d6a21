package service

import (
	"strings"

	"github.com/strata-run/strata"
)

// validateMFA checks the mfa options of an auth collection as PocketBase
// does: a second factor needs a second method, so enabling MFA requires at
// least two of password, OTP and OAuth2; its duration and rule only
// matter (and are only checked) while it is enabled. It returns the
// errors under "mfa", or nil.
func validateMFA(c *strata.Collection, schema strata.Schema) map[string]any {
	o := c.Auth
	if o == nil || !o.MFA.Enabled {
		return nil
	}
	methods := 0
	for _, on := range []bool{o.PasswordAuth.Enabled, o.OTP.Enabled, o.OAuth2.Enabled} {
		if on {
			methods++
		}
	}
	if methods < 2 {
		return map[string]any{"enabled": strata.NewFieldError("validation_mfa_not_enough_auths",
			"MFA requires at least 2 auth methods to be enabled.", nil)}
	}
	errs := map[string]any{}
	if o.MFA.Duration < 10 || o.MFA.Duration > 86400 {
		errs["duration"] = strata.NewFieldError("validation_min_greater_equal_than_required", "Must be between 10 and 86400.", nil)
	}
	if rule := o.MFA.Rule; strings.TrimSpace(rule) != "" {
		if fe := checkRule(c, schema, &rule); fe != nil {
			errs["rule"] = fe
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}
