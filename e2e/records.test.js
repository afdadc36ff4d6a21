// Records API through pb.collection(...): CRUD, bodies, modifiers, lists, expand and fields (API.md §4, §5, §6).
import { before } from 'node:test';
import { useServer, test, assert, expectError, unique, DATE_RE, ID_RE } from './harness.js';

const srv = useServer();
const C = {}; // collection names
const A = {}; // author ids by name
let markBase;
const baseReady = new Promise((r) => (markBase = r)); // the list fixture needs the authors

before(async () => {
  await srv.ready;
  const pb = srv.pb;
  C.authors = unique('authors');
  C.posts = unique('posts');
  C.comments = unique('comments');
  const authors = await pb.collections.create({
    name: C.authors,
    type: 'base',
    listRule: '',
    viewRule: '',
    fields: [{ name: 'name', type: 'text', required: true, presentable: true }],
  });
  const posts = await pb.collections.create({
    name: C.posts,
    type: 'base',
    listRule: '',
    viewRule: '',
    createRule: '',
    updateRule: '',
    deleteRule: '',
    fields: [
      { name: 'title', type: 'text', required: true, min: 2, max: 50 },
      { name: 'views', type: 'number', min: 0, max: 1000, onlyInt: true },
      { name: 'rating', type: 'number' },
      { name: 'published', type: 'bool' },
      { name: 'contact', type: 'email' },
      { name: 'site', type: 'url' },
      { name: 'due', type: 'date' },
      { name: 'status', type: 'select', values: ['draft', 'published', 'archived'], maxSelect: 1 },
      { name: 'tags', type: 'select', values: ['a', 'b', 'c', 'd'], maxSelect: 3 },
      { name: 'meta', type: 'json' },
      { name: 'author', type: 'relation', collectionId: authors.id, maxSelect: 1 },
      { name: 'reviewers', type: 'relation', collectionId: authors.id, maxSelect: 5 },
      { name: 'body', type: 'editor' },
      { name: 'secret', type: 'text', hidden: true },
      { name: 'created', type: 'autodate', onCreate: true, onUpdate: false },
      { name: 'updated', type: 'autodate', onCreate: true, onUpdate: true },
    ],
  });
  await pb.collections.create({
    name: C.comments,
    type: 'base',
    listRule: '',
    viewRule: '',
    fields: [
      { name: 'post', type: 'relation', collectionId: posts.id, maxSelect: 1, cascadeDelete: true },
      { name: 'message', type: 'text' },
      { name: 'approved', type: 'bool' },
    ],
  });
  for (const name of ['Ann', 'Bob', 'Cid']) A[name] = (await pb.collection(C.authors).create({ name })).id;
  markBase();
});

const posts = () => srv.pb.collection(C.posts);

test('create with a JSON body fills zero values, autodates, generated id', async () => {
  const rec = await posts().create({ title: 'Zero', unknownKey: 'ignored', collectionName: 'nope' });
  assert.match(rec.id, ID_RE);
  assert.equal(rec.collectionName, C.posts);
  assert.equal(rec.collectionId, (await srv.pb.collections.getOne(C.posts)).id);
  assert.equal(rec.title, 'Zero');
  assert.equal(rec.views, 0);
  assert.equal(rec.rating, 0);
  assert.equal(rec.published, false);
  assert.equal(rec.contact, '');
  assert.equal(rec.site, '');
  assert.equal(rec.due, '');
  assert.equal(rec.status, '');
  assert.deepEqual(rec.tags, []);
  assert.equal(rec.meta, null);
  assert.equal(rec.author, '');
  assert.deepEqual(rec.reviewers, []);
  assert.equal(rec.body, '');
  assert.equal(rec.secret, '', 'superusers see hidden fields');
  assert.match(rec.created, DATE_RE);
  assert.equal(rec.updated, rec.created);
  assert.equal('unknownKey' in rec, false);
  assert.equal('expand' in rec, false);
});

