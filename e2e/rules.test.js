// API rules: null, "", and filter expressions with @request.*, @collection.*, macros and modifiers (API.md §5.3, §6).
import { useServer, test, assert, expectError, signUp, unique } from './harness.js';

const srv = useServer();

async function collection(def) {
  const name = unique(def.prefix);
  delete def.prefix;
  await srv.pb.collections.create({ name, type: 'base', ...def });
  return name;
}

test('null rules: superusers only, everyone else 403', async () => {
  const name = await collection({ prefix: 'locked', fields: [{ name: 'title', type: 'text' }] });
  const rec = await srv.pb.collection(name).create({ title: 'only root' });
  const user = await signUp(srv);
  for (const pb of [srv.client(), user.pb]) {
    const err = await expectError(pb.collection(name).getList(1, 10), 403);
    assert.equal(err.response.message, 'Only superusers can perform this action.');
    await expectError(pb.collection(name).getOne(rec.id), 403);
    await expectError(pb.collection(name).create({ title: 'x' }), 403);
    await expectError(pb.collection(name).update(rec.id, { title: 'x' }), 403);
    await expectError(pb.collection(name).delete(rec.id), 403);
  }
  assert.equal((await srv.pb.collection(name).getOne(rec.id)).title, 'only root');
});

test('empty rules: anyone, guests included', async () => {
  const name = await collection({
    prefix: 'open',
    listRule: '',
    viewRule: '',
    createRule: '',
    updateRule: '',
    deleteRule: '',
    fields: [{ name: 'title', type: 'text' }],
  });
  const guest = srv.client();
  const rec = await guest.collection(name).create({ title: 'by guest' });
  assert.equal((await guest.collection(name).getList(1, 10)).totalItems, 1);
  assert.equal((await guest.collection(name).getOne(rec.id)).title, 'by guest');
  assert.equal((await guest.collection(name).update(rec.id, { title: 'edited' })).title, 'edited');
  assert.equal(await guest.collection(name).delete(rec.id), true);
  assert.equal((await srv.pb.collection(name).getList(1, 10)).totalItems, 0);
});

test('owner rules: list filters rows, view/update/delete 404, create 400', async () => {
  const name = await collection({
    prefix: 'owned',
    listRule: 'owner = @request.auth.id',
    viewRule: 'owner = @request.auth.id',
    createRule: '@request.auth.id != "" && owner = @request.auth.id',
    updateRule: 'owner = @request.auth.id && @request.body.owner:isset = false',
    deleteRule: 'owner = @request.auth.id',
    fields: [
      { name: 'owner', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 1 },
      { name: 'title', type: 'text' },
    ],
  });
  const a = await signUp(srv);
  const b = await signUp(srv);
  const a1 = await a.pb.collection(name).create({ owner: a.id, title: 'a1' });
  await a.pb.collection(name).create({ owner: a.id, title: 'a2' });
  const b1 = await b.pb.collection(name).create({ owner: b.id, title: 'b1' });

  const listA = await a.pb.collection(name).getFullList({ sort: 'title' });
  assert.deepEqual(listA.map((r) => r.title), ['a1', 'a2']);
  const listB = await b.pb.collection(name).getList(1, 10);
  assert.equal(listB.totalItems, 1);
  assert.equal(listB.items[0].id, b1.id);
  const guestList = await srv.client().collection(name).getList(1, 10);
  assert.equal(guestList.totalItems, 0);
  assert.equal((await srv.pb.collection(name).getList(1, 10)).totalItems, 3, 'superusers bypass rules');

  const filtered = await a.pb.collection(name).getList(1, 10, { filter: 'title = "b1"' });
  assert.equal(filtered.totalItems, 0, 'the client filter is ANDed with the list rule');

  await expectError(b.pb.collection(name).getOne(a1.id), 404);
  await expectError(b.pb.collection(name).update(a1.id, { title: 'stolen' }), 404);
  await expectError(b.pb.collection(name).delete(a1.id), 404);
  await expectError(a.pb.collection(name).update(a1.id, { owner: b.id }), 404, {});
  assert.equal((await a.pb.collection(name).update(a1.id, { title: 'a1!' })).title, 'a1!');

  const bad = await expectError(b.pb.collection(name).create({ owner: a.id, title: 'forged' }), 400);
  assert.equal(bad.response.message, 'Failed to create record.');
  assert.deepEqual(bad.response.data, {});
  await expectError(srv.client().collection(name).create({ title: 'guest' }), 400);

  assert.equal(await a.pb.collection(name).delete(a1.id), true);
  assert.equal((await srv.pb.collection(name).getList(1, 10)).totalItems, 2);
});

