// OAuth2 sign-in through the SDK's authWithOAuth2Code and its realtime authWithOAuth2 flow (API.md §7.4)
// against a fake OpenID Connect provider written here: discovery, an authorize endpoint that approves at once
// and redirects back, JWKS, a token endpoint that checks the client, the redirect URI and the PKCE verifier,
// userinfo, and RS256 ID tokens signed with a key generated for this run.
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { createServer } from 'node:http';
import { after, before } from 'node:test';
import { EventSource } from 'eventsource';
import { useServer, test, assert, expectError, signUp } from './harness.js';

// Node has no EventSource; the SDK's realtime client (used by authWithOAuth2) takes the global one.
globalThis.EventSource = EventSource;

const srv = useServer();
const CLIENT_ID = 'e2e-client';
const CLIENT_SECRET = 'e2e-client-secret';
const REDIRECT = 'http://127.0.0.1/oauth2-callback';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const grants = new Map(); // code → { claims, challenge, nonce, redirectURI }
const access = new Map(); // access token → claims
let idp;
let issuer = '';
// nextUser is who "signs in" at the provider's authorize page.
let nextUser = null;

const b64url = (buf) => Buffer.from(buf).toString('base64url');

function idToken(claims, nonce) {
  const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: 'e2e' }));
  const now = Math.floor(Date.now() / 1000);
  const body = b64url(JSON.stringify({ iss: issuer, aud: CLIENT_ID, iat: now, exp: now + 600, nonce, ...claims }));
  return `${header}.${body}.${b64url(sign('sha256', Buffer.from(`${header}.${body}`), privateKey))}`;
}

function json(res, status, v) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(v));
}