test('create with every field set and a client-chosen id', async () => {
  const rec = await posts().create({
    id: 'chosenid0000001',
    title: 'Full',
    views: 12,
    rating: -1.5,
    published: true,
    contact: 'a@b.test',
    site: 'https://example.test/x',
    due: '2030-01-02 03:04:05.000Z',
    status: 'draft',
    tags: ['c', 'a'],
    meta: { k: [1, 'two'], n: null },
    author: A.Ann,
    reviewers: [A.Bob, A.Cid],
    body: '<p>Hello <b>world</b></p>',
    secret: 's3',
    created: '2000-01-01 00:00:00.000Z',
  });
  assert.equal(rec.id, 'chosenid0000001');
  assert.equal(rec.views, 12);
  assert.equal(rec.rating, -1.5);
  assert.equal(rec.published, true);
  assert.equal(rec.contact, 'a@b.test');
  assert.equal(rec.site, 'https://example.test/x');
  assert.equal(rec.due, '2030-01-02 03:04:05.000Z');
  assert.equal(rec.status, 'draft');
  assert.deepEqual(rec.tags, ['c', 'a']);
  assert.deepEqual(rec.meta, { k: [1, 'two'], n: null });
  assert.equal(rec.author, A.Ann);
  assert.deepEqual(rec.reviewers, [A.Bob, A.Cid]);
  assert.equal(rec.body, '<p>Hello <b>world</b></p>');
  assert.equal(rec.secret, 's3');
  assert.notEqual(rec.created, '2000-01-01 00:00:00.000Z', 'autodate values from clients are ignored');

  const got = await posts().getOne('chosenid0000001');
  assert.deepEqual(got, rec);
  await expectError(posts().create({ id: 'chosenid0000001', title: 'dup' }), 400, { id: 'validation_not_unique' });
  await expectError(posts().create({ id: 'TooShort', title: 'bad id' }), 400, { id: 'validation_min_text_constraint' });
});

test('create with a FormData body infers numbers, bools and arrays', async () => {
  const fd = new FormData();
  fd.append('title', 'From form');
  fd.append('views', '42');
  fd.append('published', 'true');
  fd.append('tags', 'a');
  fd.append('tags', 'b');
  fd.append('status', 'published');
  fd.append('@jsonPayload', JSON.stringify({ meta: { from: 'payload' } }));
  const rec = await posts().create(fd);
  assert.equal(rec.title, 'From form');
  assert.equal(rec.views, 42);
  assert.equal(rec.published, true);
  assert.deepEqual(rec.tags, ['a', 'b']);
  assert.equal(rec.status, 'published');
  assert.deepEqual(rec.meta, { from: 'payload' });

  const up = new FormData();
  up.append('title', '007');
  up.append('views+', '3');
  const upd = await posts().update(rec.id, up);
  assert.equal(upd.title, '007', '"007" does not round-trip as a number, so it stays text');
  assert.equal(upd.views, 45);
});

test('field validation errors carry PocketBase codes', async () => {
  const cases = [
    [{}, { title: 'validation_required' }],
    [{ title: 'x' }, { title: 'validation_min_text_constraint' }],
    [{ title: 'y'.repeat(51) }, { title: 'validation_max_text_constraint' }],
    [{ title: 'ok', views: 1.5 }, { views: 'validation_only_int_constraint' }],
    [{ title: 'ok', views: 5000 }, { views: 'validation_max_number_constraint' }],
    [{ title: 'ok', views: -1 }, { views: 'validation_min_number_constraint' }],
    [{ title: 'ok', contact: 'not-an-email' }, { contact: 'validation_is_email' }],
    [{ title: 'ok', site: 'not a url' }, { site: 'validation_invalid_url' }],
    [{ title: 'ok', status: 'bogus' }, { status: 'validation_invalid_value' }],
    [{ title: 'ok', tags: ['a', 'zzz'] }, { tags: 'validation_invalid_value' }],
    [{ title: 'ok', tags: ['a', 'b', 'c', 'd'] }, { tags: 'validation_too_many_values' }],
    [{ title: 'ok', author: 'nosuchauthor123' }, { author: 'validation_missing_rel_records' }],
  ];
  for (const [body, codes] of cases) {
    const err = await expectError(posts().create(body), 400, codes);
    assert.equal(err.response.message, 'Failed to create record.', JSON.stringify(body));
  }
  const err = await expectError(posts().create({ title: 'x', views: 1.5 }), 400, {
    title: 'validation_min_text_constraint',
    views: 'validation_only_int_constraint',
  });
  assert.equal(err.response.data.title.params?.min, 2);
});

