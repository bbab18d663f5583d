// Which files under node_modules the built bench path loads at run time (used by bench/gpu/pack.sh).
//
//   node bench/gpu/deps.mjs <builtDir> <repoRoot> [entry.js ...]
//
// 1. Static walk of the built ESM code: from the entries (default: every <builtDir>/bench/*.js) through
//    relative imports (static and dynamic), collecting the bare specifiers (packages) they import, statically,
//    with import('...'), require('...') or require.resolve('...'). Node built-ins are left out, and so is tsx
//    (SKIPGRAD_DEPS_EXCLUDE), which only the TypeScript-source branches load.
// 2. For each package imported as code: a child node process imports it with hooks that log every file
//    resolved (ESM resolve hook and the CommonJS resolver), so the list holds exactly what loading it
//    loads, its own dependencies included, and each owning package.json (needed for resolution).
//    A package named only through require.resolve('pkg/...') is data (fonts, say): all of it is kept.
// 3. Extras that are read at run time rather than imported: @tensorflow/tfjs-backend-wasm's .wasm files.
//
// Prints JSON: { entries, packages, dataPackages, files: [paths relative to <repoRoot>/node_modules] }.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [builtDir, repoRoot, ...explicit] = process.argv.slice(2);
if (!builtDir || !repoRoot) {
  console.error('usage: node bench/gpu/deps.mjs <builtDir> <repoRoot> [entry.js ...]');
  process.exit(2);
}
const nodeModules = path.resolve(repoRoot, 'node_modules');
const builtins = new Set(builtinModules);
// Imported only when the benches run from their TypeScript sources (the `.ts` branches of bench/ops.ts and
// bench/tfjs-run.ts, written inside template strings the scan cannot tell from code): never from dist/.
const devOnly = new Set((process.env.SKIPGRAD_DEPS_EXCLUDE ?? 'tsx').split(',').filter(Boolean));

const entries = explicit.length
  ? explicit.map((e) => path.resolve(e))
  : fs.readdirSync(path.join(builtDir, 'bench')).filter((f) => f.endsWith('.js')).map((f) => path.resolve(builtDir, 'bench', f));