before(async () => {
  idp = createServer(async (req, res) => {
    const url = new URL(req.url, issuer);
    if (req.method === 'GET' && url.pathname === '/.well-known/openid-configuration') {
      return json(res, 200, { issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`,
        userinfo_endpoint: `${issuer}/userinfo`, jwks_uri: `${issuer}/jwks` });
    }
    if (req.method === 'GET' && url.pathname === '/authorize') {
      // The user approves at once: back to redirect_uri with a code and the state, as a provider does.
      const q = url.searchParams;
      if (!nextUser || q.get('client_id') !== CLIENT_ID || q.get('response_type') !== 'code') return json(res, 400, { error: 'invalid_request' });
      const code = b64url(randomBytes(12));
      grants.set(code, { claims: nextUser, challenge: q.get('code_challenge'), nonce: q.get('nonce'), redirectURI: q.get('redirect_uri') });
      const back = new URL(q.get('redirect_uri'));
      back.searchParams.set('code', code);
      back.searchParams.set('state', q.get('state'));
      res.writeHead(302, { Location: back.toString() });
      return res.end();
    }
    if (req.method === 'GET' && url.pathname === '/jwks') {
      return json(res, 200, { keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'e2e', use: 'sig', alg: 'RS256' }] });
    }
    if (req.method === 'GET' && url.pathname === '/userinfo') {
      const claims = access.get((req.headers.authorization || '').replace(/^Bearer /, ''));
      return claims ? json(res, 200, claims) : json(res, 401, { error: 'invalid_token' });
    }
    if (req.method === 'POST' && url.pathname === '/token') {
      let raw = '';
      for await (const chunk of req) raw += chunk;
      const form = new URLSearchParams(raw);
      const g = grants.get(form.get('code'));
      grants.delete(form.get('code'));
      if (form.get('client_id') !== CLIENT_ID || form.get('client_secret') !== CLIENT_SECRET) return json(res, 401, { error: 'invalid_client' });
      if (!g || form.get('redirect_uri') !== g.redirectURI) return json(res, 400, { error: 'invalid_grant' });
      const challenge = b64url(createHash('sha256').update(form.get('code_verifier') || '').digest());
      if (challenge !== g.challenge) return json(res, 400, { error: 'invalid_grant' });
      const token = b64url(randomBytes(16));
      access.set(token, g.claims);
      return json(res, 200, { access_token: token, token_type: 'Bearer', expires_in: 3600, id_token: idToken(g.claims, g.nonce) });
    }
    return json(res, 404, { error: 'not_found' });
  });
  await new Promise((resolve) => idp.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${idp.address().port}`;
  await srv.ready;
  await srv.pb.collections.update('users', {
    createRule: '@request.context = "oauth2" || @request.context = "default"',
    oauth2: { enabled: true, providers: [{ name: 'oidc', displayName: 'E2E IdP', clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, extra: { issuer } }] },
  });
});

after(() => idp?.close());

// approve plays the browser: it takes the provider from listAuthMethods, "visits" its authURL and returns the
// code the provider would redirect back with, plus the verifier the SDK keeps.
async function approve(claims) {
  const methods = await srv.client().collection('users').listAuthMethods();
  const p = methods.oauth2.providers.find((x) => x.name === 'oidc');
  assert.ok(p, JSON.stringify(methods));
  const url = new URL(p.authURL + encodeURIComponent(REDIRECT));
  assert.equal(url.origin + url.pathname, `${issuer}/authorize`);
  assert.equal(url.searchParams.get('client_id'), CLIENT_ID);
  assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
  const code = b64url(randomBytes(12));
  grants.set(code, { claims, challenge: url.searchParams.get('code_challenge'), nonce: url.searchParams.get('nonce'),
    redirectURI: url.searchParams.get('redirect_uri') });
  return { code, verifier: p.codeVerifier };
}

test('authWithOAuth2Code signs up, then signs in the same record', async () => {
  const email = `oauth-${process.pid}@idp.test`;
  const claims = { sub: `sub-${process.pid}`, email, email_verified: true, name: 'Olivia Auth' };
  let { code, verifier } = await approve(claims);
  const pb = srv.client();
  const first = await pb.collection('users').authWithOAuth2Code('oidc', code, verifier, REDIRECT, { emailVisibility: true });
  assert.equal(first.meta.isNew, true);
  assert.equal(first.meta.id, claims.sub);
  assert.equal(first.meta.email, email);
  assert.equal(first.record.email, email);
  assert.equal(first.record.verified, true);
  assert.equal(first.record.name, 'Olivia Auth');
  assert.equal(pb.authStore.isValid, true);
  assert.equal(pb.authStore.record.id, first.record.id);

  ({ code, verifier } = await approve(claims));
  const again = await srv.client().collection('users').authWithOAuth2Code('oidc', code, verifier, REDIRECT);
  assert.equal(again.meta.isNew, false);
  assert.equal(again.record.id, first.record.id);

  const links = await pb.collection('users').listExternalAuths(first.record.id);
  assert.equal(links.length, 1);
  assert.equal(links[0].provider, 'oidc');
  assert.equal(links[0].providerId, claims.sub);
  assert.equal(await pb.collection('users').unlinkExternalAuth(first.record.id, 'oidc'), true);
  assert.equal((await pb.collection('users').listExternalAuths(first.record.id)).length, 0);
});

test('a signed-in user links an identity; an unverified account with the email is never linked', async () => {
  const u = await signUp(srv);
  let { code, verifier } = await approve({ sub: `link-${process.pid}`, email: `elsewhere-${process.pid}@idp.test`, email_verified: true });
  const linked = await u.pb.collection('users').authWithOAuth2Code('oidc', code, verifier, REDIRECT);
  assert.equal(linked.record.id, u.id);
  assert.equal(linked.meta.isNew, false);

  // u is unverified: an identity asserting u's email does not get the account.
  ({ code, verifier } = await approve({ sub: `squat-${process.pid}`, email: u.email, email_verified: true }));
  await expectError(srv.client().collection('users').authWithOAuth2Code('oidc', code, verifier, REDIRECT), 400);
  // and u's password still works
  await srv.client().collection('users').authWithPassword(u.email, u.password);
});

test('a wrong PKCE verifier and an unknown provider fail', async () => {
  const { code } = await approve({ sub: `pkce-${process.pid}`, email: `pkce-${process.pid}@idp.test`, email_verified: true });
  await expectError(srv.client().collection('users').authWithOAuth2Code('oidc', code, 'x'.repeat(43), REDIRECT), 400);
  await expectError(srv.client().collection('users').authWithOAuth2Code('github', 'code', 'v', REDIRECT), 400,
    { provider: 'validation_invalid_provider' });
});

test('the built-in providers list', async () => {
  const list = await srv.pb.collections.getAllOAuth2Providers();
  for (const name of ['apple', 'discord', 'github', 'gitlab', 'google', 'microsoft']) {
    assert.ok(list.some((p) => p.name === name && p.displayName), name);
  }
});

test('authWithOAuth2 (realtime flow): the redirect hands the code to the waiting client', async () => {
  const email = `popup-${process.pid}@idp.test`;
  nextUser = { sub: `popup-${process.pid}`, email, email_verified: true, name: 'Pat Popup' };
  const pb = srv.client();
  let landed = null;
  const auth = await pb.collection('users').authWithOAuth2({
    provider: 'oidc',
    createData: { emailVisibility: true },
    // Plays the browser: the provider's page redirects to /api/oauth2-redirect, which redirects to a page.
    async urlCallback(url) {
      const u = new URL(url);
      assert.equal(u.origin + u.pathname, `${issuer}/authorize`);
      assert.equal(u.searchParams.get('redirect_uri'), `${srv.url}/api/oauth2-redirect`);
      // state is the clientId of the one-off realtime connection the SDK opened for this sign-in
      assert.match(u.searchParams.get('state'), /^[A-Za-z0-9]{40}$/);
      const res = await fetch(url);
      landed = { status: res.status, url: res.url, body: await res.text() };
    },
  });
  assert.equal(auth.meta.isNew, true);
  assert.equal(auth.record.email, email);
  assert.equal(auth.record.verified, true);
  assert.equal(pb.authStore.record.id, auth.record.id);
  assert.equal(landed.status, 200);
  assert.equal(landed.url, `${srv.url}/api/oauth2-redirect-success`);
  assert.match(landed.body, /close this window/);

  // Again with a fresh client: the same record.
  const again = await srv.client().collection('users').authWithOAuth2({ provider: 'oidc', urlCallback: (url) => fetch(url) });
  assert.equal(again.meta.isNew, false);
  assert.equal(again.record.id, auth.record.id);
});

test('oauth2-redirect with an unknown state lands on the failure page', async () => {
  const res = await fetch(`${srv.url}/api/oauth2-redirect?state=unknown&code=x`, { redirect: 'manual' });
  assert.equal(res.status, 307);
  assert.equal(res.headers.get('location'), './oauth2-redirect-failure');
  const page = await fetch(`${srv.url}/api/oauth2-redirect?state=unknown&code=x`);
  assert.equal(page.status, 200);
  assert.equal(page.url, `${srv.url}/api/oauth2-redirect-failure`);
});