test('getOne, update keeps untouched fields, delete then 404', async () => {
  const rec = await posts().create({ title: 'Before', views: 5, tags: ['a'], author: A.Ann });
  await new Promise((r) => setTimeout(r, 5));
  const upd = await posts().update(rec.id, { title: 'After' });
  assert.equal(upd.id, rec.id);
  assert.equal(upd.title, 'After');
  assert.equal(upd.views, 5);
  assert.deepEqual(upd.tags, ['a']);
  assert.equal(upd.author, A.Ann);
  assert.equal(upd.created, rec.created);
  assert.ok(upd.updated > rec.updated, `${upd.updated} > ${rec.updated}`);
  await expectError(posts().update(rec.id, { title: 'x' }), 400, { title: 'validation_min_text_constraint' });
  assert.equal((await posts().getOne(rec.id)).title, 'After');
  await expectError(posts().update(rec.id, { id: 'otherid00000001' }), 400);

  assert.equal(await posts().delete(rec.id), true);
  const err = await expectError(posts().getOne(rec.id), 404);
  assert.equal(err.response.message, "The requested resource wasn't found.");
  await expectError(posts().delete(rec.id), 404);
  await expectError(posts().update(rec.id, { title: 'gone' }), 404);
  const missing = await expectError(srv.pb.collection('nosuchcollection').getList(1, 1), 404);
  assert.equal(missing.response.message, 'Missing collection context.');
});

test('field+ and field- modifiers on numbers, selects and relations', async () => {
  const rec = await posts().create({ title: 'Mods', views: 10, tags: ['a'], reviewers: [A.Ann], 'views+': 5 });
  assert.equal(rec.views, 15);
  let upd = await posts().update(rec.id, { 'views+': 7, 'tags+': 'c', 'reviewers+': [A.Bob, A.Cid] });
  assert.equal(upd.views, 22);
  assert.deepEqual(upd.tags, ['a', 'c']);
  assert.deepEqual(upd.reviewers, [A.Ann, A.Bob, A.Cid]);
  upd = await posts().update(rec.id, { 'views-': 2, 'tags-': 'a', 'reviewers-': A.Bob, '+tags': 'b' });
  assert.equal(upd.views, 20);
  assert.deepEqual(upd.tags, ['b', 'c']);
  assert.deepEqual(upd.reviewers, [A.Ann, A.Cid]);
  await expectError(posts().update(rec.id, { 'views+': 5000 }), 400, { views: 'validation_max_number_constraint' });
});

test('deleting a related record: cascade deletes, plain relations drop the id', async () => {
  const author = await srv.pb.collection(C.authors).create({ name: 'Temp' });
  const post = await posts().create({ title: 'Doomed', author: author.id, reviewers: [author.id, A.Ann] });
  const c1 = await srv.pb.collection(C.comments).create({ post: post.id, message: 'one' });
  const c2 = await srv.pb.collection(C.comments).create({ post: post.id, message: 'two' });

  await srv.pb.collection(C.authors).delete(author.id);
  const kept = await posts().getOne(post.id);
  assert.equal(kept.author, '');
  assert.deepEqual(kept.reviewers, [A.Ann]);

  await posts().delete(post.id);
  await expectError(srv.pb.collection(C.comments).getOne(c1.id), 404);
  await expectError(srv.pb.collection(C.comments).getOne(c2.id), 404);
});

