// Library entry: the pieces of the runtime, for embedding and tests.
export { parseBody, DEFAULT_SIZE_LIMIT } from './body.js';
export { parseBytes } from './bytes.js';
export { parseCookies } from './cookies.js';
export { parseQuery, parseParams, mergeQuery, PARAMS_HEADER } from './query.js';
export { sendData, redirect, decorateResponse } from './response.js';
export * from './preview.js';
export { runPagesHandler } from './pages.js';
export { runAppRoute, implementMethods } from './app.js';
export { loadHandler, classifyModule } from './load.js';
export { createRuntimeServer } from './server.js';
export { build } from './build.js';
