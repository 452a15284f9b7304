// The runtime's own log lines (not the handler's console output, which passes untouched),
// in the platform's format: with APIROUTES_LOG_FORMAT=json one JSON object per line on
// stdout, with the keys the gateway and the operator write (`timestamp`, `level`, `target`,
// `message`, then the line's own fields); with `text`, "[apiroutes-node] message" on
// stderr. The default is json, except on a terminal.

/** @typedef {'error' | 'warn' | 'info' | 'debug'} Level */

/**
 * @param {NodeJS.ProcessEnv} env
 * @param {boolean} terminal
 * @returns {'json' | 'text'}
 */
export function logFormat(env, terminal) {
  const f = (env.APIROUTES_LOG_FORMAT || '').toLowerCase();
  if (f === 'json' || f === 'text') return f;
  return terminal ? 'text' : 'json';
}

/**
 * One line in `format`.
 * @param {'json' | 'text'} format
 * @param {Level} level
 * @param {string} message
 * @param {Record<string, unknown>} [fields]
 * @param {Date} [now]
 */
export function formatLine(format, level, message, fields = {}, now = new Date()) {
  if (format === 'text') return `[apiroutes-node] ${message}`;
  return JSON.stringify({
    ...fields,
    timestamp: now.toISOString(),
    level: level.toUpperCase(),
    target: 'apiroutes_node',
    message,
  });
}

const format = logFormat(process.env, Boolean(process.stderr.isTTY));

/**
 * Writes one of the runtime's log lines.
 * @param {Level} level
 * @param {string} message
 * @param {Record<string, unknown>} [fields]
 */
export function runtimeLog(level, message, fields) {
  const line = formatLine(format, level, message, fields);
  if (format === 'json') process.stdout.write(`${line}\n`);
  else process.stderr.write(`${line}\n`);
}
