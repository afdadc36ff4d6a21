// Collections API through pb.collections, as a PocketBase v0.39 superuser uses it (API.md §3, §4).
import { useServer, test, assert, expectError, signUp, unique, crc32, DATE_RE } from './harness.js';

const srv = useServer();

test('a fresh data dir has _superusers and users with their fixed ids', async () => {
  const su = await srv.pb.collections.getOne('_superusers');
  assert.equal(su.id, 'pbc_3142635823');
  assert.equal(su.type, 'auth');
  assert.equal(su.system, true);
  assert.equal(su.listRule, null);

  const users = await srv.pb.collections.getOne('users');
  assert.equal(users.id, '_pb_users_auth_');
  assert.equal(users.name, 'users');
  assert.equal(users.type, 'auth');
  assert.equal(users.createRule, '');
  assert.equal(users.listRule, 'id = @request.auth.id');
  assert.deepEqual(users.passwordAuth, { enabled: true, identityFields: ['email'] });
  for (const name of ['id', 'password', 'tokenKey', 'email', 'emailVisibility', 'verified']) {
    assert.ok(users.fields.some((f) => f.name === name && f.system), `users.${name}`);
  }

  const byId = await srv.pb.collections.getOne('_pb_users_auth_');
  assert.equal(byId.name, 'users');
});

test('superuser auth via _superusers.authWithPassword', async () => {
  const pb = srv.client();
  const auth = await pb.collection('_superusers').authWithPassword('root@strata.test', 'root-pass-123');
  assert.equal(pb.authStore.isSuperuser, true);
  assert.equal(pb.authStore.isValid, true);
  assert.equal(auth.record.email, 'root@strata.test');
  assert.equal(auth.record.collectionName, '_superusers');
  assert.equal(auth.record.collectionId, 'pbc_3142635823');
  assert.equal(auth.record.password, undefined);
  assert.equal(auth.record.tokenKey, undefined);

  const err = await expectError(pb.collection('_superusers').authWithPassword('root@strata.test', 'wrong-pass'), 400);
  assert.equal(err.response.message, 'Failed to authenticate.');
});

test('collections routes need a superuser: 401 for guests, 403 for users', async () => {
  await expectError(srv.client().collections.getList(1, 10), 401);
  const user = await signUp(srv);
  await expectError(user.pb.collections.getList(1, 10), 403);
  await expectError(user.pb.collections.create({ name: unique('nope'), type: 'base' }), 403);
});

