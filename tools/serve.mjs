// A static file server for 127.0.0.1: the demo page and the browser tests.
// .wasm as application/wasm (streaming compilation needs it); cross-origin isolation headers (COOP/COEP/CORP), so
// threads (SharedArrayBuffer) can come later without changing how the page is served; no caching surprises.
//   node tools/serve.mjs DIR [PORT]     (PORT 0: any free port; the URL is printed)
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.wasm': 'application/wasm', '.png': 'image/png',
  '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.webp': 'image/webp', '.gif': 'image/gif', '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon', '.webmanifest': 'application/manifest+json', '.txt': 'text/plain; charset=utf-8',
  '.rgba': 'application/octet-stream', '.md': 'text/markdown; charset=utf-8',
};

export function serve(dir, port = 0, host = '127.0.0.1') {
  const base = resolve(dir);
  const server = createServer((req, res) => {
    // A request target that is no path (`//`, a malformed %-escape) is the client's error, not the server's end.
    let path;
    try {
      path = decodeURIComponent(new URL(`http://x${req.url}`).pathname);
    } catch {
      return send(res, 400, 'bad request');
    }
    let file = normalize(join(base, path));
    // Within DIR: not a sibling folder whose name starts with DIR's.
    if (file !== base && !file.startsWith(base + sep)) return send(res, 403, 'forbidden');
    let stat;
    try {
      stat = statSync(file);
      if (stat.isDirectory()) {
        file = join(file, 'index.html');
        stat = statSync(file);
      }
    } catch {
      return send(res, 404, 'not found');
    }
    res.writeHead(200, {
      'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
      'Content-Length': stat.size,
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cross-Origin-Resource-Policy': 'same-origin',
      'Cache-Control': 'no-cache',
    });
    if (req.method === 'HEAD') return res.end();
    createReadStream(file).pipe(res);
  });
  return new Promise((ok) => server.listen(port, host, () => ok({ server, url: `http://${host}:${server.address().port}/` })));
}

function send(res, status, text) {
  res.writeHead(status, { 'Content-Type': 'text/plain' });
  res.end(text);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [dir = '.', port = '8000'] = process.argv.slice(2);
  const { url } = await serve(dir, Number(port));
  console.log(`serving ${resolve(dir)} at ${url}`);
}