// A small fixed set for list tests, in their own collection so other tests cannot change the counts.
async function listFixture() {
  const name = unique('books');
  await srv.pb.collections.create({
    name,
    type: 'base',
    listRule: '',
    viewRule: '',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'n', type: 'number' },
      { name: 'genre', type: 'select', values: ['sf', 'crime', 'poetry'], maxSelect: 1 },
      { name: 'labels', type: 'select', values: ['x', 'y', 'z'], maxSelect: 3 },
      { name: 'author', type: 'relation', collectionId: C.authors, maxSelect: 1 },
      { name: 'reviewers', type: 'relation', collectionId: C.authors, maxSelect: 5 },
      { name: 'body', type: 'editor' },
      { name: 'created', type: 'autodate', onCreate: true, onUpdate: false },
    ],
  });
  const rows = [
    ['Dune', 5, 'sf', ['x'], 'Cid', ['Ann']],
    ['Alpha', 1, 'crime', ['x', 'y'], 'Ann', ['Bob', 'Cid']],
    ['Echo', 3, 'sf', [], 'Bob', []],
    ['Bravo', 3, 'poetry', ['z'], 'Ann', ['Bob']],
    ['Charlie', 2, 'crime', ['y', 'z'], 'Cid', ['Ann', 'Bob', 'Cid']],
  ];
  const ids = {};
  for (const [title, n, genre, labels, author, reviewers] of rows) {
    const r = await srv.pb.collection(name).create({
      title,
      n,
      genre,
      labels,
      author: A[author],
      reviewers: reviewers.map((x) => A[x]),
      body: `<p>The   <i>story</i> of ${title} goes on and on</p>`,
    });
    ids[title] = r.id;
  }
  return { name, ids, col: () => srv.pb.collection(name) };
}

let books;
before(async () => {
  await srv.ready;
  await baseReady;
  books = await listFixture();
});

const titles = (items) => items.map((r) => r.title);

test('list pagination: page, perPage, totals, past the end', async () => {
  const p1 = await books.col().getList(1, 2, { sort: 'title' });
  assert.deepEqual([p1.page, p1.perPage, p1.totalItems, p1.totalPages], [1, 2, 5, 3]);
  assert.deepEqual(titles(p1.items), ['Alpha', 'Bravo']);
  const p3 = await books.col().getList(3, 2, { sort: 'title' });
  assert.deepEqual(titles(p3.items), ['Echo']);
  const p9 = await books.col().getList(9, 2, { sort: 'title' });
  assert.deepEqual(p9.items, []);
  assert.equal(p9.totalItems, 5);
  const dflt = await books.col().getList();
  assert.equal(dflt.page, 1);
  assert.equal(dflt.perPage, 30);
  const skip = await books.col().getList(1, 2, { skipTotal: true, sort: 'title' });
  assert.equal(skip.totalItems, -1);
  assert.equal(skip.totalPages, -1);
  assert.deepEqual(titles(skip.items), ['Alpha', 'Bravo']);
  await expectError(books.col().getList(1, 2, { skipTotal: 'maybe' }), 400);
});

test('sort: several keys, -desc, relation path, @random', async () => {
  assert.deepEqual(titles(await books.col().getFullList({ sort: '-n,title' })), ['Dune', 'Bravo', 'Echo', 'Charlie', 'Alpha']);
  assert.deepEqual(titles(await books.col().getFullList({ sort: 'n,-title' })), ['Alpha', 'Charlie', 'Echo', 'Bravo', 'Dune']);
  assert.deepEqual(titles(await books.col().getFullList({ sort: 'author.name,-title' })), ['Bravo', 'Alpha', 'Echo', 'Dune', 'Charlie']);
  const random = await books.col().getFullList({ sort: '@random' });
  assert.deepEqual(titles(random).sort(), ['Alpha', 'Bravo', 'Charlie', 'Dune', 'Echo']);
  await expectError(books.col().getList(1, 10, { sort: 'nosuchfield' }), 400);
});

