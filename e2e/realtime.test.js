// Realtime (API.md §8) through the real SDK: pb.collection(x).subscribe('*' | id, cb, {filter, …}).
import { EventSource } from 'eventsource';
import { useServer, test, assert, signUp, unique } from './harness.js';

// Node 20 has no EventSource; the SDK uses the global one.
globalThis.EventSource = EventSource;

const srv = useServer();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// events collects what a subscription callback receives and waits for it.
function collector() {
  const got = [];
  const waiters = [];
  return {
    got,
    push(e) {
      got.push(e);
      for (const w of waiters.splice(0)) w();
    },
    async waitFor(n, ms = 5000) {
      const until = Date.now() + ms;
      while (got.length < n) {
        if (Date.now() > until) throw new Error(`waited for ${n} events, got ${got.length}: ${JSON.stringify(got)}`);
        await new Promise((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
      return got;
    },
  };
}

async function notes() {
  const name = unique('rt_notes');
  await srv.pb.collections.create({
    name,
    type: 'base',
    listRule: 'owner = @request.auth.id',
    viewRule: 'owner = @request.auth.id',
    createRule: '@request.auth.id != ""',
    updateRule: 'owner = @request.auth.id',
    deleteRule: 'owner = @request.auth.id',
    fields: [
      { name: 'owner', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 1 },
      { name: 'title', type: 'text' },
      { name: 'secret', type: 'text', hidden: true },
    ],
  });
  return name;
}

test('subscribe("*") receives create, update and delete as GET shows them', async () => {
  const name = await notes();
  const alice = await signUp(srv);
  const events = collector();
  const unsubscribe = await alice.pb.collection(name).subscribe('*', (e) => events.push(e));
  const rec = await alice.pb.collection(name).create({ owner: alice.record.id, title: 'hello', secret: 's' });
  await alice.pb.collection(name).update(rec.id, { title: 'hello again' });
  await alice.pb.collection(name).delete(rec.id);
  const got = await events.waitFor(3);
  assert.deepEqual(got.map((e) => e.action), ['create', 'update', 'delete']);
  assert.equal(got[0].record.title, 'hello');
  assert.equal(got[0].record.collectionName, name);
  assert.equal(got[1].record.title, 'hello again');
  assert.equal(got[2].record.id, rec.id);
  assert.equal('secret' in got[0].record, false, 'hidden fields never reach clients');
  await unsubscribe();
});

test('subscribe(id, {filter}) only gets that record while the filter matches', async () => {
  const name = await notes();
  const alice = await signUp(srv);
  const a = await alice.pb.collection(name).create({ owner: alice.record.id, title: 'watched' });
  const b = await alice.pb.collection(name).create({ owner: alice.record.id, title: 'other' });
  const events = collector();
  await alice.pb.collection(name).subscribe(a.id, (e) => events.push(e), { filter: 'title ~ "watch"' });
  await alice.pb.collection(name).update(b.id, { title: 'watched too' }); // another record
  await alice.pb.collection(name).update(a.id, { title: 'watched, 2' });
  await alice.pb.collection(name).update(a.id, { title: 'no longer' }); // filter fails
  await alice.pb.collection(name).update(a.id, { title: 'watch again' });
  const got = await events.waitFor(2);
  await sleep(300);
  assert.deepEqual(got.map((e) => e.record.title), ['watched, 2', 'watch again']);
  await alice.pb.realtime.unsubscribe();
});

test('records hidden by the rule never arrive; guests see nothing', async () => {
  const name = await notes();
  const alice = await signUp(srv);
  const bob = await signUp(srv);
  const guest = srv.client();
  const forBob = collector();
  const forGuest = collector();
  const forAlice = collector();
  await bob.pb.collection(name).subscribe('*', (e) => forBob.push(e));
  await guest.collection(name).subscribe('*', (e) => forGuest.push(e));
  await alice.pb.collection(name).subscribe('*', (e) => forAlice.push(e));
  await alice.pb.collection(name).create({ owner: alice.record.id, title: 'private' });
  await bob.pb.collection(name).create({ owner: bob.record.id, title: 'bob only' });
  await forAlice.waitFor(1);
  await forBob.waitFor(1);
  await sleep(300);
  assert.deepEqual(forAlice.got.map((e) => e.record.title), ['private']);
  assert.deepEqual(forBob.got.map((e) => e.record.title), ['bob only']);
  assert.equal(forGuest.got.length, 0);
  await Promise.all([alice.pb.realtime.unsubscribe(), bob.pb.realtime.unsubscribe(), guest.realtime.unsubscribe()]);
});

test('unsubscribe stops events', async () => {
  const name = await notes();
  const alice = await signUp(srv);
  const events = collector();
  const unsubscribe = await alice.pb.collection(name).subscribe('*', (e) => events.push(e));
  await alice.pb.collection(name).create({ owner: alice.record.id, title: 'one' });
  await events.waitFor(1);
  await unsubscribe();
  await alice.pb.collection(name).create({ owner: alice.record.id, title: 'two' });
  await sleep(400);
  assert.equal(events.got.length, 1);
  assert.equal(alice.pb.realtime.isConnected, false);
});

test('change feed: commit order, tombstones, cursor', async () => {
  const name = await notes();
  const alice = await signUp(srv);
  const rec = await alice.pb.collection(name).create({ owner: alice.record.id, title: 'a' });
  await alice.pb.collection(name).update(rec.id, { title: 'b' });
  await alice.pb.collection(name).delete(rec.id);
  const page = await alice.pb.send(`/api/collections/${name}/changes`, { query: { since: 0 } });
  assert.deepEqual(page.items.map((i) => i.action), ['create', 'update', 'delete']);
  assert.equal(page.items[1].record.title, 'b');
  assert.equal(page.items[2].record, null);
  assert.equal(page.items[2].recordId, rec.id);
  const next = await alice.pb.send(`/api/collections/${name}/changes`, { query: { since: page.cursor } });
  assert.equal(next.items.length, 0);
});
