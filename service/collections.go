package service

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/strata-run/strata"
	"github.com/strata-run/strata/filter"
)

var (
	errSuperuserOnly = strata.Errorf(strata.EForbidden, "Only superusers can perform this action.")
	nameRe           = regexp.MustCompile(`^\w+$`)
	collectionIDRe   = regexp.MustCompile(`^\w{1,100}$`)
)

func ptr[T any](v T) *T { return &v }

// idField is the default primary key field every collection has.
func idField() *strata.Field {
	return &strata.Field{ID: "text3208210256", Name: "id", Type: strata.FieldText, System: true, Required: true,
		PrimaryKey: true, Min: 15, Max: 15, Pattern: "^[a-z0-9]+$", AutogeneratePattern: "[a-z0-9]{15}"}
}

// authSystemFields are the fields every auth collection keeps.
func authSystemFields() []*strata.Field {
	return []*strata.Field{
		{ID: "password901924565", Name: "password", Type: strata.FieldPassword, System: true, Hidden: true, Required: true, Min: 8},
		{ID: "text2504183744", Name: "tokenKey", Type: strata.FieldText, System: true, Hidden: true, Required: true,
			Min: 30, Max: 60, AutogeneratePattern: "[a-zA-Z0-9]{50}"},
		{ID: "email3885137012", Name: "email", Type: strata.FieldEmail, System: true, Required: true},
		{ID: "bool1547992806", Name: "emailVisibility", Type: strata.FieldBool, System: true},
		{ID: "bool256245529", Name: "verified", Type: strata.FieldBool, System: true},
	}
}

func autodateFields() []*strata.Field {
	return []*strata.Field{
		{ID: "autodate2990389176", Name: "created", Type: strata.FieldAutodate, OnCreate: true},
		{ID: "autodate3332085495", Name: "updated", Type: strata.FieldAutodate, OnCreate: true, OnUpdate: true},
	}
}

func authIndexes(c *strata.Collection) []string {
	return []string{
		fmt.Sprintf("CREATE UNIQUE INDEX `idx_tokenKey_%s` ON `%s` (`tokenKey`)", c.ID, c.Name),
		fmt.Sprintf("CREATE UNIQUE INDEX `idx_email_%s` ON `%s` (`email`) WHERE `email` != ''", c.ID, c.Name),
	}
}