test('filter operators, grouping, relation paths, multi-value forms, macros', async () => {
  const f = async (filter) => titles(await books.col().getFullList({ filter, sort: 'title' }));
  assert.deepEqual(await f('n = 3'), ['Bravo', 'Echo']);
  assert.deepEqual(await f('n != 3'), ['Alpha', 'Charlie', 'Dune']);
  assert.deepEqual(await f('n > 3'), ['Dune']);
  assert.deepEqual(await f('n >= 3'), ['Bravo', 'Dune', 'Echo']);
  assert.deepEqual(await f('n < 2'), ['Alpha']);
  assert.deepEqual(await f('n <= 2'), ['Alpha', 'Charlie']);
  assert.deepEqual(await f('title ~ "RAV"'), ['Bravo']);
  assert.deepEqual(await f('title ~ "c%"'), ['Charlie']);
  assert.deepEqual(await f('title !~ "a"'), ['Dune', 'Echo']);
  assert.deepEqual(await f('genre = "sf" && n > 3 || title = "Alpha"'), ['Alpha', 'Dune']);
  assert.deepEqual(await f('genre = "sf" && (n > 3 || title = "Echo")'), ['Dune', 'Echo']);
  assert.deepEqual(await f('author.name = "Ann"'), ['Alpha', 'Bravo']);
  assert.deepEqual(await f('reviewers.name ?= "Cid"'), ['Alpha', 'Charlie']);
  assert.deepEqual(await f('reviewers.name = "Bob"'), ['Bravo']);
  assert.deepEqual(await f('labels ~ "y"'), ['Alpha', 'Charlie']);
  assert.deepEqual(await f('labels:each ?= "z"'), ['Bravo', 'Charlie']);
  assert.deepEqual(await f('labels:length = 2'), ['Alpha', 'Charlie']);
  assert.deepEqual(await f('title:lower = "echo"'), ['Echo']);
  assert.deepEqual(await f('genre = ""'), []);
  assert.deepEqual(await f('author = null'), []);
  assert.deepEqual(await f('created <= @now && created > @yesterday'), ['Alpha', 'Bravo', 'Charlie', 'Dune', 'Echo']);
  assert.deepEqual(await f('created > @tomorrow'), []);
  assert.deepEqual(await f(`id = "${books.ids.Dune}"`), ['Dune']);
  await expectError(books.col().getList(1, 10, { filter: 'n = ' }), 400);
  await expectError(books.col().getList(1, 10, { filter: 'nosuchfield = 1' }), 400);
  await expectError(books.col().getList(1, 10, { filter: 'title = {:t}' }), 400);
});

test('pb.filter placeholders escape values client-side', async () => {
  const q = srv.pb.collection(books.name);
  const weird = await q.create({ title: 'He said "hi" \\ o\'k', n: 9 });
  const filter = srv.pb.filter('title = {:t} && n = {:n}', { t: 'He said "hi" \\ o\'k', n: 9 });
  const found = await q.getFullList({ filter });
  assert.deepEqual(found.map((r) => r.id), [weird.id]);
  const byDate = await q.getFullList({ filter: srv.pb.filter('created <= {:d} && n = {:n}', { d: new Date(Date.now() + 60_000), n: 9 }) });
  assert.deepEqual(byDate.map((r) => r.id), [weird.id]);
  await q.delete(weird.id);
});