test('create a base collection with every field type and option', async () => {
  const name = unique('kitchen');
  const target = await srv.pb.collections.create({ name: unique('target'), type: 'base', fields: [{ name: 'title', type: 'text' }] });
  const col = await srv.pb.collections.create({
    name,
    type: 'base',
    listRule: '',
    viewRule: '',
    createRule: '@request.auth.id != ""',
    updateRule: null,
    deleteRule: null,
    fields: [
      { name: 'title', type: 'text', required: true, min: 3, max: 20, pattern: '^[A-Za-z ]+$', presentable: true },
      { name: 'count', type: 'number', min: 0, max: 100, onlyInt: true },
      { name: 'active', type: 'bool' },
      { name: 'contact', type: 'email' },
      { name: 'site', type: 'url' },
      { name: 'due', type: 'date' },
      { name: 'status', type: 'select', values: ['new', 'done'], maxSelect: 1 },
      { name: 'tags', type: 'select', values: ['a', 'b', 'c'], maxSelect: 3 },
      { name: 'meta', type: 'json' },
      { name: 'one', type: 'relation', collectionId: target.id, maxSelect: 1 },
      { name: 'many', type: 'relation', collectionId: target.id, maxSelect: 5, cascadeDelete: true },
      { name: 'body', type: 'editor' },
      { name: 'secret', type: 'text', hidden: true },
      { name: 'created', type: 'autodate', onCreate: true, onUpdate: false },
      { name: 'updated', type: 'autodate', onCreate: true, onUpdate: true },
    ],
    indexes: [`CREATE INDEX \`idx_${name}_title\` ON \`${name}\` (title)`],
  });

  assert.equal(col.id, `pbc_${crc32('base' + name)}`);
  assert.equal(col.name, name);
  assert.equal(col.type, 'base');
  assert.equal(col.system, false);
  assert.equal(col.listRule, '');
  assert.equal(col.createRule, '@request.auth.id != ""');
  assert.equal(col.updateRule, null);
  assert.match(col.created, DATE_RE);
  assert.deepEqual(col.indexes, [`CREATE INDEX \`idx_${name}_title\` ON \`${name}\` (title)`]);
  assert.equal(col.authRule, undefined, 'auth options are not serialized on base collections');

  const names = col.fields.map((f) => f.name);
  assert.deepEqual(names, ['id', 'title', 'count', 'active', 'contact', 'site', 'due', 'status', 'tags', 'meta', 'one', 'many', 'body', 'secret', 'created', 'updated']);
  const f = Object.fromEntries(col.fields.map((x) => [x.name, x]));
  assert.deepEqual(
    { id: f.id.id, type: f.id.type, system: f.id.system, primaryKey: f.id.primaryKey, min: f.id.min, max: f.id.max, pattern: f.id.pattern, autogeneratePattern: f.id.autogeneratePattern },
    { id: 'text3208210256', type: 'text', system: true, primaryKey: true, min: 15, max: 15, pattern: '^[a-z0-9]+$', autogeneratePattern: '[a-z0-9]{15}' },
  );
  for (const field of col.fields) assert.equal(field.id, field.name === 'id' ? 'text3208210256' : `${field.type}${crc32(field.name)}`, field.name);
  assert.equal(f.title.required, true);
  assert.equal(f.title.min, 3);
  assert.equal(f.title.max, 20);
  assert.equal(f.title.pattern, '^[A-Za-z ]+$');
  assert.equal(f.title.presentable, true);
  assert.equal(f.count.onlyInt, true);
  assert.equal(f.count.min, 0);
  assert.equal(f.count.max, 100);
  assert.deepEqual(f.status.values, ['new', 'done']);
  assert.equal(f.status.maxSelect, 1);
  assert.equal(f.tags.maxSelect, 3);
  assert.equal(f.one.collectionId, target.id);
  assert.equal(f.one.maxSelect, 1);
  assert.equal(f.many.cascadeDelete, true);
  assert.equal(f.many.maxSelect, 5);
  assert.equal(f.secret.hidden, true);
  assert.equal(f.created.onCreate, true);
  assert.equal(f.created.onUpdate, false);
  assert.equal(f.updated.onUpdate, true);

  const again = await srv.pb.collections.getOne(col.id);
  assert.deepEqual(again.fields, col.fields);
  assert.deepEqual(await srv.pb.collections.getOne(name), again);
});

test('create an auth collection: system fields and default options are added', async () => {
  const name = unique('members');
  const col = await srv.pb.collections.create({ name, type: 'auth', fields: [{ name: 'nick', type: 'text' }] });
  assert.equal(col.id, `pbc_${crc32('auth' + name)}`);
  assert.equal(col.type, 'auth');
  const names = col.fields.map((f) => f.name);
  for (const sys of ['id', 'password', 'tokenKey', 'email', 'emailVisibility', 'verified', 'nick']) assert.ok(names.includes(sys), sys);
  const pw = col.fields.find((f) => f.name === 'password');
  assert.equal(pw.type, 'password');
  assert.equal(pw.hidden, true);
  assert.equal(col.authRule, '');
  assert.equal(col.manageRule, null);
  assert.deepEqual(col.passwordAuth, { enabled: true, identityFields: ['email'] });
  assert.equal(col.authToken.duration, 432000);
  assert.equal(col.authToken.secret, undefined, 'token secrets are write-only');
  assert.equal(col.indexes.length, 2, JSON.stringify(col.indexes));
  assert.ok(col.indexes.some((i) => /^CREATE UNIQUE INDEX/i.test(i) && i.includes('`email`')));
  assert.ok(col.indexes.some((i) => /^CREATE UNIQUE INDEX/i.test(i) && i.includes('`tokenKey`')));

  // the new auth collection works for sign-up and password auth at once
  // (its rules default to null, so the superuser creates the account)
  const guest = srv.client();
  await srv.pb.collection(name).create({ email: 'm1@strata.test', password: 'member-pass-1', passwordConfirm: 'member-pass-1', nick: 'M' });
  const auth = await guest.collection(name).authWithPassword('m1@strata.test', 'member-pass-1');
  assert.equal(auth.record.nick, 'M');
  assert.equal(auth.record.collectionName, name);
});

