export default async function handler(req, res) {
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  for (let i = 0; i < 3; i++) {
    res.write(`tick ${i}\n`);
    await new Promise((r) => setTimeout(r, 20));
  }
  res.end('done\n');
}
