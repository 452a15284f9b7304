// Request bodies as Next's default API body parser gives them (`req.body`).

import { parseBytes } from './bytes.js';
import { requestMediaType } from './content-type.js';
import { ApiError } from './errors.js';
import querystring from 'node:querystring';

/** Next's default `config.api.bodyParser.sizeLimit`. */
export const DEFAULT_SIZE_LIMIT = '1mb';

/**
 * A decoder for the request charset, or `null` when the charset is unknown.
 * Byte-order marks are dropped, as Next's decoder does.
 * @param {string} charset
 * @returns {((bytes: Buffer) => string) | null}
 */
export function decoderFor(charset) {
  try {
    const decoder = new TextDecoder(charset);
    return (bytes) => decoder.decode(bytes);
  } catch {
    const name = charset.toLowerCase();
    if (Buffer.isEncoding(name)) return (bytes) => bytes.toString(/** @type {BufferEncoding} */ (name));
    return null;
  }
}

/**
 * Reads the whole body, failing with 413 once more than `limit` bytes arrived.
 * @param {import('node:stream').Readable} stream
 * @param {number | null} limit bytes; `null` for none
 * @returns {Promise<Buffer>}
 */
export function readBytes(stream, limit) {
  return new Promise((resolve, reject) => {
    /** @type {Buffer[]} */
    const chunks = [];
    let received = 0;
    const cleanup = () => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('aborted', onAborted);
      stream.off('close', onClose);
    };
    /** @param {Buffer} chunk */
    const onData = (chunk) => {
      received += chunk.length;
      if (limit !== null && received > limit) {
        cleanup();
        stream.pause();
        reject(Object.assign(new Error('request entity too large'), { type: 'entity.too.large' }));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, received));
    };
    /** @param {Error} err */
    const onError = (err) => {
      cleanup();
      reject(err);
    };
    const onAborted = () => onError(Object.assign(new Error('request aborted'), { type: 'request.aborted' }));
    const onClose = () => {
      if (!stream.readableEnded) onAborted();
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('aborted', onAborted);
    stream.on('close', onClose);
  });
}

/**
 * Parses `req.body` by content type: JSON (`{}` when empty), urlencoded forms, else text.
 * Throws `ApiError` 413 `Body exceeded <limit> limit`, 400 `Invalid JSON`, 400 `Invalid body`.
 * @param {import('node:http').IncomingMessage} req
 * @param {string | number} sizeLimit as written in the route's config
 * @returns {Promise<unknown>}
 */
export async function parseBody(req, sizeLimit) {
  const { type, parameters } = requestMediaType(req.headers['content-type']);
  const decode = decoderFor(parameters.charset || 'utf-8');
  /** @type {string} */
  let text;
  try {
    if (!decode) throw new Error('unsupported charset');
    text = decode(await readBytes(req, parseBytes(sizeLimit)));
  } catch (e) {
    if (e instanceof Error && /** @type {{type?: string}} */ (e).type === 'entity.too.large') {
      throw new ApiError(413, `Body exceeded ${sizeLimit} limit`);
    }
    throw new ApiError(400, 'Invalid body');
  }
  if (type === 'application/json' || type === 'application/ld+json') return parseJson(text);
  if (type === 'application/x-www-form-urlencoded') return querystring.decode(text);
  return text;
}

/**
 * @param {string} text
 * @returns {unknown}
 */
function parseJson(text) {
  if (text.length === 0) return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(400, 'Invalid JSON');
  }
}