const specRe = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*)(['"])([^'"\n]+)\1/g;
const resolveRe = /\brequire\.resolve\s*\(\s*(['"])([^'"\n]+)\1/g;

function packageName(spec) {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

const seen = new Set();
const codePackages = new Map(); // package -> Set of specifiers
const dataPackages = new Set();
const stack = [...entries];
while (stack.length) {
  const file = stack.pop();
  if (seen.has(file)) continue;
  seen.add(file);
  const src = fs.readFileSync(file, 'utf8');
  for (const m of src.matchAll(resolveRe)) {
    if (!m[2].startsWith('.') && !m[2].startsWith('node:') && !builtins.has(m[2])) dataPackages.add(packageName(m[2]));
  }
  for (const m of src.matchAll(specRe)) {
    const spec = m[2];
    if (spec.startsWith('.')) {
      const target = path.resolve(path.dirname(file), spec);
      if (fs.existsSync(target)) stack.push(target);
      else console.error(`deps: ${path.relative(builtDir, file)} imports missing ${spec}`);
    } else if (!spec.startsWith('node:') && !builtins.has(spec) && !builtins.has(spec.split('/')[0])) {
      const name = packageName(spec);
      if (devOnly.has(name)) continue;
      if (!codePackages.has(name)) codePackages.set(name, new Set());
      codePackages.get(name).add(spec);
    }
  }
}

// The tracer: an ESM resolve hook (runs on the loader thread) and a patched CommonJS resolver, both
// appending resolved absolute paths to $SKIPGRAD_DEPS_LOG.
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'skipgrad-deps-'));
const log = path.join(tmp, 'resolved.log');
const cjsHook = path.join(tmp, 'hook.cjs');
const esmHooks = path.join(tmp, 'hooks.mjs');
const esmRegister = path.join(tmp, 'register.mjs');
fs.writeFileSync(cjsHook, `
const fs = require('node:fs');
const Module = require('node:module');
const orig = Module._resolveFilename;
Module._resolveFilename = function (...args) {
  const r = orig.apply(this, args);
  if (typeof r === 'string' && r.startsWith('/')) fs.appendFileSync(process.env.SKIPGRAD_DEPS_LOG, r + '\\n');
  return r;
};
`);
fs.writeFileSync(esmHooks, `
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (r.url.startsWith('file:')) fs.appendFileSync(process.env.SKIPGRAD_DEPS_LOG, fileURLToPath(r.url) + '\\n');
  return r;
}
`);
fs.writeFileSync(esmRegister, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(esmHooks).href)});\n`);

// Import from a module inside the built tree, so resolution starts where the bench's own imports do.
const importer = path.join(path.resolve(builtDir), 'bench', `.deps-probe-${process.pid}.mjs`);
const failures = [];
for (const [name, specs] of codePackages) {
  for (const spec of specs) {
    fs.writeFileSync(importer, `
try { await import(${JSON.stringify(spec)}); }
catch (e) { console.error('import ${spec}: ' + (e && e.message)); process.exitCode = 3; }
`);
    const r = spawnSync(process.execPath, ['--require', cjsHook, '--import', pathToFileURL(esmRegister).href, importer], {
      env: { ...process.env, SKIPGRAD_DEPS_LOG: log }, encoding: 'utf8', timeout: 120_000,
    });
    if (r.status !== 0) failures.push(`${spec} (${name}): exit ${r.status}: ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}`);
  }
}
fs.rmSync(importer, { force: true });

const files = new Set();
const owners = new Set();
const resolved = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter(Boolean) : [];
for (const f of resolved) {
  const rel = path.relative(nodeModules, f);
  if (rel.startsWith('..') || path.isAbsolute(rel)) continue;
  files.add(rel);
  // The package that owns it: the last node_modules/<name> or node_modules/@scope/<name> in the path.
  const parts = rel.split(path.sep);
  const start = parts.lastIndexOf('node_modules') + 1;
  const owner = parts.slice(0, start + (parts[start].startsWith('@') ? 2 : 1)).join('/');
  owners.add(owner);
}
for (const owner of owners) if (fs.existsSync(path.join(nodeModules, owner, 'package.json'))) files.add(path.join(owner, 'package.json'));

function walk(dir, out) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.isFile()) out.push(p);
  }
  return out;
}
for (const name of dataPackages) {
  const dir = path.join(nodeModules, name);
  if (!fs.existsSync(dir)) { failures.push(`data package ${name} is not installed`); continue; }
  for (const f of walk(dir, [])) files.add(path.relative(nodeModules, f));
}
// Read at run time (fetch/readFile), not imported.
const wasmDir = path.join(nodeModules, '@tensorflow', 'tfjs-backend-wasm', 'dist');
if (codePackages.has('@tensorflow/tfjs-backend-wasm') && fs.existsSync(wasmDir)) {
  for (const f of fs.readdirSync(wasmDir)) if (f.endsWith('.wasm')) files.add(path.join('@tensorflow', 'tfjs-backend-wasm', 'dist', f));
}
fs.rmSync(tmp, { recursive: true, force: true });

const result = {
  entries: entries.map((e) => path.relative(builtDir, e)),
  excluded: [...devOnly],
  packages: [...codePackages.keys()].sort(),
  dataPackages: [...dataPackages].sort(),
  owners: [...owners].sort(),
  failures,
  files: [...files].sort(),
};
process.stdout.write(JSON.stringify(result, null, 2) + '\n');
if (failures.length) {
  console.error(`deps: ${failures.length} import(s) failed:\n  ${failures.join('\n  ')}`);
  process.exit(1);
}
