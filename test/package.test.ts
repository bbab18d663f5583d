/**
 * The npm package as a user gets it: built into a scratch folder, packed with `npm pack` (package.json's "files"),
 * unpacked into a scratch project's node_modules next to the production dependencies only (no devDependency can be
 * resolved there), then imported by name and run: a training step on the CPU, the same step on WebGPU (which reads
 * the WGSL from the package's shaders/), and the `skipgrad` command.
 *
 * Not covered here: dist/browser (built and run in Chromium by test/browser.test.ts).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webgpuBackendOrSkip } from './webgpu/gpu.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  name: string; files: string[]; bin: Record<string, string>; exports: Record<string, Record<string, string>>; dependencies: Record<string, string>;
};

const gpu = await webgpuBackendOrSkip("the package's webgpu check");

let scratch = '';
let project = '';
let packed: string[] = [];

/** Runs `node --input-type=module -e code` in the scratch project; returns its stdout. */
function nodeIn(code: string): string {
  return execFileSync(process.execPath, ['--input-type=module', '-e', code], { cwd: project, encoding: 'utf8', env: { ...process.env, NODE_PATH: '' } });
}

beforeAll(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'skipgrad-package-'));
  const stage = path.join(scratch, 'stage');
  fs.mkdirSync(stage);
  // What prepack builds for Node (the browser bundle aside), into the stage rather than the repository's dist/.
  execFileSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', path.join(stage, 'dist')], { cwd: ROOT, stdio: 'pipe' });
  for (const f of ['package.json', 'README.md', 'LICENSE']) fs.copyFileSync(path.join(ROOT, f), path.join(stage, f));
  for (const d of ['shaders', 'bin']) fs.cpSync(path.join(ROOT, d), path.join(stage, d), { recursive: true });
  const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', scratch], { cwd: stage, encoding: 'utf8' });
  const info = (JSON.parse(out) as { filename: string; files: { path: string }[] }[])[0];
  packed = info.files.map((f) => f.path);
  project = path.join(scratch, 'project');
  const modules = path.join(project, 'node_modules');
  fs.mkdirSync(path.join(modules, pkg.name), { recursive: true });
  execFileSync('tar', ['-xzf', path.join(scratch, info.filename), '-C', path.join(modules, pkg.name), '--strip-components=1']);
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'user-project', private: true, type: 'module' }));
  // The production dependencies and theirs, linked from the repository's node_modules.
  const linked = new Set<string>();
  const link = (name: string): void => {
    if (linked.has(name)) return;
    linked.add(name);
    const src = path.join(ROOT, 'node_modules', name);
    const dst = path.join(modules, name);
    fs.mkdirSync(path.dirname(dst), { recursive: true });
    fs.symlinkSync(src, dst, 'dir');
    const deps = (JSON.parse(fs.readFileSync(path.join(src, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> }).dependencies ?? {};
    for (const d of Object.keys(deps)) link(d);
  };
  for (const d of Object.keys(pkg.dependencies)) link(d);
}, 180_000);

afterAll(() => {
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

describe('the npm package', () => {
  it('holds the engine, the command, the shaders and the licence, and no benches or tests', () => {
    expect(packed).toContain('package.json');
    expect(packed).toContain('LICENSE');
    expect(packed).toContain(pkg.exports['.'].default.replace(/^\.\//, ''));
    expect(packed).toContain('dist/src/models/autoencoder.js'); // skipgrad/models
    for (const bin of Object.values(pkg.bin)) expect(packed).toContain(bin.replace(/^\.\//, ''));
    for (const f of fs.readdirSync(path.join(ROOT, 'shaders'))) expect(packed).toContain(`shaders/${f}`);
    const stray = packed.filter((p) => /^(dist\/bench|bench|test|src)\//.test(p) || p.endsWith('.ts') && !p.endsWith('.d.ts'));
    expect(stray).toEqual([]);
  });

  it('imports by name with only its production dependencies and trains a step on the CPU', () => {
    const out = nodeIn(`
      import * as sg from 'skipgrad';
      await sg.useBackend('cpu');
      const x = sg.uniform([2, 1, 8, 8], 0, 1, { rng: new sg.Rng(0) });
      const conv = new sg.Conv2d(1, 3, 3, { padding: 1, rng: new sg.Rng(1) });
      const opt = new sg.Adam(conv.parameters(), { lr: 0.01 });
      const losses = [];
      for (let i = 0; i < 3; i++) {
        const loss = sg.mseLoss(conv.forward(x), sg.zeros([2, 3, 8, 8]));
        loss.backward();
        opt.step();
        sg.zeroGrad(conv.parameters());
        losses.push(await loss.item());
      }
      console.log(JSON.stringify(losses));`);
    const losses = JSON.parse(out.trim().split('\n').pop()!) as number[];
    expect(losses).toHaveLength(3);
    expect(losses[2]).toBeLessThan(losses[0]);
  }, 60_000);

  it("gives the paper's networks (skipgrad/models) and the gradient check, as the README shows them", () => {
    const out = nodeIn(`
      import * as sg from 'skipgrad';
      import { buildAutoencoder } from 'skipgrad/models';
      await sg.useBackend('cpu');
      const net = buildAutoencoder('esann', { skips: true, inputSize: 15, depth: 3, baseChannels: 2, seed: 5, dtype: 'float64' }).train();
      const x = sg.uniform([2, 1, 15, 15], 0, 1, { dtype: 'float64', rng: new sg.Rng(6) });
      const r = sg.gradcheckTensors(() => net.forward(x).output, net.parameters());
      console.log(JSON.stringify({ ok: r.ok, checked: r.checked, params: net.parameterCount() }));`);
    const r = JSON.parse(out.trim().split('\n').pop()!) as { ok: boolean; checked: number; params: number };
    expect(r.ok).toBe(true);
    expect(r.checked).toBe(r.params);
  }, 60_000);

  it.skipIf(!gpu)('runs the WebGPU kernels from the shaders it ships', () => {
    const out = nodeIn(`
      import * as sg from 'skipgrad';
      const be = await sg.useBackend('webgpu');
      const x = sg.uniform([1, 2, 6, 6], -1, 1, { rng: new sg.Rng(0) });
      const w = sg.uniform([3, 2, 3, 3], -1, 1, { rng: new sg.Rng(1) });
      const y = sg.conv2d(x, w, { padding: 1 });
      const gpu = await y.data();
      await sg.useBackend('cpu');
      const want = await sg.conv2d(sg.fromArray(await x.data(), x.shape), sg.fromArray(await w.data(), w.shape), { padding: 1 }).data();
      console.log(JSON.stringify({ backend: be.name, maxDiff: Math.max(...gpu.map((v, i) => Math.abs(v - want[i]))) }));
      process.exit(0);`);
    const r = JSON.parse(out.trim().split('\n').pop()!) as { backend: string; maxDiff: number };
    expect(r.backend).toBe('webgpu');
    expect(r.maxDiff).toBeLessThan(1e-5);
  }, 60_000);

  it('installs the skipgrad command', () => {
    const cli = path.join(project, 'node_modules', pkg.name, pkg.bin.skipgrad);
    const out = execFileSync(process.execPath, [cli, 'help'], { cwd: project, encoding: 'utf8' });
    expect(out).toMatch(/reproduce/);
  }, 60_000);
});
