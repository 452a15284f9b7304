// `req.cookies` as Next.js parses the Cookie header: `; `-separated pairs, first one wins,
// surrounding quotes dropped, values percent-decoded when that succeeds.

/**
 * @param {string | string[] | undefined} header
 * @returns {Record<string, string>}
 */
export function parseCookies(header) {
  if (!header) return {};
  const text = Array.isArray(header) ? header.join('; ') : header;
  /** @type {Record<string, string>} */
  const cookies = {};
  for (const pair of text.split(/; */)) {
    const eq = pair.indexOf('=');
    if (eq < 0) continue;
    const key = pair.slice(0, eq).trim();
    let value = pair.slice(eq + 1).trim();
    if (value[0] === '"') value = value.slice(1, -1);
    // Like Next, a name already present on the object (even an inherited one such as
    // `constructor`) is not overwritten.
    if (cookies[key] == undefined) cookies[key] = tryDecode(value);
  }
  return cookies;
}

/**
 * @param {string} value
 * @returns {string}
 */
function tryDecode(value) {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