test('non-superuser filters may not use @request, @collection or hidden fields', async () => {
  const name = await collection({
    prefix: 'filt',
    listRule: '',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'secret', type: 'text', hidden: true },
    ],
  });
  await srv.pb.collection(name).create({ title: 't', secret: 's' });
  const user = await signUp(srv);
  await expectError(user.pb.collection(name).getList(1, 10, { filter: '@request.auth.id != ""' }), 403);
  await expectError(user.pb.collection(name).getList(1, 10, { filter: `@collection.${name}.title = "t"` }), 403);
  await expectError(user.pb.collection(name).getList(1, 10, { filter: 'secret = "s"' }), 400);
  await expectError(user.pb.collection(name).getList(1, 10, { sort: 'secret' }), 400);
  const list = await user.pb.collection(name).getList(1, 10);
  assert.equal(list.items[0].title, 't');
  assert.equal('secret' in list.items[0], false, 'hidden fields are omitted for non-superusers');
  assert.equal((await srv.pb.collection(name).getList(1, 10, { filter: 'secret = "s"' })).totalItems, 1);
});

test('@collection joins unrelated collections in rules', async () => {
  const members = await collection({
    prefix: 'members',
    fields: [
      { name: 'user', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 1 },
      { name: 'team', type: 'text' },
    ],
  });
  const docs = await collection({
    prefix: 'teamdocs',
    listRule: `@collection.${members}.user ?= @request.auth.id`,
    viewRule: `@collection.${members}.user ?= @request.auth.id && @collection.${members}.team ?= team`,
    fields: [
      { name: 'team', type: 'text' },
      { name: 'title', type: 'text' },
    ],
  });
  const insider = await signUp(srv);
  const outsider = await signUp(srv);
  await srv.pb.collection(members).create({ user: insider.id, team: 'red' });
  const red = await srv.pb.collection(docs).create({ team: 'red', title: 'plan' });
  await srv.pb.collection(docs).create({ team: 'blue', title: 'other' });

  assert.equal((await insider.pb.collection(docs).getList(1, 10)).totalItems, 2);
  assert.equal((await outsider.pb.collection(docs).getList(1, 10)).totalItems, 0);
  assert.equal((await insider.pb.collection(docs).getOne(red.id)).title, 'plan');
  await expectError(outsider.pb.collection(docs).getOne(red.id), 404);
});

test('modifiers in rules: :isset, :changed, :length, :each, :lower', async () => {
  const name = await collection({
    prefix: 'mods',
    listRule: 'status:lower = "open" && labels:each != "secret"',
    viewRule: '',
    createRule: 'labels:length <= 2 && @request.body.status:isset = true',
    updateRule: '@request.body.price:changed = false',
    fields: [
      { name: 'status', type: 'text' },
      { name: 'price', type: 'number' },
      { name: 'labels', type: 'select', values: ['a', 'b', 'c', 'secret'], maxSelect: 4 },
    ],
  });
  const guest = srv.client();
  const r1 = await guest.collection(name).create({ status: 'OPEN', price: 5, labels: ['a'] });
  const r2 = await guest.collection(name).create({ status: 'Open', price: 6, labels: ['a', 'b'] });
  await guest.collection(name).create({ status: 'closed', labels: ['c'] });
  await guest.collection(name).create({ status: 'open', labels: ['a', 'secret'] });
  await expectError(guest.collection(name).create({ status: 'open', labels: ['a', 'b', 'c'] }), 400);
  await expectError(guest.collection(name).create({ labels: ['a'] }), 400);

  const visible = await guest.collection(name).getFullList({ sort: 'price' });
  assert.deepEqual(visible.map((r) => r.id), [r1.id, r2.id]);

  assert.equal((await guest.collection(name).update(r1.id, { price: 5, status: 'OPEN!' })).status, 'OPEN!');
  await expectError(guest.collection(name).update(r1.id, { price: 7 }), 404);
  assert.equal((await srv.pb.collection(name).getOne(r1.id)).price, 5);
});

test('macros in rules: @now against a date field', async () => {
  const name = await collection({
    prefix: 'due',
    listRule: 'due > @now',
    viewRule: '',
    createRule: '@request.body.due > @now',
    fields: [{ name: 'due', type: 'date' }],
  });
  const guest = srv.client();
  const future = new Date(Date.now() + 86_400_000).toISOString().replace('T', ' ');
  const past = new Date(Date.now() - 86_400_000).toISOString().replace('T', ' ');
  const ok = await guest.collection(name).create({ due: future });
  await expectError(guest.collection(name).create({ due: past }), 400);
  await srv.pb.collection(name).create({ due: past });
  const list = await guest.collection(name).getFullList();
  assert.deepEqual(list.map((r) => r.id), [ok.id]);
});

test('rules see @request.auth fields and relations of the caller', async () => {
  const name = await collection({
    prefix: 'authfields',
    listRule: '@request.auth.name = audience || @request.auth.verified = true',
    fields: [{ name: 'audience', type: 'text' }],
  });
  await srv.pb.collection(name).create({ audience: 'Zed' });
  await srv.pb.collection(name).create({ audience: 'Other' });
  const zed = await signUp(srv, { name: 'Zed' });
  assert.deepEqual((await zed.pb.collection(name).getFullList()).map((r) => r.audience), ['Zed']);
  await srv.pb.collection('users').update(zed.id, { verified: true });
  assert.equal((await zed.pb.collection(name).getFullList()).length, 2);
});
