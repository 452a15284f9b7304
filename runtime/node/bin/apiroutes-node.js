#!/usr/bin/env node
// apiroutes-node <handler-file>          serve one route file on $HOST:$PORT
// apiroutes-node build <src> --out <dir>  compile handlers (TypeScript too) ahead of time
import { main } from '../src/cli.js';

main(process.argv.slice(2)).catch((err) => {
  console.error(`[apiroutes-node] ${err instanceof Error ? err.message : err}`);
  process.exit(1);
});
