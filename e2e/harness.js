// Starts a real Strata server for one test file and hands its tests PocketBase SDK clients.
//
// Each *.test.js file calls useServer() once at top level: the server is built (once per test run),
// given a fresh data directory and a superuser, started on a free loopback port, and stopped after the
// file's last test. When a test fails, the server's output is printed after the file so the cause is visible.

import { after, before, test as nodeTest } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import PocketBase, { ClientResponseError } from 'pocketbase';

export const SUPERUSER = { email: 'root@strata.test', password: 'root-pass-123' };

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

let failed = false;

// test wraps node:test's test so that a failure also prints the server's output at the end of the file.
export function test(name, fn) {
  return nodeTest(name, async (t) => {
    try {
      await fn(t);
    } catch (err) {
      failed = true;
      if (err instanceof ClientResponseError) {
        // the SDK's message alone ("Something went wrong…") does not say which call failed or why
        err.message = `${err.status} from ${err.url}: ${JSON.stringify(err.response)}`;
      }
      throw err;
    }
  });
}

// strataBinary returns STRATA_BIN when set (make e2e builds bin/strata), else builds the server once per
// `node --test` run: every test file runs in a child of the same runner, so the runner's pid names the build.
function strataBinary() {
  if (process.env.STRATA_BIN) return process.env.STRATA_BIN;
  const dir = join(tmpdir(), `strata-e2e-build-${process.ppid}`);
  const bin = join(dir, 'strata');
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true });
    const partial = `${bin}.${process.pid}`;
    execFileSync('go', ['build', '-o', partial, './cmd/strata'], { cwd: repoRoot, stdio: 'inherit' });
    renameSync(partial, bin);
  }
  return bin;
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// useServer registers before/after hooks and returns the context they fill in:
//   url, dir, pb (a superuser-authenticated client), client() (a new guest client), restart().
export function useServer() {
  const ctx = {
    url: '',
    dir: '',
    pb: null,
    log: [],
    client() {
      const pb = new PocketBase(ctx.url);
      pb.autoCancellation(false);
      return pb;
    },
    async superuserClient() {
      const pb = ctx.client();
      await pb.collection('_superusers').authWithPassword(SUPERUSER.email, SUPERUSER.password);
      return pb;
    },
    // restart stops the server and starts it again on the same data directory and port.
    async restart() {
      await stop(ctx);
      await start(ctx);
    },
  };

  // Node 20 does not run root-level before hooks in registration order, so
  // a test file's own before hook must await ctx.ready before using ctx.pb.
  let markReady, markFailed;
  ctx.ready = new Promise((res, rej) => { markReady = res; markFailed = rej; });
  ctx.ready.catch(() => {});
  before(async () => {
    try {
      await setup();
      markReady();
    } catch (err) {
      markFailed(err);
      throw err;
    }
  });

  async function setup() {
    ctx.bin = strataBinary();
    ctx.dir = mkdtempSync(join(tmpdir(), 'strata-e2e-data-'));
    ctx.port = await freePort();
    ctx.url = `http://127.0.0.1:${ctx.port}`;
    // STRATA_E2E_DB=postgres runs the file against a fresh PostgreSQL database (make e2e-postgres).
    if (process.env.STRATA_E2E_DB === 'postgres') {
      const name = `strata_e2e_${process.pid}_${ctx.port}`;
      psql(`CREATE DATABASE ${name}`);
      ctx.pgdb = name;
      ctx.env = { ...process.env, STRATA_DB: `postgres://postgres@127.0.0.1:5432/${name}?sslmode=disable` };
    }
    run(ctx, ['superuser', 'upsert', SUPERUSER.email, SUPERUSER.password, '--dir', ctx.dir]);
    await start(ctx);
    ctx.pb = await ctx.superuserClient();
  }

  after(async () => {
    await stop(ctx);
    if (failed || process.exitCode) {
      process.stderr.write(`\n--- strata server output (${ctx.url}, ${ctx.dir}) ---\n${ctx.log.join('')}--- end ---\n`);
    }
    if (ctx.dir) rmSync(ctx.dir, { recursive: true, force: true });
    if (ctx.pgdb) psql(`DROP DATABASE IF EXISTS ${ctx.pgdb} WITH (FORCE)`);
  });

  return ctx;
}

