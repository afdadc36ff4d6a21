// Users sign up, sign in and refresh through the SDK; rules see @request.auth (API.md §4.2, §7).
import { useServer, test, assert, expectError, signUp, unique, tokenPayload, ID_RE } from './harness.js';

const srv = useServer();

test('sign up with email, password, passwordConfirm', async () => {
  const guest = srv.client();
  const email = `${unique('signup').toLowerCase()}@strata.test`;
  const rec = await guest.collection('users').create({ email, password: 'signup-pass-1', passwordConfirm: 'signup-pass-1', name: 'New' });
  assert.match(rec.id, ID_RE);
  assert.equal(rec.collectionId, '_pb_users_auth_');
  assert.equal(rec.collectionName, 'users');
  assert.equal(rec.verified, false);
  assert.equal(rec.emailVisibility, false);
  assert.equal(rec.name, 'New');
  assert.equal(rec.password, undefined);
  assert.equal(rec.tokenKey, undefined);
  assert.equal(rec.passwordConfirm, undefined);
  assert.equal(rec.email, undefined, 'email is hidden from a guest while emailVisibility is false');

  const viaSuperuser = await srv.pb.collection('users').getOne(rec.id);
  assert.equal(viaSuperuser.email, email);
  assert.equal(viaSuperuser.tokenKey, undefined, 'tokenKey is never serialized, even to superusers');
  assert.equal(viaSuperuser.password, undefined);
});

test('sign up validation', async () => {
  const guest = srv.client();
  const email = `${unique('dupe').toLowerCase()}@strata.test`;
  await expectError(guest.collection('users').create({ email, password: 'signup-pass-1', passwordConfirm: 'different-1' }), 400, {
    passwordConfirm: 'validation_values_mismatch',
  });
  await expectError(guest.collection('users').create({ email, passwordConfirm: 'x' }), 400);
  await expectError(guest.collection('users').create({ email, password: 'short', passwordConfirm: 'short' }), 400, {
    password: 'validation_min_text_constraint',
  });
  await expectError(guest.collection('users').create({ email: 'not-an-email', password: 'signup-pass-1', passwordConfirm: 'signup-pass-1' }), 400, {
    email: 'validation_is_email',
  });
  await expectError(guest.collection('users').create({ password: 'signup-pass-1', passwordConfirm: 'signup-pass-1' }), 400, {
    email: 'validation_required',
  });
  await guest.collection('users').create({ email, password: 'signup-pass-1', passwordConfirm: 'signup-pass-1' });
  await expectError(guest.collection('users').create({ email, password: 'signup-pass-1', passwordConfirm: 'signup-pass-1' }), 400, {
    email: 'validation_not_unique',
  });
  // a guest may not make itself verified: PocketBase either refuses (data.verified) or stores false
  const vEmail = `${unique('v').toLowerCase()}@strata.test`;
  const verified = await guest
    .collection('users')
    .create({ email: vEmail, password: 'signup-pass-1', passwordConfirm: 'signup-pass-1', verified: true })
    .catch((e) => e);
  if (verified instanceof Error) {
    assert.equal(verified.status, 400);
    assert.ok(verified.response.data.verified, JSON.stringify(verified.response.data));
  } else {
    assert.equal((await srv.pb.collection('users').getOne(verified.id)).verified, false);
  }
});

test('authWithPassword returns a token and the record, with email', async () => {
  const user = await signUp(srv, { name: 'Signed' });
  assert.equal(user.pb.authStore.isValid, true);
  assert.equal(user.pb.authStore.isSuperuser, false);
  assert.equal(user.pb.authStore.token, user.token);
  assert.equal(user.pb.authStore.record.id, user.id);
  assert.equal(user.record.email, user.email, 'auth responses always include email');
  assert.equal(user.record.collectionName, 'users');
  assert.equal(user.record.name, 'Signed');
  const claims = tokenPayload(user.token);
  assert.equal(claims.id, user.id);
  assert.equal(claims.type, 'auth');
  assert.equal(claims.collectionId, '_pb_users_auth_');
  assert.equal(claims.refreshable, true);
  const lifetime = claims.exp - Math.floor(Date.now() / 1000);
  assert.ok(lifetime > 431000 && lifetime <= 432000, `users tokens last 432000s, got ${lifetime}`);

  const upper = await srv.client().collection('users').authWithPassword(user.email.toUpperCase(), user.password);
  assert.equal(upper.record.id, user.id, 'email lookup is case-insensitive');

  const err = await expectError(srv.client().collection('users').authWithPassword(user.email, 'wrong-password'), 400);
  assert.equal(err.response.message, 'Failed to authenticate.');
  await expectError(srv.client().collection('users').authWithPassword('nobody@strata.test', 'whatever-1'), 400);
  await expectError(srv.client().collection('users').authWithPassword('', ''), 400, { identity: 'validation_required', password: 'validation_required' });
  const nonAuth = await srv.pb.collections.create({ name: unique('plain'), type: 'base' });
  const wrongKind = await expectError(srv.client().collection(nonAuth.name).authWithPassword('a@b.test', 'x'), 404);
  assert.equal(wrongKind.response.message, 'Missing or invalid auth collection context.');
});

