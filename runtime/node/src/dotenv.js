// An app's `.env*` files, loaded as `next start` loads them (@next/env in Next.js 16.4.6,
// with the dotenv 16.3.1 parser and Next's dotenv-expand; MIT / BSD-2-Clause).
//
// Files, highest precedence first (mode `production`, or `test` under NODE_ENV=test):
//   .env.production.local, .env.local (not in test), .env.production, .env
// A variable already in the process environment wins over every file. `$VAR`, `${VAR}`
// and `${VAR:-default}` expand (also in single quotes, as in Next); `\$` is a literal `$`.

import fs from 'node:fs';
import path from 'node:path';

const LINE =
  /(?:^|^)\s*(?:export\s+)?([\w.-]+)(?:\s*=\s*?|:\s+?)(\s*'(?:\\'|[^'])*'|\s*"(?:\\"|[^"])*"|\s*`(?:\\`|[^`])*`|[^#\r\n]+)?\s*(?:#.*)?(?:$|$)/gm;

/**
 * dotenv's `parse`.
 * @param {string} src
 * @returns {Record<string, string>}
 */
export function parseDotenv(src) {
  /** @type {Record<string, string>} */
  const obj = {};
  const lines = src.replace(/\r\n?/gm, '\n');
  LINE.lastIndex = 0;
  /** @type {RegExpExecArray | null} */
  let match;
  while ((match = LINE.exec(lines)) != null) {
    const key = match[1];
    let value = (match[2] || '').trim();
    const maybeQuote = value[0];
    value = value.replace(/^(['"`])([\s\S]*)\1$/gm, '$2');
    if (maybeQuote === '"') {
      value = value.replace(/\\n/g, '\n');
      value = value.replace(/\\r/g, '\r');
    }
    obj[key] = value;
  }
  return obj;
}

/**
 * @param {string} str
 * @param {RegExp} rgx
 */
function searchLast(str, rgx) {
  const matches = Array.from(str.matchAll(rgx));
  return matches.length > 0 ? /** @type {number} */ (matches.slice(-1)[0].index) : -1;
}

/**
 * @param {string} envValue
 * @param {Record<string, string | undefined>} environment
 * @param {{ parsed: Record<string, string> }} config
 * @returns {string}
 */
function interpolate(envValue, environment, config) {
  const lastUnescapedDollarSignIndex = searchLast(envValue, /(?!(?<=\\))\$/g);
  if (lastUnescapedDollarSignIndex === -1) return envValue;
  const rightMostGroup = envValue.slice(lastUnescapedDollarSignIndex);
  const matchGroup = /((?!(?<=\\))\${?([\w]+)(?::-([^}\\]*))?}?)/;
  const match = rightMostGroup.match(matchGroup);
  if (match != null) {
    const [, group, variableName, defaultValue] = match;
    return interpolate(
      envValue.replace(group, environment[variableName] || defaultValue || config.parsed[variableName] || ''),
      environment,
      config,
    );
  }
  return envValue;
}

/**
 * Next's dotenv-expand: expands `parsed` in place against `env`, then writes every parsed
 * variable into `env` (a variable already in `env` keeps its own, expanded, value).
 * @param {{ parsed: Record<string, string> }} config
 * @param {Record<string, string | undefined>} env
 */
function expand(config, env) {
  for (const key in config.parsed) {
    const value = Object.prototype.hasOwnProperty.call(env, key) ? /** @type {string} */ (env[key]) : config.parsed[key];
    config.parsed[key] = interpolate(value, env, config).replace(/\\\$/g, '$');
  }
  for (const key in config.parsed) env[key] = config.parsed[key];
}

/**
 * Loads `dir`'s env files into `env` (default `process.env`) as `next start` does.
 * A file that fails to parse or expand is reported and skipped, as in Next.
 * @param {string} dir the app directory (where next.config.js would be)
 * `local: false` skips the `.local` files (`apiroutes deploy` ships them only when asked:
 * they hold a developer's own values).
 * @param {{ env?: Record<string, string | undefined>, log?: (line: string) => void, local?: boolean }} [options]
 * @returns {{ loaded: string[], parsed: Record<string, string> }} file names loaded, and the variables they added
 */
export function loadEnvConfig(dir, options = {}) {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line) => console.error(line));
  const mode = env.NODE_ENV === 'test' ? 'test' : 'production';
  const local = options.local ?? true;
  const names = [local && `.env.${mode}.local`, local && mode !== 'test' && '.env.local', `.env.${mode}`, '.env'].filter(
    /** @returns {name is string} */ (name) => Boolean(name),
  );
  /** @type {{ name: string, contents: string }[]} */
  const files = [];
  for (const name of names) {
    const file = path.join(dir, name);
    try {
      const stat = fs.statSync(file);
      if (!stat.isFile() && !stat.isFIFO()) continue;
      files.push({ name, contents: fs.readFileSync(file, 'utf8') });
    } catch (err) {
      if (/** @type {{ code?: string }} */ (err).code !== 'ENOENT') log(`Failed to load env from ${name}: ${err}`);
    }
  }
  /** @type {Record<string, string>} */
  const parsed = {};
  if (files.length === 0) return { loaded: [], parsed };
  const initial = { ...env };
  env.__NEXT_PROCESSED_ENV = 'true';
  for (const { name, contents } of files) {
    try {
      const result = { parsed: parseDotenv(contents) };
      expand(result, env);
      for (const key of Object.keys(result.parsed)) {
        if (parsed[key] === undefined && initial[key] === undefined) parsed[key] = result.parsed[key];
      }
    } catch (err) {
      log(`Failed to load env from ${path.join(dir, name)}: ${err}`);
    }
  }
  Object.assign(env, parsed);
  return { loaded: files.map((f) => f.name), parsed };
}
