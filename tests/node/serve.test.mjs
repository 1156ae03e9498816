// The static server of the demo page and the browser tests (tools/serve.mjs): a bad request target is a client
// error, nothing outside its folder is served, and it keeps serving.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { serve } from '../../tools/serve.mjs';
import { scratchDir } from './helpers.mjs';

let server;
let url;

/** A GET with the path sent as it is (fetch would normalise it). */
function get(path) {
  return new Promise((ok, fail) => {
    const req = request(url, { path }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => ok({ status: res.statusCode, type: res.headers['content-type'], body }));
    });
    req.on('error', fail);
    req.end();
  });
}

before(async () => {
  const dir = scratchDir('serve');
  mkdirSync(join(dir, 'site'));
  mkdirSync(join(dir, 'site-private'));
  writeFileSync(join(dir, 'site/index.html'), '<!doctype html>home');
  writeFileSync(join(dir, 'site/engine.wasm'), 'wasm');
  writeFileSync(join(dir, 'site-private/secret.txt'), 'secret');
  ({ server, url } = await serve(join(dir, 'site')));
});

after(() => server?.close());

test('bad request targets get 400, paths outside the folder 403, and the server keeps serving', async () => {
  // `//` once ended the server (a URL parsed with it as a protocol-relative one); it is the folder's root.
  assert.equal((await get('//')).body, '<!doctype html>home');
  for (const path of ['/%E0%A4%A', '/%']) assert.equal((await get(path)).status, 400, path);
  // Dot segments are resolved within the folder; an escaped `/` decodes after that, and the result must stay in
  // the folder, not in a sibling whose name starts with the folder's.
  assert.equal((await get('/../site-private/secret.txt')).status, 404);
  for (const path of ['/%2E%2E%2Fsite-private%2Fsecret.txt', '/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd']) {
    const r = await get(path);
    assert.equal(r.status, 403, path);
    assert.doesNotMatch(r.body, /secret|root/);
  }
  assert.equal((await get('/nothing-here')).status, 404);
  assert.deepEqual(await get('/'), { status: 200, type: 'text/html; charset=utf-8', body: '<!doctype html>home' });
  assert.deepEqual(await get('/engine.wasm?v=1'), { status: 200, type: 'application/wasm', body: 'wasm' });
});
