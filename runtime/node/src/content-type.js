// Media type parsing with RFC 7231 grammar, as Next's body parser applies it: an invalid
// header is read as `text/plain`.

const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const TYPE = new RegExp(`^${TOKEN}/${TOKEN}$`);
const PARAM = new RegExp(
  `; *(${TOKEN}) *= *("(?:[\\u000b\\u0020\\u0021\\u0023-\\u005b\\u005d-\\u007e\\u0080-\\u00ff]|\\\\[\\u000b\\u0020-\\u00ff])*"|${TOKEN}) *`,
  'g',
);
const QUOTED_PAIR = /\\([\u000b\u0020-\u00ff])/g;

/**
 * @typedef {{ type: string, parameters: Record<string, string> }} MediaType
 */

/**
 * Strict parse; throws `TypeError` on a malformed header.
 * @param {string} header
 * @returns {MediaType}
 */
export function parseMediaTypeStrict(header) {
  let index = header.indexOf(';');
  const type = (index === -1 ? header : header.slice(0, index)).trim();
  if (!TYPE.test(type)) throw new TypeError('invalid media type');
  /** @type {Record<string, string>} */
  const parameters = Object.create(null);
  if (index !== -1) {
    PARAM.lastIndex = index;
    /** @type {RegExpExecArray | null} */
    let match;
    while ((match = PARAM.exec(header))) {
      if (match.index !== index) throw new TypeError('invalid parameter format');
      index += match[0].length;
      let value = match[2];
      if (value[0] === '"') value = value.slice(1, -1).replace(QUOTED_PAIR, '$1');
      parameters[match[1].toLowerCase()] = value;
    }
    if (index !== header.length) throw new TypeError('invalid parameter format');
  }
  return { type: type.toLowerCase(), parameters };
}

/**
 * The request's media type as Next reads it: absent or invalid means `text/plain`.
 * @param {string | undefined} header
 * @returns {MediaType}
 */
export function requestMediaType(header) {
  try {
    return parseMediaTypeStrict(header || 'text/plain');
  } catch {
    return parseMediaTypeStrict('text/plain');
  }
}
