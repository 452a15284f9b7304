// bench/coldstart.sh's probe: finds a new pod's IP as soon as the node's CNI hands it
// out, then asks GET http://IP:PORT/PATH until the answer is 200. One process polling
// every few milliseconds, so that the probe takes little CPU from the server under test.
//
//   node poll.mjs --ipam DIR --events FILE --port 8080 --path /api/hello --timeout 120 --out FILE
//   node poll.mjs --ip 10.245.0.9 ...                        (the IP already known)
//
// With --ipam (host-local IPAM's dataDir/<network>: one file per IP in use, holding the
// pod sandbox's container id), the files present at start are ignored: it writes `armed`
// on stdout once it has listed them, and the caller creates the pod after that. The first
// new file names the IP; the caller checks it against the pod's status.podIP afterwards,
// since another pod could have taken an IP at the same moment.
//
// The IP is handed out while the CNI plugin sets the pod's network up. A SYN sent before
// the pod's interface answers ARP leaves the neighbour entry unresolved, and every
// connection waits for the kernel's next ARP probe (about 1 s later), which would hide
// when the server starts listening. So with --events (the output of `ctr events`), TCP
// attempts start only once the sandbox's pause container has started: containerd starts
// it after the CNI plugin returned.
//
// Writes one JSON object to --out: epoch times in milliseconds (microsecond precision):
// {ip, ipAt, netAt, firstConnectAt, okAt, attempts, statuses, body} or {error}.
import { closeSync, openSync, readdirSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    ipam: { type: 'string' },
    events: { type: 'string' },
    ip: { type: 'string' },
    port: { type: 'string', default: '8080' },
    path: { type: 'string', default: '/api/hello' },
    timeout: { type: 'string', default: '120' },
    interval: { type: 'string', default: '5' },
    out: { type: 'string' },
  },
});
if (!opt.out || (!opt.ipam && !opt.ip)) {
  console.error('usage: poll.mjs (--ipam DIR | --ip IP) --out FILE [--port P] [--path P] [--timeout S] [--interval MS]');
  process.exit(2);
}

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const interval = Number(opt.interval);
const deadline = now() + Number(opt.timeout) * 1000;
const isIp = (name) => /^\d+\.\d+\.\d+\.\d+$/.test(name);

function finish(result) {
  writeFileSync(opt.out, `${JSON.stringify(result)}\n`);
  process.exit(result.error ? 1 : 0);
}

/** One GET; resolves {status, body, connectedAt} or {error, connectedAt}. */
function get(ip) {
  return new Promise((resolve) => {
    let connectedAt;
    const req = request({ host: ip, port: Number(opt.port), path: opt.path, agent: false, headers: { connection: 'close' } });
    // Until connected, give up quickly (no ARP answer yet, or a SYN lost while the veth
    // comes up) and try again; once connected, wait for the first answer however slow.
    const connectTimer = setTimeout(() => req.destroy(new Error('connect timeout')), 250);
    req.on('socket', (socket) =>
      socket.on('connect', () => {
        connectedAt = now();
        clearTimeout(connectTimer);
      }),
    );
    req.setTimeout(Math.max(1, deadline - now()), () => req.destroy(new Error('timeout')));
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString(), connectedAt }));
      res.on('error', (e) => resolve({ error: e.code ?? e.message, connectedAt }));
    });
    req.on('error', (e) => {
      clearTimeout(connectTimer);
      resolve({ error: e.code ?? e.message, connectedAt });
    });
    req.end();
  });
}

let ip = opt.ip;
let ipAt = ip ? now() : undefined;
let netAt;
if (!ip) {
  const before = new Set(readdirSync(opt.ipam));
  process.stdout.write('armed\n');
  while (!ip) {
    ip = readdirSync(opt.ipam).find((name) => isIp(name) && !before.has(name));
    if (ip) ipAt = now();
    else if (now() > deadline) finish({ error: 'no new IP in the IPAM directory before the timeout' });
    else await sleep(1);
  }
  if (opt.events) {
    // The file's first line is the sandbox's id (host-local writes it with the IP).
    let sandbox = '';
    while (!sandbox && now() < deadline) {
      sandbox = readFileSync(`${opt.ipam}/${ip}`, 'utf8').split('\n')[0].trim();
      if (!sandbox) await sleep(1);
    }
    const needle = `/tasks/start {"container_id":"${sandbox}"`;
    const fd = openSync(opt.events, 'r');
    const buf = Buffer.alloc(1 << 16);
    let seen = '';
    while (!netAt) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n > 0) {
        seen = (seen + buf.toString('utf8', 0, n)).slice(-(1 << 17));
        if (seen.includes(needle)) netAt = now();
      } else if (now() > deadline) {
        finish({ ip, ipAt, error: `no start of the sandbox ${sandbox} in ${opt.events} before the timeout` });
      } else await sleep(1);
    }
    closeSync(fd);
  }
}

let attempts = 0;
let firstConnectAt;
const statuses = {};
for (;;) {
  attempts += 1;
  const r = await get(ip);
  if (r.connectedAt && firstConnectAt === undefined) firstConnectAt = r.connectedAt;
  const key = r.error ?? String(r.status);
  statuses[key] = (statuses[key] ?? 0) + 1;
  if (r.status === 200) finish({ ip, ipAt, netAt, firstConnectAt, okAt: now(), attempts, statuses, body: r.body });
  if (now() > deadline) finish({ ip, ipAt, attempts, statuses, error: 'no 200 before the timeout' });
  await sleep(interval);
}
