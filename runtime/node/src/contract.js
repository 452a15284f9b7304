// The request headers the gateway adds for the runtime (CONTRACT.md). They are read once
// and removed before the handler runs: on Next a handler never sees them. Like `next
// start`, the runtime then fills in the `x-forwarded-*` headers a client did not send.

import { PREVIEW_HEADER, PREVIEW_INVALID_HEADER } from './preview.js';
import { PARAMS_HEADER, readParams } from './query.js';

const PREFIX = 'x-apiroute-';

/**
 * @typedef {{
 *   params: import('./query.js').Query,
 *   paramNames: Set<string>,
 *   dynamic: boolean,
 *   preview: string | undefined,
 *   previewInvalid: boolean,
 * }} GatewayContext
 */

/**
 * Reads the gateway's headers and strips every `x-apiroute-*` header from `req.headers` and
 * `req.rawHeaders`.
 * @param {import('node:http').IncomingMessage} req
 * @returns {GatewayContext}
 */
export function takeGatewayHeaders(req) {
  // The route's parameter names come from the params header only; the pattern header just
  // picks a handler (server.js).
  const { params, names } = readParams(req.headers[PARAMS_HEADER]);
  const preview = req.headers[PREVIEW_HEADER];
  const previewInvalid = req.headers[PREVIEW_INVALID_HEADER] === '1' && preview === undefined;
  const paramNames = new Set(names);
  for (const name of Object.keys(req.headers)) if (name.startsWith(PREFIX)) delete req.headers[name];
  const raw = req.rawHeaders;
  if (raw.some((v, i) => i % 2 === 0 && v.toLowerCase().startsWith(PREFIX))) {
    const kept = [];
    for (let i = 0; i < raw.length; i += 2) {
      if (!raw[i].toLowerCase().startsWith(PREFIX)) kept.push(raw[i], raw[i + 1]);
    }
    raw.splice(0, raw.length, ...kept);
  }
  fillForwarded(req);
  return {
    params,
    paramNames,
    dynamic: paramNames.size > 0,
    preview: typeof preview === 'string' ? preview : undefined,
    previewInvalid,
  };
}

/**
 * `x-forwarded-host/-port/-proto/-for` in `req.headers` (not `rawHeaders`), each only when
 * absent, as `next start` does. The port is the public one (from X-Forwarded-Host, else
 * 443/80 by scheme), not the pod's listen port.
 * @param {import('node:http').IncomingMessage} req
 */
export function fillForwarded(req) {
  const h = req.headers;
  const proto = typeof h['x-forwarded-proto'] === 'string' ? h['x-forwarded-proto'] : 'http';
  h['x-forwarded-host'] ??= h.host;
  if (h['x-forwarded-port'] === undefined) {
    const host = String(h['x-forwarded-host'] ?? '');
    const port = /:(\d+)$/.exec(host)?.[1];
    h['x-forwarded-port'] = port ?? (proto.includes('https') ? '443' : '80');
  }
  h['x-forwarded-proto'] ??= proto;
  if (h['x-forwarded-for'] === undefined && req.socket?.remoteAddress) h['x-forwarded-for'] = req.socket.remoteAddress;
}