test('create validation errors', async () => {
  await expectError(srv.pb.collections.create({ type: 'base' }), 400, { name: 'validation_required' });
  const err = await expectError(srv.pb.collections.create({ name: 'users', type: 'base' }), 400);
  assert.equal(err.response.message, 'Failed to create collection.');
  assert.ok(err.response.data.name, 'a duplicate name is reported on name');
  await expectError(srv.pb.collections.create({ name: 'bad name!', type: 'base' }), 400, { name: 'validation_match_invalid' });
  const badRule = await expectError(srv.pb.collections.create({ name: unique('badrule'), type: 'base', listRule: 'nosuchfield = 1' }), 400);
  assert.ok(badRule.response.data.listRule, JSON.stringify(badRule.response.data));
  const badSelect = await expectError(
    srv.pb.collections.create({ name: unique('badsel'), type: 'base', fields: [{ name: 's', type: 'select', values: [] }] }),
    400,
  );
  // field errors nest under the field's index in the list
  assert.ok(Object.values(badSelect.response.data.fields ?? {}).some((e) => e.values), JSON.stringify(badSelect.response.data));
});

test('getList, getFullList, filter and sort over collections', async () => {
  const prefix = unique('listme');
  for (const n of ['b', 'a', 'c']) await srv.pb.collections.create({ name: `${prefix}_${n}`, type: 'base' });

  const page = await srv.pb.collections.getList(1, 2, { filter: `name ~ "${prefix}"`, sort: '-name' });
  assert.equal(page.page, 1);
  assert.equal(page.perPage, 2);
  assert.equal(page.totalItems, 3);
  assert.equal(page.totalPages, 2);
  assert.deepEqual(page.items.map((c) => c.name), [`${prefix}_c`, `${prefix}_b`]);

  const page2 = await srv.pb.collections.getList(2, 2, { filter: `name ~ "${prefix}"`, sort: '-name' });
  assert.deepEqual(page2.items.map((c) => c.name), [`${prefix}_a`]);

  const all = await srv.pb.collections.getFullList({ sort: 'name' });
  const names = all.map((c) => c.name);
  for (const n of ['_superusers', 'users', `${prefix}_a`, `${prefix}_b`, `${prefix}_c`]) assert.ok(names.includes(n), n);
  assert.deepEqual(names.filter((n) => n.startsWith(prefix)), [`${prefix}_a`, `${prefix}_b`, `${prefix}_c`]);

  const systems = await srv.pb.collections.getFullList({ filter: 'system = true && type = "auth"' });
  assert.ok(systems.some((c) => c.name === '_superusers'));
  assert.ok(systems.every((c) => c.system === true && c.type === 'auth'));

  const first = await srv.pb.collections.getFirstListItem(`name = "${prefix}_b"`);
  assert.equal(first.name, `${prefix}_b`);
});

test('update: rules and name change, absent keys stay', async () => {
  const name = unique('upd');
  const col = await srv.pb.collections.create({ name, type: 'base', listRule: null, viewRule: '', fields: [{ name: 'title', type: 'text' }] });
  const renamed = `${name}_x`;
  const upd = await srv.pb.collections.update(col.id, { name: renamed, listRule: 'title != ""' });
  assert.equal(upd.id, col.id);
  assert.equal(upd.name, renamed);
  assert.equal(upd.listRule, 'title != ""');
  assert.equal(upd.viewRule, '');
  assert.deepEqual(upd.fields.map((f) => f.name), ['id', 'title']);
  await expectError(srv.pb.collections.getOne(name), 404);
  assert.equal((await srv.pb.collections.getOne(renamed)).id, col.id);
});