function psql(sql) {
  execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-qc', sql], { stdio: ['ignore', 'pipe', 'pipe'] });
}

function run(ctx, args) {
  try {
    const out = execFileSync(ctx.bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: ctx.env });
    ctx.log.push(`$ strata ${args.join(' ')}\n${out}`);
  } catch (err) {
    throw new Error(`strata ${args.join(' ')} failed (${err.status}):\n${err.stdout}${err.stderr}`);
  }
}

async function start(ctx) {
  const args = ['serve', '--http', `127.0.0.1:${ctx.port}`, '--dir', ctx.dir];
  ctx.log.push(`$ strata ${args.join(' ')}\n`);
  const child = spawn(ctx.bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: ctx.env });
  child.stdout.on('data', (b) => ctx.log.push(b.toString()));
  child.stderr.on('data', (b) => ctx.log.push(b.toString()));
  ctx.exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  ctx.child = child;

  const deadline = Date.now() + 30_000;
  let exit = null;
  ctx.exited.then((e) => (exit = e));
  while (Date.now() < deadline) {
    if (exit) break;
    try {
      const res = await fetch(`${ctx.url}/api/health`);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  child.kill('SIGKILL');
  const why = exit ? `exited (${exit.code ?? exit.signal})` : 'did not answer GET /api/health with 200 within 30s';
  throw new Error(`strata serve ${why}:\n${ctx.log.join('')}`);
}

async function stop(ctx) {
  const child = ctx.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const done = await Promise.race([ctx.exited, sleep(10_000).then(() => null)]);
  if (!done) {
    child.kill('SIGKILL');
    await ctx.exited;
  }
}

// expectError awaits a promise that must reject with a ClientResponseError of the given status and, for each
// key of `data`, a field error with that code (data may nest: {requests: {'1': {code: 'batch_request_failed'}}}).
export async function expectError(promise, status, data = undefined) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected a ${status} error, got success`);
  assert.ok(err instanceof ClientResponseError, `expected ClientResponseError, got ${err}`);
  assert.equal(err.status, status, `status of ${err.url}: ${JSON.stringify(err.response)}`);
  assert.equal(err.response.status, status, 'body status');
  assert.equal(typeof err.response.message, 'string');
  assert.equal(typeof err.response.data, 'object');
  assert.notEqual(err.response.data, null);
  if (data) assertCodes(err.response.data, data, 'data');
  return err;
}

function assertCodes(actual, expected, path) {
  for (const [key, want] of Object.entries(expected)) {
    const got = actual?.[key];
    if (typeof want === 'string') {
      assert.equal(got?.code, want, `${path}.${key}.code in ${JSON.stringify(actual)}`);
      assert.equal(typeof got.message, 'string');
    } else {
      assert.ok(got, `${path}.${key} missing in ${JSON.stringify(actual)}`);
      assertCodes(got, want, `${path}.${key}`);
    }
  }
}

let seq = 0;
// unique returns a name no other call in this process returns, safe for collection names and emails.
export function unique(prefix) {
  seq += 1;
  return `${prefix}_${process.pid}_${seq}`;
}

// signUp creates a users record through the public create route and returns a client signed in as it.
export async function signUp(ctx, extra = {}) {
  const email = `${unique('user').toLowerCase()}@strata.test`;
  const password = 'user-pass-123';
  const guest = ctx.client();
  await guest.collection('users').create({ email, password, passwordConfirm: password, ...extra });
  const pb = ctx.client();
  const auth = await pb.collection('users').authWithPassword(email, password);
  return { pb, email, password, record: auth.record, id: auth.record.id, token: auth.token };
}

// tokenPayload decodes a JWT's claims without checking the signature.
export function tokenPayload(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

// crc32 is CRC32-IEEE of a UTF-8 string, as PocketBase uses for collection and field ids.
export function crc32(str) {
  let c = 0xffffffff;
  for (const b of Buffer.from(str, 'utf8')) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export const DATE_RE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}Z$/;
export const ID_RE = /^[a-z0-9]{15}$/;

export { assert };
