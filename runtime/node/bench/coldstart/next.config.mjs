// bench/coldstart.sh: the conventional small `next start` deployment, Next's standalone
// output (.next/standalone/server.js with only the node_modules its trace needs).
/** @type {import('next').NextConfig} */
export default { output: 'standalone' };
