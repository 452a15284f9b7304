// The variables of the app's .env files (conformance/.env*) as a handler sees them.
const KEYS = [
  'CONF_ONLY_ENV', 'CONF_ENV_VS_PRODUCTION', 'CONF_PRODUCTION_VS_LOCAL', 'CONF_LOCAL_VS_PRODUCTION_LOCAL',
  'CONF_PROCESS_WINS', 'CONF_EXPANDED', 'CONF_EXPANDED_DEFAULT', 'CONF_ESCAPED_DOLLAR', 'CONF_QUOTED',
  'CONF_SINGLE_QUOTED', 'CONF_MULTILINE', 'CONF_EXPORTED', 'CONF_COMMENTED', 'CONF_EMPTY', 'CONF_SPACES',
  'CONF_FROM_PROCESS_REF', 'CONF_ESCAPES_DOUBLE', 'CONF_ESCAPES_SINGLE',
];

export function probeEnv() {
  const env = process.env;
  /** @type {Record<string, string | null>} */
  const out = {};
  // Read by computed name: Next inlines only NEXT_PUBLIC_* at build time; these are run-time values.
  for (const k of KEYS) out[k] = env[k] ?? null;
  return out;
}
