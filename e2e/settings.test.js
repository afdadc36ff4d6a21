// pb.settings and pb.health, and the error shape every SDK call relies on (API.md §1.2, §2, §11).
import { useServer, test, assert, expectError, signUp } from './harness.js';

const srv = useServer();

test('health check for guests and superusers', async () => {
  const h = await srv.client().health.check();
  assert.deepEqual(h, { message: 'API is healthy.', code: 200, data: {} });
  const su = await srv.pb.health.check();
  assert.equal(su.code, 200);
  assert.equal(typeof su.data.canBackup, 'boolean');
  assert.equal(typeof su.data.realIP, 'string');
  const head = await fetch(`${srv.url}/api/health`, { method: 'HEAD' });
  assert.equal(head.status, 200);
});

test('settings defaults', async () => {
  const s = await srv.pb.settings.getAll();
  for (const key of ['smtp', 'backups', 's3', 'meta', 'rateLimits', 'trustedProxy', 'batch', 'logs']) assert.equal(typeof s[key], 'object', key);
  assert.deepEqual(s.batch, { enabled: false, maxRequests: 50, timeout: 3, maxBodySize: 0 });
  assert.equal(s.meta.appName, 'Acme');
  assert.equal(s.smtp.enabled, false);
  assert.equal(s.smtp.password, undefined);
  assert.equal(s.s3.secret, undefined);
  assert.equal(s.rateLimits.enabled, false);
  assert.ok(Array.isArray(s.rateLimits.rules));
  assert.ok(Array.isArray(s.trustedProxy.headers));
  assert.equal(typeof s.logs.maxDays, 'number');
});

test('settings need a superuser', async () => {
  await expectError(srv.client().settings.getAll(), 401);
  const user = await signUp(srv);
  const err = await expectError(user.pb.settings.getAll(), 403);
  assert.equal(err.response.message, 'The authorized record is not allowed to perform this action.');
  await expectError(user.pb.settings.update({ meta: { appName: 'pwned' } }), 403);
});

const changes = {
  meta: { appName: 'Strata Test', appURL: 'https://strata.test', senderName: 'Robot', senderAddress: 'robot@strata.test', hideControls: true },
  batch: { enabled: true, maxRequests: 20, timeout: 5, maxBodySize: 1048576 },
  smtp: { enabled: true, host: 'smtp.strata.test', port: 2525, username: 'mailer', password: 'mail-secret', authMethod: 'PLAIN', tls: false, localName: '' },
  rateLimits: { enabled: false, excludedIPs: [], rules: [{ label: '*:create', audience: '@guest', duration: 10, maxRequests: 100 }] },
  trustedProxy: { headers: ['X-Forwarded-For'], useLeftmostIP: true },
  logs: { maxDays: 9, minLevel: 4, logIP: false, logAuthId: true },
};

function assertApplied(s) {
  for (const [k, v] of Object.entries(changes.meta)) assert.equal(s.meta[k], v, `meta.${k}`);
  assert.deepEqual(s.batch, changes.batch);
  assert.equal(s.smtp.enabled, true);
  assert.equal(s.smtp.host, 'smtp.strata.test');
  assert.equal(s.smtp.port, 2525);
  assert.equal(s.smtp.username, 'mailer');
  assert.equal(s.smtp.password, undefined, 'secrets are never returned');
  assert.equal(s.rateLimits.enabled, false);
  assert.equal(s.rateLimits.rules.length, 1);
  assert.deepEqual(
    (({ label, audience, duration, maxRequests }) => ({ label, audience, duration, maxRequests }))(s.rateLimits.rules[0]),
    changes.rateLimits.rules[0],
  );
  assert.deepEqual(s.trustedProxy, changes.trustedProxy);
  for (const [k, v] of Object.entries(changes.logs)) assert.equal(s.logs[k], v, `logs.${k}`);
}

test('settings update merges and persists', async () => {
  const before = await srv.pb.settings.getAll();
  const updated = await srv.pb.settings.update(changes);
  assertApplied(updated);
  assert.deepEqual(updated.s3, before.s3, 'absent sections stay');
  assertApplied(await srv.pb.settings.getAll());

  const partial = await srv.pb.settings.update({ meta: { appName: 'Renamed' } });
  assert.equal(partial.meta.appName, 'Renamed');
  assert.equal(partial.meta.senderAddress, 'robot@strata.test', 'a partial section keeps its other keys');
  await srv.pb.settings.update({ meta: { appName: 'Strata Test' } });

  await srv.restart();
  srv.pb = await srv.superuserClient();
  assertApplied(await srv.pb.settings.getAll());
});

test('settings validation', async () => {
  await expectError(srv.pb.settings.update({ meta: { appName: '' } }), 400, { meta: { appName: 'validation_required' } });
  await expectError(srv.pb.settings.update({ meta: { senderAddress: 'not-an-email' } }), 400, { meta: { senderAddress: 'validation_is_email' } });
  assert.equal((await srv.pb.settings.getAll()).meta.appName, 'Strata Test');
});

test('settings honour ?fields=', async () => {
  const s = await srv.pb.settings.getAll({ fields: 'meta.appName,batch' });
  assert.deepEqual(s, { meta: { appName: 'Strata Test' }, batch: changes.batch });
});

test('error shape: status, message and data on ClientResponseError', async () => {
  const err = await expectError(srv.pb.collection('nosuch').getOne('abcdefghijklmno'), 404);
  assert.equal(err.url.startsWith(`${srv.url}/api/collections/nosuch/records/abcdefghijklmno`), true);
  assert.deepEqual(err.response, { status: 404, message: 'Missing collection context.', data: {} });

  const res = await fetch(`${srv.url}/api/no/such/route`);
  assert.equal(res.status, 404);
  const body = await res.json();
  assert.equal(body.status, 404);
  assert.deepEqual(body.data, {});

  const bad = await fetch(`${srv.url}/api/collections/users/records`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'hello' });
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).message, 'Unsupported Content-Type.');
});