test('renaming and removing fields keeps the other columns data', async () => {
  const name = unique('notes');
  const col = await srv.pb.collections.create({
    name,
    type: 'base',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'body', type: 'text' },
      { name: 'score', type: 'number' },
    ],
  });
  const rec = await srv.pb.collection(name).create({ title: 'kept', body: 'moved', score: 7 });

  const fields = col.fields
    .filter((f) => f.name !== 'score')
    .map((f) => (f.name === 'body' ? { ...f, name: 'content' } : f));
  fields.push({ name: 'extra', type: 'bool' });
  const upd = await srv.pb.collections.update(name, { fields });
  assert.deepEqual(upd.fields.map((f) => f.name), ['id', 'title', 'content', 'extra']);
  assert.equal(upd.fields.find((f) => f.name === 'content').id, col.fields.find((f) => f.name === 'body').id);

  const got = await srv.pb.collection(name).getOne(rec.id);
  assert.equal(got.title, 'kept');
  assert.equal(got.content, 'moved');
  assert.equal(got.extra, false);
  assert.equal('score' in got, false);
  assert.equal('body' in got, false);
});

test('a UNIQUE index rejects duplicates with validation_not_unique', async () => {
  const name = unique('slugs');
  const col = await srv.pb.collections.create({
    name,
    type: 'base',
    fields: [
      { name: 'slug', type: 'text' },
      { name: 'n', type: 'number' },
    ],
    indexes: [`CREATE UNIQUE INDEX \`idx_${name}_slug\` ON \`${name}\` (\`slug\`)`],
  });
  assert.equal(col.indexes.length, 1);
  assert.match(col.indexes[0], /^CREATE UNIQUE INDEX/);

  const a = await srv.pb.collection(name).create({ slug: 'hello', n: 1 });
  const err = await expectError(srv.pb.collection(name).create({ slug: 'hello', n: 2 }), 400, { slug: 'validation_not_unique' });
  assert.equal(err.response.message, 'Failed to create record.');
  const b = await srv.pb.collection(name).create({ slug: 'other', n: 3 });
  await expectError(srv.pb.collection(name).update(b.id, { slug: 'hello' }), 400, { slug: 'validation_not_unique' });
  const list = await srv.pb.collection(name).getFullList({ sort: 'n' });
  assert.deepEqual(list.map((r) => [r.id, r.slug]), [[a.id, 'hello'], [b.id, 'other']]);
});

test('truncate empties a collection and cascades', async () => {
  const parent = await srv.pb.collections.create({ name: unique('tparent'), type: 'base', fields: [{ name: 'title', type: 'text' }] });
  const child = await srv.pb.collections.create({
    name: unique('tchild'),
    type: 'base',
    fields: [{ name: 'parent', type: 'relation', collectionId: parent.id, maxSelect: 1, cascadeDelete: true }],
  });
  const p = await srv.pb.collection(parent.name).create({ title: 'p' });
  await srv.pb.collection(parent.name).create({ title: 'q' });
  await srv.pb.collection(child.name).create({ parent: p.id });

  assert.equal(await srv.pb.collections.truncate(parent.name), true);
  assert.equal((await srv.pb.collection(parent.name).getList(1, 10)).totalItems, 0);
  assert.equal((await srv.pb.collection(child.name).getList(1, 10)).totalItems, 0);
});

test('delete: referenced and system collections refuse, others go away with their records', async () => {
  const target = await srv.pb.collections.create({ name: unique('dtarget'), type: 'base' });
  const ref = await srv.pb.collections.create({
    name: unique('dref'),
    type: 'base',
    fields: [{ name: 't', type: 'relation', collectionId: target.id, maxSelect: 1 }],
  });
  await expectError(srv.pb.collections.delete(target.id), 400);
  await expectError(srv.pb.collections.delete('_superusers'), 400);

  assert.equal(await srv.pb.collections.delete(ref.name), true);
  await expectError(srv.pb.collections.getOne(ref.id), 404);
  await expectError(srv.pb.collection(ref.name).getList(1, 1), 404);
  assert.equal(await srv.pb.collections.delete(target.id), true);
  await expectError(srv.pb.collections.getOne(target.name), 404);
});

test('collections survive a server restart', async () => {
  const name = unique('durable');
  await srv.pb.collections.create({ name, type: 'base', fields: [{ name: 'title', type: 'text' }] });
  const rec = await srv.pb.collection(name).create({ title: 'still here' });
  await srv.restart();
  const pb = await srv.superuserClient();
  assert.equal((await pb.collection(name).getOne(rec.id)).title, 'still here');
  srv.pb = pb;
});
