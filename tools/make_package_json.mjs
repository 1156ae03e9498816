// Writes pkg/package.json (version from Cargo.toml, so it lives in one place) and pkg/README.md.
import { readFileSync, writeFileSync, readdirSync } from 'node:fs';

const root = new URL('..', import.meta.url);
const cargo = readFileSync(new URL('Cargo.toml', root), 'utf8');
const field = (name) => cargo.match(new RegExp(`^${name} = "([^"]+)"`, 'm'))[1];
const pkg = new URL('pkg/', root);

const manifest = {
  name: 'wrn-wasm',
  version: field('version'),
  description: field('description'),
  license: field('license'),
  type: 'module',
  exports: {
    '.': {
      node: { types: './node.d.ts', default: './node.js' },
      types: './index.d.ts',
      default: './index.js',
    },
    './worker.js': './worker.js',
    './package.json': './package.json',
  },
  main: './node.js',
  module: './index.js',
  types: './index.d.ts',
  files: readdirSync(pkg, { withFileTypes: true })
    .filter((f) => (f.isDirectory() && f.name === 'threads') || (/\.(js|d\.ts|wasm|onnx|json|md)$/.test(f.name) && f.name !== 'package.json'))
    .map((f) => (f.isDirectory() ? `${f.name}/` : f.name))
    .sort(),
  sideEffects: ['./index.js', './node.js', './worker.js'],
  engines: { node: '>=20' },
  keywords: ['image-classification', 'imagenet', 'wasm', 'webassembly', 'tract', 'wide-resnet'],
};
writeFileSync(new URL('package.json', pkg), JSON.stringify(manifest, null, 2) + '\n');
writeFileSync(new URL('README.md', pkg), readFileSync(new URL('js/README.md', root)));