test('getFirstListItem and getFullList paging', async () => {
  const first = await books.col().getFirstListItem('n = 3', { sort: '-title' });
  assert.equal(first.title, 'Echo');
  // the SDK raises this 404 itself on an empty page, so only the status is ours to check
  await assert.rejects(books.col().getFirstListItem('n = 42'), (err) => err.status === 404);
  const all = await books.col().getFullList({ sort: 'title' });
  assert.deepEqual(titles(all), ['Alpha', 'Bravo', 'Charlie', 'Dune', 'Echo']);
  const batched = await books.col().getFullList({ batch: 2, sort: '-title' });
  assert.deepEqual(titles(batched), ['Echo', 'Dune', 'Charlie', 'Bravo', 'Alpha']);
});

test('expand: single, multiple, nested and back-relations', async () => {
  const dune = await books.col().getOne(books.ids.Dune, { expand: 'author,reviewers' });
  assert.equal(dune.expand.author.id, A.Cid);
  assert.equal(dune.expand.author.name, 'Cid');
  assert.equal(dune.expand.author.collectionName, C.authors);
  assert.deepEqual(dune.expand.reviewers.map((r) => r.name), ['Ann']);

  const post = await posts().create({ title: 'Expandable', author: A.Bob });
  const c1 = await srv.pb.collection(C.comments).create({ post: post.id, message: 'first', approved: true });
  const c2 = await srv.pb.collection(C.comments).create({ post: post.id, message: 'second' });

  const nested = await srv.pb.collection(C.comments).getOne(c1.id, { expand: 'post.author' });
  assert.equal(nested.expand.post.id, post.id);
  assert.equal(nested.expand.post.expand.author.name, 'Bob');

  const back = await posts().getOne(post.id, { expand: `${C.comments}_via_post` });
  const via = back.expand[`${C.comments}_via_post`];
  assert.ok(Array.isArray(via));
  assert.deepEqual(via.map((c) => c.id).sort(), [c1.id, c2.id].sort());

  const listed = await posts().getList(1, 1, { filter: `id = "${post.id}"`, expand: 'author,nosuchrel' });
  assert.equal(listed.items[0].expand.author.name, 'Bob');

  const viaFilter = await posts().getFullList({ filter: `${C.comments}_via_post.approved ?= true && id = "${post.id}"` });
  assert.deepEqual(viaFilter.map((r) => r.id), [post.id]);

  const none = await books.col().getOne(books.ids.Echo, { expand: 'author,reviewers' });
  assert.equal(none.expand.author.name, 'Bob');
  assert.equal(none.expand.reviewers, undefined, 'an empty relation is not expanded');
});

test('fields: pick keys, expand paths, * and :excerpt', async () => {
  const one = await books.col().getOne(books.ids.Alpha, { fields: 'id,title' });
  assert.deepEqual(one, { id: books.ids.Alpha, title: 'Alpha' });

  const list = await books.col().getList(1, 2, { sort: 'title', fields: 'title,expand.author.name', expand: 'author' });
  assert.equal(list.totalItems, 5);
  assert.deepEqual(list.items, [
    { title: 'Alpha', expand: { author: { name: 'Ann' } } },
    { title: 'Bravo', expand: { author: { name: 'Ann' } } },
  ]);

  const ex = await books.col().getOne(books.ids.Echo, { fields: 'body:excerpt(10,true)' });
  assert.deepEqual(ex, { body: 'The story...' });
  const ex2 = await books.col().getOne(books.ids.Echo, { fields: 'id,body:excerpt(9)' });
  assert.deepEqual(ex2, { id: books.ids.Echo, body: 'The story' });

  const star = await books.col().getOne(books.ids.Echo, { fields: '*,expand.author.name', expand: 'author' });
  assert.equal(star.title, 'Echo');
  assert.equal(star.collectionName, books.name);
  assert.deepEqual(star.expand, { author: { name: 'Bob' } });
});

test('records survive a restart', async () => {
  await srv.restart();
  srv.pb = await srv.superuserClient();
  assert.deepEqual(titles(await books.col().getFullList({ sort: 'title' })), ['Alpha', 'Bravo', 'Charlie', 'Dune', 'Echo']);
});
