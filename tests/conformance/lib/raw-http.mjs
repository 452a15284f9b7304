// One HTTP/1.1 request over a plain socket, with the request target sent byte for byte:
// no client normalizes the path (WHATWG URL parsing would fold `..`, `%2e`, `\` and more).

import net from 'node:net';

/**
 * @typedef {{ status: number, headers: Record<string, string>, body: string, raw: string }} RawResponse
 */

/**
 * @param {{ port: number, method: string, target: string, headers?: Record<string, string>, body?: string, timeoutMs?: number }} req
 * @returns {Promise<RawResponse>}
 */
export function rawRequest({ port, method, target, headers = {}, body = '', timeoutMs = 10000 }) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    /** @type {Buffer[]} */
    const chunks = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`timeout: ${method} ${target}`));
    }, timeoutMs);
    sock.on('connect', () => {
      let head = `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n`;
      for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
      if (body || ['POST', 'PUT', 'PATCH'].includes(method)) head += `Content-Length: ${Buffer.byteLength(body)}\r\n`;
      sock.write(`${head}\r\n${body}`, 'latin1');
    });
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      try {
        resolve(parse(Buffer.concat(chunks), method));
      } catch (e) {
        reject(e);
      }
    });
  });
}

/**
 * @param {Buffer} buf
 * @param {string} method
 * @returns {RawResponse}
 */
function parse(buf, method) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no response head in ${JSON.stringify(buf.toString('latin1').slice(0, 200))}`);
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] || '')?.[1]);
  if (!status) throw new Error(`bad status line ${JSON.stringify(lines[0])}`);
  /** @type {Record<string, string>} */
  const headers = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i < 0) continue;
    const k = line.slice(0, i).trim().toLowerCase();
    const v = line.slice(i + 1).trim();
    headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
  }
  let rest = buf.subarray(end + 4);
  if (method === 'HEAD' || status === 204 || status === 304) rest = Buffer.alloc(0);
  else if (/chunked/i.test(headers['transfer-encoding'] || '')) rest = dechunk(rest);
  return { status, headers, body: rest.toString('utf8'), raw: lines[0] };
}

/** @param {Buffer} buf */
function dechunk(buf) {
  /** @type {Buffer[]} */
  const out = [];
  let i = 0;
  for (let guard = 0; guard < 100000 && i < buf.length; guard++) {
    const eol = buf.indexOf('\r\n', i);
    if (eol < 0) break;
    const size = parseInt(buf.subarray(i, eol).toString('latin1'), 16);
    if (!size) break;
    out.push(buf.subarray(eol + 2, eol + 2 + size));
    i = eol + 2 + size + 2;
  }
  return Buffer.concat(out);
}
