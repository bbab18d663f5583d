/**
 * The browser build (vite.browser.config.ts, `npm run build:browser`): the engine as one ES module with no Node
 * module in it, its WGSL built in. Built here into a temporary folder, then run by test/helpers/browser-vm.mjs
 * in a realm with a browser's globals only (no process, no require; fetch fails), navigator.gpu being Dawn's
 * GPU object: a small network's training step (conv2d, batch norm, upsampling, leakyRelu, convTranspose2d,
 * sigmoid, MSE, backward, Adam) on the CPU backend and, given an adapter, on WebGPU, which must agree.
 * (No real browser runs here: this is the closest stand-in the machine allows.)
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { build } from 'vite';
import { beforeAll, describe, expect, it } from 'vitest';
import { SHADER_NAMES } from '../src/engine/webgpu/shaders.js';
import { haveGpu } from './webgpu/gpu.js';

const run = promisify(execFile);
const GPU = await haveGpu();

interface VmResult {
  ok: boolean;
  process: string;
  require: string;
  maxDiff: number | null;
  cpu: { describe: string; loss: number; gradNorm: number };
  webgpu: { describe: string; loss: number } | null;
}

let bundle = '';

async function runInBrowserRealm(gpu: boolean): Promise<VmResult> {
  const { stdout } = await run(process.execPath, ['--experimental-vm-modules', 'test/helpers/browser-vm.mjs', bundle, ...(gpu ? [] : ['--no-gpu'])], { maxBuffer: 1 << 24 });
  const line = stdout.split('\n').find((l) => l.startsWith('{'));
  if (!line) throw new Error(`browser-vm printed no result:\n${stdout}`);
  return JSON.parse(line) as VmResult;
}

beforeAll(async () => {
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-browser-'));
  await build({ configFile: 'vite.browser.config.ts', logLevel: 'silent', build: { outDir, emptyOutDir: true, sourcemap: false } });
  bundle = path.join(outDir, 'skipgrad.js');
});

describe('the browser bundle', () => {
  it('is one file with every WGSL kernel built in', () => {
    expect(fs.readdirSync(path.dirname(bundle))).toEqual(['skipgrad.js']);
    const src = fs.readFileSync(bundle, 'utf8');
    for (const name of SHADER_NAMES) expect(src, name).toContain(`shaders/${name}.wgsl`);
    expect(src).toContain('fn main('); // WGSL text, not a URL to fetch
  });

  it('loads and trains on the CPU backend in a realm with no Node globals', async () => {
    const r = await runInBrowserRealm(false);
    expect(r).toMatchObject({ ok: true, process: 'undefined', require: 'undefined', webgpu: null });
    expect(r.cpu.describe).toBe('cpu: unknown x 2, skipgrad-browser-vm'); // host.browser.ts, not Node's host
    expect(r.cpu.loss).toBeGreaterThan(0);
    expect(r.cpu.gradNorm).toBeGreaterThan(0);
  });

  it('runs the example page (examples/browser/index.html): its loss falls', async () => {
    const { stdout } = await run(process.execPath, ['--experimental-vm-modules', 'test/helpers/browser-vm.mjs', bundle, '--no-gpu', '--page', 'examples/browser/index.html'],
      { maxBuffer: 1 << 24 });
    const r = JSON.parse(stdout.split('\n').find((l) => l.startsWith('{'))!) as { ok: boolean; text: Record<string, string> };
    expect(r.text.backend).toMatch(/^backend: cpu: /);
    const losses = [...r.text.log.matchAll(/loss (\d+\.\d+)/g)].map((m) => Number(m[1]));
    expect(losses.length).toBe(11); // steps 1, 20, 40, ..., 200
    expect(losses[10]).toBeLessThan(losses[0] / 2);
    expect(r.text.log).toMatch(/200 steps in /);
  });

  it.skipIf(!GPU)('trains on WebGPU through navigator.gpu, agreeing with its CPU backend', async () => {
    const r = await runInBrowserRealm(true);
    expect(r.webgpu?.describe).toMatch(/^webgpu: /);
    expect(Math.abs(r.webgpu!.loss - r.cpu.loss)).toBeLessThan(1e-6);
    expect(r.maxDiff).toBeLessThan(1e-5);
  });
});
