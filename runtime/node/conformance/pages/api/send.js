import { Readable } from 'node:stream';

// res.send()/res.json()/res.status() with every kind of body, chosen by ?kind=.
export default function handler(req, res) {
  const { kind, status } = req.query;
  if (status) res.status(Number(status));
  switch (kind) {
    case 'string': return res.send('plain text body');
    case 'html': res.setHeader('Content-Type', 'text/html; charset=utf-8'); return res.send('<p>hi</p>');
    case 'empty-string': return res.send('');
    case 'object': return res.send({ a: 1, b: [true, null] });
    case 'array': return res.send([1, 'two', { three: 3 }]);
    case 'number': return res.send(42);
    case 'boolean': return res.send(false);
    case 'null': return res.send(null);
    case 'undefined': return res.send(undefined);
    case 'buffer': return res.send(Buffer.from('binary\u0000data'));
    case 'typed-buffer': res.setHeader('Content-Type', 'image/png'); return res.send(Buffer.from([0x89, 0x50, 0x4e, 0x47]));
    case 'stream': return res.send(Readable.from(['chunk one, ', 'chunk two']));
    case 'typed-stream': res.setHeader('Content-Type', 'text/csv'); return res.send(Readable.from(['a,b\n', '1,2\n']));
    case 'json': return res.json({ ok: true, nested: { list: [1, 2, 3] } });
    case 'json-string': return res.json('just a string');
    case 'json-null': return res.json(null);
    case 'json-undefined': return res.json(undefined);
    case 'unicode': return res.send('héllo wörld ✓');
    case 'end': res.statusCode = 202; return res.end('ended by hand');
    case 'write-end': res.write('part 1, '); res.write('part 2'); return res.end();
    case 'writehead': res.writeHead(201, 'Made It', { 'x-made': 'yes' }); return res.end('created');
    default: return res.status(400).json({ error: `unknown kind ${kind}` });
  }
}
