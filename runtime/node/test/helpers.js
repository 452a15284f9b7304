import http from 'node:http';
import net from 'node:net';
import { Readable } from 'node:stream';

/**
 * A fake IncomingMessage: a readable body with headers.
 * @param {string | Buffer} body
 * @param {Record<string, string>} headers
 */
export function fakeRequest(body, headers = {}) {
  const stream = Readable.from(body === '' ? [] : [Buffer.from(body)]);
  return Object.assign(stream, { headers, url: '/', method: 'POST' });
}

/**
 * A TCP port the OS just handed out on 127.0.0.1 and released, for a child process to
 * listen on. Random picks in a fixed range collided with the ports of the test cluster
 * running beside these tests (EADDRINUSE).
 * @returns {Promise<number>}
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * @param {number} port
 * @param {{ method?: string, path?: string, headers?: Record<string, string>, body?: string }} [opts]
 * @returns {Promise<{ status: number, statusText: string, headers: http.IncomingHttpHeaders, body: string, chunks: {at: number, text: string}[] }>}
 */
export function request(port, opts = {}) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const req = http.request(
      { host: '127.0.0.1', port, method: opts.method || 'GET', path: opts.path || '/', headers: opts.headers, agent: false },
      (res) => {
        /** @type {{at: number, text: string}[]} */
        const chunks = [];
        res.setEncoding('utf8');
        res.on('data', (d) => chunks.push({ at: Date.now() - started, text: d }));
        res.on('end', () =>
          resolve({
            status: res.statusCode || 0,
            statusText: res.statusMessage || '',
            headers: res.headers,
            body: chunks.map((c) => c.text).join(''),
            chunks,
          }),
        );
      },
    );
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.end(opts.body);
  });
}

/**
 * Starts a runtime server for a loaded handler on 127.0.0.1:0.
 * @param {import('../src/load.js').LoadedHandler} loaded
 * @param {import('../src/server.js').ServerOptions} [options]
 */
export async function listen(loaded, options) {
  const { createRuntimeServer } = await import('../src/server.js');
  const runtime = createRuntimeServer(loaded, options);
  await new Promise((resolve) => runtime.server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const address = /** @type {import('node:net').AddressInfo} */ (runtime.server.address());
  return { ...runtime, port: address.port, close: () => runtime.drain(1000) };
}