test('authRefresh gives a fresh token for the same record; needs a token', async () => {
  const user = await signUp(srv);
  await new Promise((r) => setTimeout(r, 1100)); // exp has one-second resolution
  const refreshed = await user.pb.collection('users').authRefresh();
  assert.equal(refreshed.record.id, user.id);
  assert.equal(refreshed.record.email, user.email);
  assert.notEqual(refreshed.token, user.token);
  assert.equal(user.pb.authStore.token, refreshed.token);
  assert.ok(tokenPayload(refreshed.token).exp > tokenPayload(user.token).exp);

  const err = await expectError(srv.client().collection('users').authRefresh(), 401);
  assert.equal(err.response.message, 'The request requires valid record authorization token.');
  await expectError(srv.pb.collection('users').authRefresh(), 403);
});

test('a bad token is treated as a guest, and a Bearer prefix is accepted', async () => {
  const user = await signUp(srv);
  const guest = srv.client();
  guest.authStore.save('not.a.token', null);
  const list = await guest.collection('users').getList(1, 10);
  assert.equal(list.totalItems, 0);
  await expectError(guest.collection('users').authRefresh(), 401);

  const res = await fetch(`${srv.url}/api/collections/users/records/${user.id}`, { headers: { Authorization: `Bearer ${user.token}` } });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).id, user.id);
});

test('rules see @request.auth: users see only themselves', async () => {
  const a = await signUp(srv, { name: 'A' });
  const b = await signUp(srv, { name: 'B' });

  const listA = await a.pb.collection('users').getList(1, 50);
  assert.equal(listA.totalItems, 1);
  assert.equal(listA.items[0].id, a.id);
  assert.equal(listA.items[0].email, a.email, 'the record itself sees its email');

  const guestList = await srv.client().collection('users').getList(1, 50);
  assert.equal(guestList.totalItems, 0);
  assert.deepEqual(guestList.items, []);

  assert.equal((await a.pb.collection('users').getOne(a.id)).name, 'A');
  await expectError(a.pb.collection('users').getOne(b.id), 404);
  await expectError(a.pb.collection('users').update(b.id, { name: 'hacked' }), 404);
  await expectError(a.pb.collection('users').delete(b.id), 404);
  assert.equal((await a.pb.collection('users').update(a.id, { name: 'A2' })).name, 'A2');
  assert.equal((await srv.pb.collection('users').getOne(b.id)).name, 'B');

  const all = await srv.pb.collection('users').getFullList({ filter: `id = "${a.id}" || id = "${b.id}"`, sort: 'name' });
  assert.deepEqual(all.map((u) => u.name), ['A2', 'B']);
});

test('changing the password needs oldPassword and invalidates old tokens', async () => {
  const user = await signUp(srv);
  await expectError(user.pb.collection('users').update(user.id, { password: 'next-pass-123', passwordConfirm: 'next-pass-123' }), 400, {
    oldPassword: 'validation_required',
  });
  await expectError(
    user.pb.collection('users').update(user.id, { oldPassword: 'wrong-old-pass', password: 'next-pass-123', passwordConfirm: 'next-pass-123' }),
    400,
    { oldPassword: 'validation_invalid_old_password' },
  );
  await user.pb.collection('users').update(user.id, { oldPassword: user.password, password: 'next-pass-123', passwordConfirm: 'next-pass-123' });

  const stale = srv.client();
  stale.authStore.save(user.token, user.record);
  await expectError(stale.collection('users').authRefresh(), 401);
  await expectError(srv.client().collection('users').authWithPassword(user.email, user.password), 400);
  const again = await srv.client().collection('users').authWithPassword(user.email, 'next-pass-123');
  assert.equal(again.record.id, user.id);
});

test('a superuser manages users: sets verified, changes a password without oldPassword', async () => {
  const user = await signUp(srv);
  const upd = await srv.pb.collection('users').update(user.id, { verified: true, password: 'admin-set-123', passwordConfirm: 'admin-set-123' });
  assert.equal(upd.verified, true);
  const auth = await srv.client().collection('users').authWithPassword(user.email, 'admin-set-123');
  assert.equal(auth.record.verified, true);
  await expectError(srv.client().collection('users').authWithPassword(user.email, user.password), 400);
});

test('listAuthMethods reports password auth', async () => {
  const methods = await srv.client().collection('users').listAuthMethods();
  assert.deepEqual(methods.password, { enabled: true, identityFields: ['email'] });
  assert.equal(methods.oauth2.enabled, false);
  assert.deepEqual(methods.oauth2.providers, []);
  assert.equal(methods.mfa.enabled, false);
  assert.equal(methods.otp.enabled, false);
});

test('superusers cannot sign up as guests and their tokens last one day', async () => {
  await expectError(
    srv.client().collection('_superusers').create({ email: 'evil@strata.test', password: 'evil-pass-123', passwordConfirm: 'evil-pass-123' }),
    403,
  );
  const claims = tokenPayload(srv.pb.authStore.token);
  assert.equal(claims.collectionId, 'pbc_3142635823');
  const lifetime = claims.exp - Math.floor(Date.now() / 1000);
  assert.ok(lifetime > 80000 && lifetime <= 86400, `superuser tokens last 86400s, got ${lifetime}`);
});
