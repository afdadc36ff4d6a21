// pb.createBatch(): disabled by default, then all-or-nothing transactions of record writes (API.md §10).
import { before } from 'node:test';
import { useServer, test, assert, expectError, unique } from './harness.js';

const srv = useServer();
let name;

before(async () => {
  await srv.ready;
  name = unique('tasks');
  await srv.pb.collections.create({
    name,
    type: 'base',
    listRule: '',
    viewRule: '',
    createRule: '',
    updateRule: '',
    deleteRule: '',
    fields: [
      { name: 'title', type: 'text', required: true },
      { name: 'n', type: 'number' },
    ],
  });
});

test('batch is disabled on a fresh server: 403', async () => {
  const batch = srv.pb.createBatch();
  batch.collection(name).create({ title: 'nope' });
  const err = await expectError(batch.send(), 403);
  assert.equal(err.response.message, 'Batch requests are not allowed.');
  assert.equal((await srv.pb.collection(name).getList(1, 10)).totalItems, 0);
});

test('enable batch through settings', async () => {
  const s = await srv.pb.settings.update({ batch: { enabled: true, maxRequests: 50, timeout: 3, maxBodySize: 0 } });
  assert.deepEqual(s.batch, { enabled: true, maxRequests: 50, timeout: 3, maxBodySize: 0 });
});

test('create, update, upsert and delete in one batch, results in request order', async () => {
  const keep = await srv.pb.collection(name).create({ title: 'keep', n: 1 });
  const drop = await srv.pb.collection(name).create({ title: 'drop', n: 2 });

  const batch = srv.pb.createBatch();
  batch.collection(name).create({ title: 'b1', n: 10 }, { fields: 'id,title' });
  batch.collection(name).create({ id: 'batchcreated001', title: 'b2' });
  batch.collection(name).update(keep.id, { title: 'kept', 'n+': 5 });
  batch.collection(name).upsert({ id: 'batchupsert0001', title: 'upserted' });
  batch.collection(name).upsert({ id: keep.id, title: 'kept twice' });
  batch.collection(name).delete(drop.id);
  const res = await batch.send();

  assert.deepEqual(res.map((r) => r.status), [200, 200, 200, 200, 200, 204]);
  assert.deepEqual(Object.keys(res[0].body).sort(), ['id', 'title']);
  assert.equal(res[0].body.title, 'b1');
  assert.equal(res[1].body.id, 'batchcreated001');
  assert.equal(res[1].body.collectionName, name);
  assert.equal(res[2].body.title, 'kept');
  assert.equal(res[2].body.n, 6);
  assert.equal(res[3].body.id, 'batchupsert0001');
  assert.equal(res[4].body.id, keep.id);
  assert.equal(res[4].body.title, 'kept twice');
  assert.equal(res[4].body.n, 6);
  assert.equal(res[5].body, null);

  const all = await srv.pb.collection(name).getFullList({ sort: 'title' });
  assert.deepEqual(all.map((r) => r.title), ['b1', 'b2', 'kept twice', 'upserted']);
  await expectError(srv.pb.collection(name).getOne(drop.id), 404);
});

test('a failing item rolls the whole batch back', async () => {
  const before = await srv.pb.collection(name).getFullList({ sort: 'title' });
  const target = before[0];

  const batch = srv.pb.createBatch();
  batch.collection(name).create({ title: 'ghost' });
  batch.collection(name).update(target.id, { title: 'changed' });
  batch.collection(name).create({ n: 3 });
  const err = await expectError(batch.send(), 400, {
    requests: { 2: 'batch_request_failed' },
  });
  assert.equal(err.response.message, 'Batch transaction failed.');
  const inner = err.response.data.requests['2'].response;
  assert.equal(inner.status, 400);
  assert.equal(inner.data.title.code, 'validation_required');

  const after = await srv.pb.collection(name).getFullList({ sort: 'title' });
  assert.deepEqual(after, before);
});

test('batch items run under the caller auth and its rules', async () => {
  const locked = unique('lockedtasks');
  await srv.pb.collections.create({ name: locked, type: 'base', fields: [{ name: 'title', type: 'text' }] });
  const batch = srv.client().createBatch();
  batch.collection(name).create({ title: 'guest ok' });
  batch.collection(locked).create({ title: 'guest denied' });
  const err = await expectError(batch.send(), 400, { requests: { 1: 'batch_request_failed' } });
  assert.equal(err.response.data.requests['1'].response.status, 403);
  assert.equal((await srv.pb.collection(name).getList(1, 1, { filter: 'title = "guest ok"' })).totalItems, 0);
});

test('batch limits: empty and over maxRequests', async () => {
  await expectError(srv.pb.createBatch().send(), 400, { requests: 'validation_required' });
  const batch = srv.pb.createBatch();
  for (let i = 0; i < 51; i++) batch.collection(name).create({ title: `t${i}` });
  await expectError(batch.send(), 400, { requests: 'validation_length_too_long' });
  assert.equal((await srv.pb.collection(name).getList(1, 1, { filter: 'title = "t0"' })).totalItems, 0);
});
