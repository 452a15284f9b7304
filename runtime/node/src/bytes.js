// Size strings as Next.js reads them (`sizeLimit: '1mb'`, `responseLimit: '8mb'`):
// 1024-based units, case-insensitive, a bare number is bytes.

const UNITS = /** @type {const} */ ({
  b: 1,
  kb: 1024,
  mb: 1024 ** 2,
  gb: 1024 ** 3,
  tb: 1024 ** 4,
  pb: 1024 ** 5,
});

const SIZE = /^((-|\+)?(\d+(?:\.\d+)?)) *(kb|mb|gb|tb|pb)$/i;

/**
 * Parses `'1mb'`, `'500kb'`, `'100'` or a number into bytes; `null` when unreadable.
 * @param {string | number | undefined | null} value
 * @returns {number | null}
 */
export function parseBytes(value) {
  if (typeof value === 'number' && !Number.isNaN(value)) return value;
  if (typeof value !== 'string') return null;
  const match = SIZE.exec(value);
  /** @type {number} */
  let amount;
  /** @type {keyof typeof UNITS} */
  let unit = 'b';
  if (match) {
    amount = parseFloat(match[1]);
    unit = /** @type {keyof typeof UNITS} */ (match[4].toLowerCase());
  } else {
    amount = parseInt(value, 10);
  }
  if (Number.isNaN(amount)) return null;
  return Math.floor(UNITS[unit] * amount);
}
