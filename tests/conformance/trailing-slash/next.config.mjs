// The routing conformance's second app: the same generated route files as ../ (run.mjs
// writes pages/ here), built with next.config `trailingSlash: true`.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** @type {import('next').NextConfig} */
const nextConfig = {
  trailingSlash: true,
  // Resolves `next` from ../node_modules (the conformance project's one install).
  turbopack: { root: path.join(path.dirname(fileURLToPath(import.meta.url)), '..') },
};

export default nextConfig;
