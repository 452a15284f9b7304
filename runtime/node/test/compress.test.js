import assert from 'node:assert/strict';
import http from 'node:http';
import test from 'node:test';
import zlib from 'node:zlib';
import { compressResponse, isCompressible, negotiateEncoding } from '../src/compress.js';

test('compressible types: mime-db, else text/* and +json/+text/+xml', () => {
  assert.equal(isCompressible('application/json; charset=utf-8'), true);
  assert.equal(isCompressible('text/plain'), true);
  assert.equal(isCompressible('application/ld+json'), true);
  assert.equal(isCompressible('image/svg+xml'), true);
  assert.equal(isCompressible('application/x-www-form-urlencoded'), true);
  assert.equal(isCompressible('application/octet-stream'), false);
  assert.equal(isCompressible('image/png'), false);
  assert.equal(isCompressible(undefined), false);
});

test('Accept-Encoding is negotiated as negotiator does', () => {
  const n = (h) => {
    let m = negotiateEncoding(h, ['gzip', 'deflate', 'identity']);
    if (m === 'deflate' && negotiateEncoding(h, ['gzip'])) m = negotiateEncoding(h, ['gzip', 'identity']);
    return m;
  };
  assert.equal(n(undefined), 'identity');
  assert.equal(n('gzip, deflate, br'), 'gzip');
  assert.equal(n('deflate, gzip'), 'gzip');
  assert.equal(n('deflate'), 'deflate');
  // gzip is taken whenever it is acceptable at all (compression's rule).
  assert.equal(n('deflate;q=1, gzip;q=0.5'), 'gzip');
  assert.equal(n('br'), 'identity');
  assert.equal(n('*'), 'gzip');
  assert.equal(n('gzip;q=0, identity;q=0'), undefined);
  assert.equal(n('GZIP'), 'gzip');
});

/** Serves one answer through compressResponse and returns what a client gets. */
async function serve(write, headers = {}, method = 'GET') {
  const server = http.createServer((req, res) => {
    compressResponse(req, res);
    write(res);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  try {
    return await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method, headers }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end();
    });
  } finally {
    server.close();
  }
}

test('a large JSON answer is gzipped when accepted, with Vary and without Content-Length', async () => {
  const big = JSON.stringify({ text: 'x'.repeat(5000) });
  const json = (res) => {
    res.setHeader('content-type', 'application/json');
    res.end(big);
  };
  const r = await serve(json, { 'accept-encoding': 'gzip, deflate, br' });
  assert.equal(r.headers['content-encoding'], 'gzip');
  assert.equal(r.headers.vary, 'Accept-Encoding');
  assert.equal(r.headers['content-length'], undefined);
  assert.equal(zlib.gunzipSync(r.body).toString(), big);
  const plain = await serve(json);
  assert.equal(plain.headers['content-encoding'], undefined);
  assert.equal(plain.headers.vary, 'Accept-Encoding');
  assert.equal(plain.body.toString(), big);
  const head = await serve(json, { 'accept-encoding': 'gzip' }, 'HEAD');
  assert.equal(head.headers['content-encoding'], undefined);
});

test('small, incompressible, no-transform and already encoded answers pass as they are', async () => {
  const small = await serve((res) => {
    res.setHeader('content-type', 'text/plain');
    res.end('short');
  }, { 'accept-encoding': 'gzip' });
  assert.equal(small.headers['content-encoding'], undefined);
  assert.equal(small.headers.vary, 'Accept-Encoding');
  const binary = await serve((res) => {
    res.setHeader('content-type', 'application/octet-stream');
    res.end(Buffer.alloc(4096));
  }, { 'accept-encoding': 'gzip' });
  assert.equal(binary.headers['content-encoding'], undefined);
  assert.equal(binary.headers.vary, undefined);
  const noTransform = await serve((res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, no-transform' });
    res.end('y'.repeat(4096));
  }, { 'accept-encoding': 'gzip' });
  assert.equal(noTransform.headers['content-encoding'], undefined);
  const encoded = await serve((res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'br' });
    res.end('z'.repeat(4096));
  }, { 'accept-encoding': 'gzip' });
  assert.equal(encoded.headers['content-encoding'], 'br');
});

test('a streamed answer is compressed chunk by chunk, and flush() pushes out what zlib holds', async () => {
  const r = await serve((res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'set-cookie': ['a=1', 'b=2'] });
    res.write('data: one\n\n');
    /** @type {any} */ (res).flush();
    res.end('data: two\n\n');
  }, { 'accept-encoding': 'gzip' });
  assert.equal(r.headers['content-encoding'], 'gzip');
  assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2']);
  assert.equal(zlib.gunzipSync(r.body).toString(), 'data: one\n\ndata: two\n\n');
});

test('an App Router stream reaches a gzip client chunk by chunk', async () => {
  const { writeWebResponse } = await import('../src/app.js');
  /** @type {() => void} */
  let clientSawFirst = () => {};
  const sawFirst = new Promise((r) => (clientSawFirst = () => r(true)));
  /** @type {Promise<boolean>} */
  let inTime = Promise.resolve(false);
  const server = http.createServer((req, res) => {
    compressResponse(req, res);
    let n = 0;
    const body = new ReadableStream({
      async pull(c) {
        if (n++ === 0) return c.enqueue(new TextEncoder().encode('part 0 '.repeat(200)));
        // The rest comes only once the client has seen the first part (or after 3 s).
        inTime = Promise.race([sawFirst, new Promise((r) => setTimeout(() => r(false), 3000))]);
        await inTime;
        c.enqueue(new TextEncoder().encode('late'));
        c.close();
      },
    });
    void writeWebResponse(new Response(body, { headers: { 'content-type': 'text/plain' } }), res, false);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  try {
    const text = await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, headers: { 'accept-encoding': 'gzip' } }, (res) => {
        assert.equal(res.headers['content-encoding'], 'gzip');
        const gunzip = zlib.createGunzip();
        const parts = [];
        res.pipe(gunzip);
        gunzip.on('data', (d) => {
          parts.push(d);
          clientSawFirst();
        });
        gunzip.on('end', () => resolve(Buffer.concat(parts).toString()));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(await inTime, true, 'the first part reached the client before the stream ended');
    assert.equal(text, 'part 0 '.repeat(200) + 'late');
  } finally {
    server.close();
  }
});