func randomSecret(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// bootstrap creates _superusers and users in a fresh data dir.
func (a *App) bootstrap(ctx context.Context) error {
	if a.Collection(strata.SuperusersID) != nil {
		return nil
	}
	now := strata.NowDate()
	su := &strata.Collection{ID: strata.SuperusersID, Name: strata.SuperusersName, Type: strata.CollectionAuth, System: true,
		Created: now, Updated: now}
	su.Fields = append([]*strata.Field{idField()}, authSystemFields()...)
	su.Fields = append(su.Fields, autodateFields()...)
	su.Auth = strata.DefaultAuthOptions()
	su.Auth.AuthToken.Duration = 86400
	su.Auth.AuthAlert.Enabled = true
	su.Indexes = authIndexes(su)

	users := &strata.Collection{ID: strata.UsersID, Name: strata.UsersName, Type: strata.CollectionAuth,
		ListRule: ptr("id = @request.auth.id"), ViewRule: ptr("id = @request.auth.id"), CreateRule: ptr(""),
		UpdateRule: ptr("id = @request.auth.id"), DeleteRule: ptr("id = @request.auth.id"), Created: now, Updated: now}
	users.Fields = append([]*strata.Field{idField()}, authSystemFields()...)
	users.Fields = append(users.Fields,
		&strata.Field{ID: "text1579384326", Name: "name", Type: strata.FieldText, Max: 255},
		&strata.Field{ID: "file376926767", Name: "avatar", Type: strata.FieldFile, MaxSelect: 1,
			MimeTypes: []string{"image/jpeg", "image/png", "image/svg+xml", "image/gif", "image/webp"}},
	)
	users.Fields = append(users.Fields, autodateFields()...)
	users.Auth = strata.DefaultAuthOptions()
	users.Auth.OAuth2.MappedFields = map[string]string{"id": "", "name": "name", "username": "", "avatarURL": "avatar"}
	users.Indexes = authIndexes(users)

	for _, c := range []*strata.Collection{su, users} {
		for _, t := range c.Auth.Tokens() {
			t.Secret = randomSecret(50)
		}
	}
	_, err := a.write(ctx, func(tx strata.Tx) error {
		for _, c := range []*strata.Collection{su, users} {
			if err := tx.CreateCollection(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return a.reload(ctx)
}

// overlay is a Schema that sees a pending collection in place of (or in
// addition to) the stored one, so rules can be checked before saving.
type overlay struct {
	base    strata.Schema
	pending *strata.Collection
	oldName string
}

func (o overlay) Collection(idOrName string) *strata.Collection {
	p := o.pending
	if idOrName == p.ID || strings.EqualFold(idOrName, p.Name) {
		return p
	}
	if o.oldName != "" && strings.EqualFold(idOrName, o.oldName) {
		return nil
	}
	return o.base.Collection(idOrName)
}

// ListCollections lists collections for superusers. Filtering and sorting
// happen in memory: the set is small and already cached.
func (a *App) ListCollections(req *strata.RequestInfo) ([]*strata.Collection, error) {
	if !req.IsSuperuser() {
		return nil, errSuperuserOnly
	}
	return slices.Clone(a.Collections()), nil
}

// GetCollection returns one collection for superusers.
func (a *App) GetCollection(req *strata.RequestInfo, idOrName string) (*strata.Collection, error) {
	if !req.IsSuperuser() {
		return nil, errSuperuserOnly
	}
	c := a.Collection(idOrName)
	if c == nil {
		return nil, notFound()
	}
	return c, nil
}

func notFound() error {
	return strata.Errorf(strata.ENotFound, "The requested resource wasn't found.")
}

// CreateCollection creates a collection from its JSON definition.
func (a *App) CreateCollection(ctx context.Context, req *strata.RequestInfo, body json.RawMessage) (*strata.Collection, error) {
	if !req.IsSuperuser() {
		return nil, errSuperuserOnly
	}
	a.schemaMu.Lock()
	defer a.schemaMu.Unlock()
	if err := a.syncSchemaLocked(ctx); err != nil {
		return nil, err
	}
	c, err := a.prepareCreate(body, a.registry.Load(), "Failed to create collection.")
	if err != nil {
		return nil, err
	}
	if _, err := a.write(ctx, func(tx strata.Tx) error { return tx.CreateCollection(ctx, c) }); err != nil {
		return nil, collectionWriteError("Failed to create collection.", err)
	}
	if err := a.reload(ctx); err != nil {
		return nil, err
	}
	return a.Collection(c.ID), nil
}

// prepareCreate decodes, completes and validates a new collection against
// the collections in reg.
func (a *App) prepareCreate(body json.RawMessage, reg *registry, failMsg string) (*strata.Collection, error) {
	var in strata.Collection
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, decodeCollectionError(failMsg, err)
	}
	if in.Type == "" {
		in.Type = strata.CollectionBase
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, decodeCollectionError(failMsg, err)
		}
	}
	c := &in
	c.System = false
	if c.Type == strata.CollectionAuth && c.Auth == nil {
		c.Auth = strata.DefaultAuthOptions()
	}
	if c.ID == "" {
		c.ID = strata.DefaultCollectionID(c.Type, c.Name)
	}
	now := strata.NowDate()
	c.Created, c.Updated = now, now
	pos := inputPositions(c)
	a.normalizeFields(c, nil)
	if c.Auth != nil {
		for _, t := range c.Auth.Tokens() {
			if t.Secret == "" {
				t.Secret = randomSecret(50)
			}
		}
	}
	if errs := a.validateCollection(c, nil, reg, pos); len(errs) > 0 {
		return nil, strata.ValidationError(failMsg, errs)
	}
	return c, nil
}

// inputPositions remembers where each submitted field was, so that errors
// are keyed by the client's own indexes (API.md §1.3) even after system
// fields are inserted.
func inputPositions(c *strata.Collection) map[*strata.Field]int {
	pos := make(map[*strata.Field]int, len(c.Fields))
	for i, f := range c.Fields {
		pos[f] = i
	}
	return pos
}

func decodeCollectionError(msg string, err error) error {
	if fe, ok := err.(*strata.FieldError); ok {
		return strata.ValidationError(msg, map[string]any{"fields": fe})
	}
	return strata.ValidationError("Failed to load the submitted data due to invalid formatting.", nil)
}

func collectionWriteError(msg string, err error) error {
	if e, ok := err.(*strata.Error); ok && e.Code == strata.EInvalid {
		if e.Data == nil {
			e.Data = map[string]any{}
		}
		return &strata.Error{Code: strata.EInvalid, Message: msg, Data: e.Data, Err: e}
	}
	return err
}

// UpdateCollection applies a partial definition: present keys replace,
// absent keys stay (API.md §3).
func (a *App) UpdateCollection(ctx context.Context, req *strata.RequestInfo, idOrName string, body json.RawMessage) (*strata.Collection, error) {
	if !req.IsSuperuser() {
		return nil, errSuperuserOnly
	}
	a.schemaMu.Lock()
	defer a.schemaMu.Unlock()
	if err := a.syncSchemaLocked(ctx); err != nil {
		return nil, err
	}
	old := a.Collection(idOrName)
	if old == nil {
		return nil, notFound()
	}
	c, err := a.prepareUpdate(old, body, a.registry.Load(), "Failed to update collection.")
	if err != nil {
		return nil, err
	}
	if _, err := a.write(ctx, func(tx strata.Tx) error { return tx.UpdateCollection(ctx, old, c) }); err != nil {
		return nil, collectionWriteError("Failed to update collection.", err)
	}
	if err := a.reload(ctx); err != nil {
		return nil, err
	}
	return a.Collection(c.ID), nil
}

// prepareUpdate merges a partial definition over old and validates the
// result against the collections in reg.
func (a *App) prepareUpdate(old *strata.Collection, body json.RawMessage, reg *registry, failMsg string) (*strata.Collection, error) {
	c := old.Clone()
	// Decode over the clone: present keys replace. Fields are decoded
	// separately so that a missing "fields" keeps the stored ones.
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil {
		return nil, strata.ValidationError("Failed to load the submitted data due to invalid formatting.", nil)
	}
	storedFields := c.Fields
	c.Fields = nil
	if raw, ok := keys["oauth2"]; ok && c.Auth != nil {
		// json decodes into existing slice elements and maps, merging
		// them; a sent provider list or field mapping replaces the stored one.
		var o map[string]json.RawMessage
		if json.Unmarshal(raw, &o) == nil {
			if _, ok := o["providers"]; ok {
				c.Auth.OAuth2.Providers = nil
			}
			if _, ok := o["mappedFields"]; ok {
				c.Auth.OAuth2.MappedFields = nil
			}
		}
	}
	if err := json.Unmarshal(body, c); err != nil {
		return nil, decodeCollectionError(failMsg, err)
	}
	if c.Auth != nil && old.Auth != nil {
		// Secrets are write-only: keep the stored ones unless new ones were sent.
		oldTokens := old.Auth.Tokens()
		for name, t := range c.Auth.Tokens() {
			if t.Secret == "" {
				t.Secret = oldTokens[name].Secret
			}
		}
		for i := range c.Auth.OAuth2.Providers {
			p := &c.Auth.OAuth2.Providers[i]
			if p.ClientSecret == "" {
				for _, op := range old.Auth.OAuth2.Providers {
					if op.Name == p.Name {
						p.ClientSecret = op.ClientSecret
					}
				}
			}
		}
		if c.Auth.AuthRule == nil || old.Auth.AuthRule == nil || *c.Auth.AuthRule != *old.Auth.AuthRule {
			// Changing who may authenticate must end every existing session.
			c.Auth.AuthToken.Secret = randomSecret(50)
		}
	}
	var pos map[*strata.Field]int
	if _, ok := keys["fields"]; ok {
		pos = inputPositions(c)
	} else {
		c.Fields = storedFields
	}
	errs := map[string]any{}
	if c.ID != old.ID {
		errs["id"] = strata.NewFieldError("validation_pk_change", "The collection id cannot be changed.", nil)
		c.ID = old.ID
	}
	if c.Type != old.Type {
		errs["type"] = strata.NewFieldError("validation_collection_type_change", "Collection type cannot be changed.", nil)
	}
	c.System = old.System
	c.Created = old.Created
	c.Updated = strata.NowDate()
	if old.System {
		if c.Name != old.Name {
			errs["name"] = strata.NewFieldError("validation_collection_system_name_change", "System collection name cannot be changed.", nil)
		}
		for _, r := range []struct {
			name     string
			old, new *string
		}{{"listRule", old.ListRule, c.ListRule}, {"viewRule", old.ViewRule, c.ViewRule}, {"createRule", old.CreateRule, c.CreateRule},
			{"updateRule", old.UpdateRule, c.UpdateRule}, {"deleteRule", old.DeleteRule, c.DeleteRule}} {
			if (r.old == nil) != (r.new == nil) || (r.old != nil && *r.old != *r.new) {
				errs[r.name] = strata.NewFieldError("validation_collection_system_rule_change", "System collection rules cannot be changed.", nil)
			}
		}
	}
	a.normalizeFields(c, old)
	for k, v := range a.validateCollection(c, old, reg, pos) {
		if _, ok := errs[k]; !ok {
			errs[k] = v
		}
	}
	if len(errs) > 0 {
		return nil, strata.ValidationError(failMsg, errs)
	}
	return c, nil
}

// normalizeFields assigns field ids, re-adds system fields the client left
// out and rewrites index table names to the collection's.
func (a *App) normalizeFields(c, old *strata.Collection) {
	var fields []*strata.Field
	for _, f := range c.Fields {
		if f != nil {
			fields = append(fields, f)
		}
	}
	c.Fields = fields
	used := map[string]bool{}
	for _, f := range c.Fields {
		if f.ID != "" {
			used[f.ID] = true
		}
	}
	for _, f := range c.Fields {
		if f.ID != "" {
			continue
		}
		id := strata.DefaultFieldID(f.Type, f.Name)
		for n := 2; used[id]; n++ {
			id = strata.DefaultFieldID(f.Type, f.Name) + fmt.Sprint(n)
		}
		f.ID, used[id] = id, true
	}
	// System fields: keep the stored definition's immutable parts.
	ensure := func(sys *strata.Field, first bool) {
		if f := c.FieldByID(sys.ID); f != nil {
			f.System = true
			f.Name, f.Type = sys.Name, sys.Type
			if sys.Name == "id" {
				f.PrimaryKey, f.Required = true, true
			}
			if sys.Type == strata.FieldPassword || sys.Name == "tokenKey" {
				f.Hidden, f.Required = true, true
			}
			return
		}
		if f := c.Field(sys.Name); f != nil && f.Type == sys.Type {
			f.ID, f.System = sys.ID, true
			return
		}
		if first {
			c.Fields = append([]*strata.Field{sys}, c.Fields...)
		} else {
			c.Fields = append(c.Fields, sys)
		}
	}
	ensure(idField(), true)
	if c.Type == strata.CollectionAuth {
		for _, f := range authSystemFields() {
			ensure(f, false)
		}
		for _, want := range authIndexes(c) {
			wi, _ := strata.ParseIndex(want)
			found := false
			for _, s := range c.Indexes {
				if p, err := strata.ParseIndex(s); err == nil && p.Unique && slices.Equal(p.ColumnNames(), wi.ColumnNames()) && len(p.Columns) == 1 {
					found = true
				}
			}
			if !found {
				c.Indexes = append(c.Indexes, want)
			}
		}
	}
	for _, f := range c.Fields {
		if f.Type == strata.FieldSelect && f.MaxSelect == 0 {
			f.MaxSelect = 1
		}
		if (f.Type == strata.FieldRelation || f.Type == strata.FieldFile) && f.MaxSelect == 0 {
			f.MaxSelect = 1
		}
	}
	if c.Indexes == nil {
		c.Indexes = []string{}
	}
	// Rewrite each index's table to the collection name (it may be renamed).
	for i, s := range c.Indexes {
		if p, err := strata.ParseIndex(s); err == nil {
			c.Indexes[i] = p.WithTable(c.Name)
		}
	}
}

var reservedFieldNames = map[string]bool{"null": true, "true": true, "false": true, "_rowid_": true,
	"collectionid": true, "collectionname": true, "expand": true}

// validateCollection checks a definition; old is nil on create.
func (a *App) validateCollection(c, old *strata.Collection, reg *registry, pos map[*strata.Field]int) map[string]any {
	errs := map[string]any{}
	req := strata.NewFieldError("validation_required", "Cannot be blank.", nil)
	switch {
	case c.Name == "":
		errs["name"] = req
	case len(c.Name) > 255:
		errs["name"] = strata.NewFieldError("validation_length_out_of_range", "The length must be between 1 and 255.", nil)
	case !nameRe.MatchString(c.Name):
		errs["name"] = strata.NewFieldError("validation_match_invalid", "Must be in a valid format.", nil)
	case strings.Contains(c.Name, "_via_"):
		errs["name"] = strata.NewFieldError("validation_invalid_name", "The name must not contain '_via_'.", nil)
	case strings.HasPrefix(c.Name, "_") && (old == nil || !old.System):
		errs["name"] = strata.NewFieldError("validation_invalid_name", "Collection names starting with an underscore are reserved.", nil)
	default:
		if other := reg.Collection(c.Name); other != nil && other.ID != c.ID {
			errs["name"] = strata.NewFieldError("validation_collection_name_exists", "Collection name must be unique (case insensitive).", nil)
		}
	}
	if old == nil {
		if !collectionIDRe.MatchString(c.ID) {
			errs["id"] = strata.NewFieldError("validation_match_invalid", "Must be in a valid format.", nil)
		} else if reg.Collection(c.ID) != nil {
			errs["id"] = strata.NewFieldError("validation_pk_change", "The collection id is already in use.", nil)
		}
	}
	switch c.Type {
	case strata.CollectionBase, strata.CollectionAuth:
	case strata.CollectionView:
		errs["type"] = strata.NewFieldError("validation_in_invalid", "View collections are not supported yet.", nil)
	default:
		errs["type"] = strata.NewFieldError("validation_in_invalid", "Must be a valid value.", nil)
	}
	if fe := a.validateFields(c, old, reg, pos); len(fe) > 0 {
		errs["fields"] = fe
	}
	if _, bad := errs["fields"]; !bad {
		schema := overlay{base: reg, pending: c}
		if old != nil && old.Name != c.Name {
			schema.oldName = old.Name
		}
		for _, r := range []struct {
			name string
			rule *string
		}{{"listRule", c.ListRule}, {"viewRule", c.ViewRule}, {"createRule", c.CreateRule},
			{"updateRule", c.UpdateRule}, {"deleteRule", c.DeleteRule}} {
			if err := checkRule(c, schema, r.rule); err != nil {
				errs[r.name] = err
			}
		}
		if c.Auth != nil {
			if err := checkRule(c, schema, c.Auth.AuthRule); err != nil {
				errs["authRule"] = err
			}
			if c.Auth.ManageRule != nil && strings.TrimSpace(*c.Auth.ManageRule) == "" {
				errs["manageRule"] = strata.NewFieldError("validation_nil_or_not_empty_required", "Must be either null or a non-empty rule.", nil)
			} else if err := checkRule(c, schema, c.Auth.ManageRule); err != nil {
				errs["manageRule"] = err
			}
			if ie := validateAuthOptions(c); len(ie) > 0 {
				for k, v := range ie {
					errs[k] = v
				}
			}
			if me := validateMFA(c, schema); me != nil {
				errs["mfa"] = me
			}
		}
		if ie := a.validateIndexes(c, reg); len(ie) > 0 {
			errs["indexes"] = ie
		}
	}
	return errs
}

func checkRule(c *strata.Collection, schema strata.Schema, rule *string) *strata.FieldError {
	if rule == nil || strings.TrimSpace(*rule) == "" {
		return nil
	}
	if err := filter.Validate(*rule, c, schema); err != nil {
		msg := "Invalid rule."
		if e, ok := err.(*strata.Error); ok {
			msg = "Invalid rule. " + e.Message
		}
		return strata.NewFieldError("validation_invalid_rule", msg, nil)
	}
	return nil
}

func validateAuthOptions(c *strata.Collection) map[string]any {
	errs := map[string]any{}
	o := c.Auth
	for name, t := range o.Tokens() {
		if t.Duration < 10 || t.Duration > 94670856 {
			errs[name] = map[string]any{"duration": strata.NewFieldError("validation_min_greater_equal_than_required", "Must be between 10 and 94670856.", nil)}
		} else if t.Secret != "" && (len(t.Secret) < 30 || len(t.Secret) > 255) {
			errs[name] = map[string]any{"secret": strata.NewFieldError("validation_length_out_of_range", "The length must be between 30 and 255.", nil)}
		}
	}
	for i, f := range o.PasswordAuth.IdentityFields {
		if c.Field(f) == nil {
			errs["passwordAuth"] = map[string]any{"identityFields": map[string]any{fmt.Sprint(i): strata.NewFieldError("validation_missing_field", "Missing field "+f+".", nil)}}
		}
	}
	if o.OAuth2.Providers == nil {
		o.OAuth2.Providers = []strata.OAuth2Provider{}
	}
	if o.PasswordAuth.IdentityFields == nil {
		o.PasswordAuth.IdentityFields = []string{}
	}
	return errs
}

func (a *App) validateIndexes(c *strata.Collection, reg *registry) map[string]any {
	errs := map[string]any{}
	names := map[string]bool{}
	for i, s := range c.Indexes {
		key := fmt.Sprint(i)
		idx, err := strata.ParseIndex(s)
		if err != nil {
			errs[key] = strata.NewFieldError("validation_invalid_index_expression", "Invalid CREATE INDEX expression.", nil)
			continue
		}
		lname := strings.ToLower(idx.Name)
		if names[lname] {
			errs[key] = strata.NewFieldError("validation_duplicated_index_name", "The index name must be unique.", nil)
			continue
		}
		names[lname] = true
		// Index names are global in the database.
		for _, other := range reg.list {
			if other.ID == c.ID {
				continue
			}
			for _, os := range other.Indexes {
				if p, err := strata.ParseIndex(os); err == nil && strings.EqualFold(p.Name, idx.Name) {
					errs[key] = strata.NewFieldError("validation_existing_index_name", "The index name is already used by "+other.Name+".", nil)
				}
			}
		}
		for _, col := range idx.ColumnNames() {
			if c.Field(col) == nil {
				errs[key] = strata.NewFieldError("validation_invalid_index_column", "Unknown index column "+col+".", nil)
			}
		}
	}
	return errs
}

// validateFields checks field names, types and options.
func (a *App) validateFields(c, old *strata.Collection, reg *registry, pos map[*strata.Field]int) map[string]any {
	errs := map[string]any{}
	seen := map[string]bool{}
	ids := map[string]bool{}
	for i, f := range c.Fields {
		key := fmt.Sprint(i)
		if p, ok := pos[f]; ok {
			key = fmt.Sprint(p)
		}
		fe := map[string]any{}
		lname := strings.ToLower(f.Name)
		switch {
		case f.Name == "":
			fe["name"] = strata.NewFieldError("validation_required", "Cannot be blank.", nil)
		case len(f.Name) > 100:
			fe["name"] = strata.NewFieldError("validation_length_out_of_range", "The length must be between 1 and 100.", nil)
		case !nameRe.MatchString(f.Name):
			fe["name"] = strata.NewFieldError("validation_match_invalid", "Must be in a valid format.", nil)
		case strings.Contains(f.Name, "_via_"):
			fe["name"] = strata.NewFieldError("validation_invalid_name", "The name must not contain '_via_'.", nil)
		case reservedFieldNames[lname] || (c.IsAuth() && (f.Name == "passwordConfirm" || f.Name == "oldPassword")):
			fe["name"] = strata.NewFieldError("validation_not_in_invalid", "The name is reserved.", nil)
		case seen[lname]:
			fe["name"] = strata.NewFieldError("validation_duplicated_field_name", "Duplicated or invalid field name "+f.Name+".", nil)
		}
		seen[lname] = true
		if ids[f.ID] {
			fe["id"] = strata.NewFieldError("validation_duplicated_field_id", "Duplicated field id.", nil)
		}
		ids[f.ID] = true
		if len(f.Help) > 300 {
			fe["help"] = strata.NewFieldError("validation_length_too_long", "The length must be no more than 300.", nil)
		}
		if !strata.KnownFieldType(f.Type) {
			fe["type"] = strata.NewFieldError("validation_in_invalid", "Must be a valid value.", nil)
		} else if f.Type == strata.FieldPassword && !c.IsAuth() && !f.System {
			// Password fields belong to auth collections (their sign-in secret).
			fe["type"] = strata.NewFieldError("validation_in_invalid", "Password fields are only allowed in auth collections.", nil)
		}
		if old != nil {
			if of := old.FieldByID(f.ID); of != nil {
				if of.Type != f.Type {
					fe["type"] = strata.NewFieldError("validation_field_type_change", "The type of an existing field cannot be changed.", nil)
				}
				if f.Type == strata.FieldRelation && of.CollectionID != f.CollectionID {
					fe["collectionId"] = strata.NewFieldError("validation_field_relation_change", "The relation collection cannot be changed.", nil)
				}
			}
		}
		for k, v := range validateFieldOptions(c, f, reg) {
			if _, ok := fe[k]; !ok {
				fe[k] = v
			}
		}
		if len(fe) > 0 {
			errs[key] = fe
		}
	}
	if old != nil {
		for _, of := range old.Fields {
			if of.System && c.FieldByID(of.ID) == nil {
				errs["system"] = strata.NewFieldError("validation_system_field_change", "System fields cannot be removed.", nil)
			}
		}
	}
	return errs
}

func validateFieldOptions(c *strata.Collection, f *strata.Field, reg *registry) map[string]any {
	errs := map[string]any{}
	nonNeg := func(name string, v int) {
		if v < 0 {
			errs[name] = strata.NewFieldError("validation_min_greater_equal_than_required", "Must be no less than 0.", nil)
		}
	}
	switch f.Type {
	case strata.FieldText:
		nonNeg("min", f.Min)
		nonNeg("max", f.Max)
		if f.Max > 0 && f.Min > f.Max {
			errs["max"] = strata.NewFieldError("validation_min_greater_equal_than_required", "Must be no less than min.", nil)
		}
		if f.Pattern != "" {
			if _, err := regexp.Compile(f.Pattern); err != nil {
				errs["pattern"] = strata.NewFieldError("validation_invalid_regex", "Invalid regular expression.", nil)
			}
		}
		if f.AutogeneratePattern != "" {
			if _, err := compileGenerator(f.AutogeneratePattern); err != nil {
				errs["autogeneratePattern"] = strata.NewFieldError("validation_invalid_regex", "Invalid generator pattern.", nil)
			}
		}
		if f.PrimaryKey && f.Name != "id" {
			errs["primaryKey"] = strata.NewFieldError("validation_in_invalid", "Only the id field can be the primary key.", nil)
		}
	case strata.FieldPassword:
		if f.Min < 0 || f.Min > 71 {
			errs["min"] = strata.NewFieldError("validation_out_of_range", "Must be between 0 and 71.", nil)
		}
		if f.Max < 0 || f.Max > 71 || (f.Max > 0 && f.Max < f.Min) {
			errs["max"] = strata.NewFieldError("validation_out_of_range", "Must be between min and 71.", nil)
		}
	case strata.FieldNumber:
		if f.NumMin != nil && f.NumMax != nil && *f.NumMin > *f.NumMax {
			errs["max"] = strata.NewFieldError("validation_min_greater_equal_than_required", "Must be no less than min.", nil)
		}
	case strata.FieldSelect:
		if len(f.Values) == 0 {
			errs["values"] = strata.NewFieldError("validation_required", "Cannot be blank.", nil)
		}
		if f.MaxSelect > len(f.Values) && len(f.Values) > 0 {
			errs["maxSelect"] = strata.NewFieldError("validation_max_less_equal_than_required", fmt.Sprintf("Must be no greater than %d.", len(f.Values)), nil)
		}
		seen := map[string]bool{}
		for _, v := range f.Values {
			if v == "" || seen[v] {
				errs["values"] = strata.NewFieldError("validation_invalid_value", "Values must be non-empty and unique.", nil)
			}
			seen[v] = true
		}
	case strata.FieldRelation:
		target := reg.Collection(f.CollectionID)
		if f.CollectionID == c.ID || strings.EqualFold(f.CollectionID, c.Name) {
			target = c
		}
		if f.CollectionID == "" {
			errs["collectionId"] = strata.NewFieldError("validation_required", "Cannot be blank.", nil)
		} else if target == nil {
			errs["collectionId"] = strata.NewFieldError("validation_missing_collection", "The relation collection doesn't exist.", nil)
		} else {
			f.CollectionID = target.ID
		}
		nonNeg("minSelect", f.MinSelect)
		if f.MaxSelect > 0 && f.MinSelect > f.MaxSelect {
			errs["maxSelect"] = strata.NewFieldError("validation_min_greater_equal_than_required", "Must be no less than minSelect.", nil)
		}
	case strata.FieldAutodate:
		if !f.OnCreate && !f.OnUpdate {
			errs["onCreate"] = strata.NewFieldError("validation_required", "At least one of onCreate or onUpdate must be set.", nil)
		}
	case strata.FieldDate:
		if f.DateMin != "" {
			if _, ok := strata.ParseDate(f.DateMin); !ok {
				errs["min"] = strata.NewFieldError("validation_invalid_date", "Must be a valid date.", nil)
			}
		}
		if f.DateMax != "" {
			if _, ok := strata.ParseDate(f.DateMax); !ok {
				errs["max"] = strata.NewFieldError("validation_invalid_date", "Must be a valid date.", nil)
			}
		}
	case strata.FieldEmail, strata.FieldURL:
		if len(f.OnlyDomains) > 0 && len(f.ExceptDomains) > 0 {
			errs["onlyDomains"] = strata.NewFieldError("validation_either_only_or_except", "Only one of onlyDomains or exceptDomains may be set.", nil)
		}
	}
	if f.MaxSize < 0 {
		errs["maxSize"] = strata.NewFieldError("validation_min_greater_equal_than_required", "Must be no less than 0.", nil)
	}
	return errs
}

// DeleteCollection deletes a non-system collection that nothing references.
func (a *App) DeleteCollection(ctx context.Context, req *strata.RequestInfo, idOrName string) error {
	if !req.IsSuperuser() {
		return errSuperuserOnly
	}
	a.schemaMu.Lock()
	defer a.schemaMu.Unlock()
	if err := a.syncSchemaLocked(ctx); err != nil {
		return err
	}
	c := a.Collection(idOrName)
	if c == nil {
		return notFound()
	}
	if c.System {
		return strata.Errorf(strata.EInvalid, "System collections cannot be deleted.")
	}
	for _, other := range a.Collections() {
		if other.ID == c.ID {
			continue
		}
		for _, f := range other.Fields {
			if f.Type == strata.FieldRelation && f.CollectionID == c.ID {
				return strata.Errorf(strata.EInvalid, "Failed to delete collection probably due to existing reference in %s.", other.Name)
			}
		}
	}
	if _, err := a.write(ctx, func(tx strata.Tx) error { return tx.DeleteCollection(ctx, c) }); err != nil {
		return err
	}
	return a.reload(ctx)
}

// TruncateCollection deletes every record of a collection, applying the
// same cascade as single deletes.
func (a *App) TruncateCollection(ctx context.Context, req *strata.RequestInfo, idOrName string) ([]strata.Change, error) {
	if !req.IsSuperuser() {
		return nil, errSuperuserOnly
	}
	c := a.Collection(idOrName)
	if c == nil {
		return nil, notFound()
	}
	if c.Type == strata.CollectionView {
		return nil, strata.Errorf(strata.EInvalid, "View collections cannot be truncated.")
	}
	referenced := len(a.references(c)) > 0
	return a.write(ctx, func(tx strata.Tx) error {
		if !referenced {
			return tx.TruncateCollection(ctx, c)
		}
		for {
			recs, err := tx.FindRecords(ctx, &strata.RecordQuery{Collection: c, Schema: a.Schema(), Limit: 500})
			if err != nil {
				return err
			}
			if len(recs) == 0 {
				return nil
			}
			for _, r := range recs {
				if err := a.deleteInTx(ctx, tx, r, 0); err != nil {
					return err
				}
			}
		}
	})
}

// relationRef is a relation field of some collection pointing at another.
type relationRef struct {
	collection *strata.Collection
	field      *strata.Field
}

// references lists the relation fields that target c.
func (a *App) references(c *strata.Collection) []relationRef {
	var out []relationRef
	for _, other := range a.Collections() {
		for _, f := range other.Fields {
			if f.Type == strata.FieldRelation && f.CollectionID == c.ID {
				out = append(out, relationRef{other, f})
			}
		}
	}
	return out
}

// Scaffolds returns blank collections of each type, as the dashboard's
// "new collection" form starts from.
func (a *App) Scaffolds(req *strata.RequestInfo) (map[string]*strata.Collection, error) {
	if !req.IsSuperuser() {
		return nil, errSuperuserOnly
	}
	base := &strata.Collection{Type: strata.CollectionBase, Fields: []*strata.Field{idField()}, Indexes: []string{},
		ListRule: nil, ViewRule: nil}
	auth := &strata.Collection{Type: strata.CollectionAuth, Auth: strata.DefaultAuthOptions(), Indexes: []string{}}
	auth.Fields = append([]*strata.Field{idField()}, authSystemFields()...)
	view := &strata.Collection{Type: strata.CollectionView, Fields: []*strata.Field{}, Indexes: []string{}}
	return map[string]*strata.Collection{"base": base, "auth": auth, "view": view}, nil
}

// ImportCollections creates or updates every collection in defs and, with
// deleteMissing, drops the non-system collections not listed, all in one
// transaction: a definition that fails validation changes nothing.
func (a *App) ImportCollections(ctx context.Context, req *strata.RequestInfo, defs []json.RawMessage, deleteMissing bool) error {
	if !req.IsSuperuser() {
		return errSuperuserOnly
	}
	const failMsg = "Failed to import collections."
	if len(defs) == 0 {
		return strata.ValidationError(failMsg, map[string]any{
			"collections": strata.NewFieldError("validation_required", "Cannot be blank.", nil)})
	}
	a.schemaMu.Lock()
	defer a.schemaMu.Unlock()
	if err := a.syncSchemaLocked(ctx); err != nil {
		return err
	}
	type op struct{ old, c *strata.Collection }
	var ops []op
	work := slices.Clone(a.Collections())
	keep := map[string]bool{}
	for i, raw := range defs {
		var head struct{ ID, Name string }
		if err := json.Unmarshal(raw, &head); err != nil {
			return strata.ValidationError(failMsg, map[string]any{"collections": map[string]any{
				fmt.Sprint(i): strata.NewFieldError("validation_invalid_json", "Invalid collection definition.", nil)}})
		}
		reg := newRegistry(work)
		old := reg.Collection(head.ID)
		if old == nil && head.ID == "" {
			old = reg.Collection(head.Name)
		}
		var c *strata.Collection
		var err error
		if old != nil {
			c, err = a.prepareUpdate(old, raw, reg, failMsg)
		} else {
			c, err = a.prepareCreate(raw, reg, failMsg)
		}
		if err != nil {
			var data any = map[string]any{}
			if e, ok := err.(*strata.Error); ok && e.Data != nil {
				data = e.Data
			}
			return strata.ValidationError(failMsg, map[string]any{"collections": map[string]any{fmt.Sprint(i): data}})
		}
		ops = append(ops, op{old, c})
		keep[c.ID] = true
		if old != nil {
			work[slices.Index(work, old)] = c
		} else {
			work = append(work, c)
		}
	}
	var drop []*strata.Collection
	if deleteMissing {
		for _, c := range work {
			if !keep[c.ID] && !c.System {
				drop = append(drop, c)
			}
		}
		for _, c := range drop {
			for _, other := range work {
				if other.ID == c.ID || slices.Contains(drop, other) {
					continue
				}
				for _, f := range other.Fields {
					if f.Type == strata.FieldRelation && f.CollectionID == c.ID {
						return strata.Errorf(strata.EInvalid, "Failed to delete collection probably due to existing reference in %s.", other.Name)
					}
				}
			}
		}
	}
	_, err := a.write(ctx, func(tx strata.Tx) error {
		for _, o := range ops {
			var err error
			if o.old != nil {
				err = tx.UpdateCollection(ctx, o.old, o.c)
			} else {
				err = tx.CreateCollection(ctx, o.c)
			}
			if err != nil {
				return collectionWriteError(failMsg, err)
			}
		}
		for _, c := range drop {
			if err := tx.DeleteCollection(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
	if rerr := a.reload(ctx); rerr != nil && err == nil {
		err = rerr
	}
	return err
}
