// Account flows through the SDK's own methods (API.md §7.3, §7.6): verification, password reset, email
// change, OTP, MFA, impersonation and the attempt limiter. SMTP is off, so the development mailer writes
// each mail as an .eml file under <data dir>/mail: the tests read the links from there, as a developer would.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClientResponseError } from 'pocketbase';
import { useServer, test, assert, expectError, signUp, tokenPayload } from './harness.js';

const srv = useServer();

// decodeQP undoes quoted-printable (soft breaks and =XX escapes).
function decodeQP(s) {
  const bytes = s.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
  return Buffer.from(bytes, 'latin1').toString('utf8');
}

// mailTo waits for the newest mail of kind to address and returns its decoded text.
async function mailTo(kind, address, after = 0) {
  const dir = join(srv.dir, 'mail');
  for (let i = 0; i < 100; i++) {
    if (existsSync(dir)) {
      const files = readdirSync(dir).filter((f) => f.endsWith(`-${kind}-${address}.eml`)).sort();
      if (files.length > after) return decodeQP(readFileSync(join(dir, files[files.length - 1]), 'utf8'));
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no ${kind} mail to ${address}`);
}

function linkToken(mail, part) {
  const m = mail.match(new RegExp(`/${part}/([A-Za-z0-9_\\-.]+)`));
  assert.ok(m, `no ${part} link in ${mail}`);
  return m[1];
}

test('requestVerification / confirmVerification', async () => {
  const u = await signUp(srv);
  assert.equal(u.record.verified, false);
  assert.equal(await srv.client().collection('users').requestVerification(u.email), true);
  assert.equal(await srv.client().collection('users').requestVerification('nobody@strata.test'), true, 'unknown email: same answer');
  const token = linkToken(await mailTo('verification', u.email), 'confirm-verification');
  const claims = tokenPayload(token);
  assert.equal(claims.type, 'verification');
  assert.equal(claims.email, u.email);
  await expectError(srv.client().collection('users').confirmVerification('bad.token.here'), 400, { token: 'validation_invalid_token' });
  assert.equal(await u.pb.collection('users').confirmVerification(token), true);
  assert.equal(u.pb.authStore.record.verified, true, 'the SDK marks its own record verified');
  const fresh = await u.pb.collection('users').authRefresh();
  assert.equal(fresh.record.verified, true);
  await expectError(srv.pb.collection('_superusers').requestVerification('root@strata.test'), 400);
});

test('requestPasswordReset / confirmPasswordReset', async () => {
  const u = await signUp(srv);
  await u.pb.collection('users').requestPasswordReset(u.email);
  const token = linkToken(await mailTo('password-reset', u.email), 'confirm-password-reset');
  assert.equal(tokenPayload(token).type, 'passwordReset');
  const guest = srv.client();
  await expectError(guest.collection('users').confirmPasswordReset(token, 'password1', 'password1'), 400, { password: 'validation_common_password' });
  await expectError(guest.collection('users').confirmPasswordReset(token, 'brand-new-pass-1', 'other'), 400, { passwordConfirm: 'validation_values_mismatch' });
  assert.equal(await guest.collection('users').confirmPasswordReset(token, 'brand-new-pass-1', 'brand-new-pass-1'), true);
  await expectError(guest.collection('users').confirmPasswordReset(token, 'brand-new-pass-2', 'brand-new-pass-2'), 400, { token: 'validation_invalid_token' });
  await expectError(u.pb.collection('users').authRefresh(), 401);
  await expectError(srv.client().collection('users').authWithPassword(u.email, u.password), 400);
  const auth = await srv.client().collection('users').authWithPassword(u.email, 'brand-new-pass-1');
  assert.equal(auth.record.verified, true, 'the reset mail proved the address');
});

test('requestEmailChange / confirmEmailChange', async () => {
  const u = await signUp(srv);
  const newEmail = `moved_${u.email}`;
  await expectError(srv.client().collection('users').requestEmailChange(newEmail), 401);
  await expectError(u.pb.collection('users').requestEmailChange(u.email), 400, { newEmail: 'validation_not_in_invalid' });
  assert.equal(await u.pb.collection('users').requestEmailChange(newEmail), true);
  const token = linkToken(await mailTo('email-change', newEmail), 'confirm-email-change');
  const claims = tokenPayload(token);
  assert.equal(claims.type, 'emailChange');
  assert.equal(claims.newEmail, newEmail);
  await expectError(u.pb.collection('users').confirmEmailChange(token, 'wrong-pass-9'), 400, { password: 'validation_invalid_password' });
  assert.equal(await u.pb.collection('users').confirmEmailChange(token, u.password), true);
  assert.equal(u.pb.authStore.isValid, false, 'the SDK signs out after its own email change');
  const auth = await srv.client().collection('users').authWithPassword(newEmail, u.password);
  assert.equal(auth.record.email, newEmail);
  assert.equal(auth.record.verified, true);
});

test('impersonate: a non-refreshable token for another record', async () => {
  const u = await signUp(srv);
  const as = await srv.pb.collection('users').impersonate(u.id, 120);
  assert.equal(as.authStore.record.id, u.id);
  const claims = tokenPayload(as.authStore.token);
  assert.equal(claims.refreshable, false);
  assert.ok(Math.abs(claims.exp - (Date.now() / 1000 + 120)) < 15, `exp ${claims.exp}`);
  const refreshed = await as.collection('users').authRefresh();
  assert.equal(refreshed.token, as.authStore.token, 'not refreshable: same token back');
  await expectError(u.pb.collection('users').impersonate(u.id, 60), 403);
});

test('auth-methods, requestOTP / authWithOTP, then MFA', async () => {
  const u = await signUp(srv);
  await expectError(srv.client().collection('users').requestOTP(u.email), 403);
  await srv.pb.collections.update('users', { otp: { enabled: true } });
  const methods = await srv.client().collection('users').listAuthMethods();
  assert.equal(methods.otp.enabled, true);
  assert.equal(methods.otp.duration, 180);
  assert.equal(methods.mfa.enabled, false);

  const fake = await srv.client().collection('users').requestOTP('nobody@strata.test');
  assert.match(fake.otpId, /^[a-z0-9]{15}$/, 'unknown email: a well-formed id too');
  const { otpId } = await srv.client().collection('users').requestOTP(u.email);
  const code = (await mailTo('otp', u.email)).match(/<strong>(\d+)<\/strong>/)[1];
  await expectError(srv.client().collection('users').authWithOTP(otpId, '00000000'), 400);
  const pb = srv.client();
  const auth = await pb.collection('users').authWithOTP(otpId, code);
  assert.equal(auth.record.id, u.id);
  assert.equal(auth.record.verified, true);
  assert.ok(pb.authStore.isValid);
  await expectError(srv.client().collection('users').authWithOTP(otpId, code), 400, undefined);
  await expectError(srv.client().collection('users').authWithPassword(u.email, u.password), 400,
    undefined, 'the OTP replaced the unverified account\'s password');

  // MFA: password first (401 + mfaId), then a different method with mfaId
  const v = await signUp(srv);
  // both options sent: a PATCH with only mfa currently resets otp (collections update, reported)
  await srv.pb.collections.update('users', { otp: { enabled: true }, mfa: { enabled: true } });
  let mfaId;
  try {
    await srv.client().collection('users').authWithPassword(v.email, v.password);
    assert.fail('expected the MFA step');
  } catch (err) {
    assert.ok(err instanceof ClientResponseError);
    assert.equal(err.status, 401);
    mfaId = err.response.mfaId;
  }
  assert.match(mfaId, /^[a-z0-9]{15}$/);
  const second = await srv.client().collection('users').requestOTP(v.email);
  const code2 = (await mailTo('otp', v.email)).match(/<strong>(\d+)<\/strong>/)[1];
  const done = await srv.client().collection('users').authWithOTP(second.otpId, code2, { mfaId });
  assert.equal(done.record.id, v.id);
  await srv.pb.collections.update('users', { mfa: { enabled: false }, otp: { enabled: false } });
});

test('attempt limits: 429 with Retry-After after repeated wrong passwords', async () => {
  const u = await signUp(srv);
  const guest = srv.client();
  let limited;
  for (let i = 0; i < 15 && !limited; i++) {
    try {
      await guest.collection('users').authWithPassword(u.email, `wrong-pass-${i}`);
    } catch (err) {
      if (err.status === 429) limited = err;
      else assert.equal(err.status, 400);
    }
  }
  assert.ok(limited, 'no 429 after 15 wrong passwords');
  assert.equal(limited.response.status, 429);
  const res = await fetch(`${srv.url}/api/collections/users/auth-with-password`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ identity: u.email, password: u.password }),
  });
  assert.equal(res.status, 429);
  assert.ok(Number(res.headers.get('retry-after')) >= 1);
});
