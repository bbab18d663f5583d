/**
 * The browser build (vite.browser.config.ts, `npm run build:browser`) in a real browser: headless Chromium
 * (Debian's, driven by playwright-core; scripts/provision-chromium.sh installs it) loads pages from a localhost
 * server that serves the bundle built here, examples/browser/ and test/browser/:
 *   - a check page (test/browser/check.js): a small network's training step (conv2d, batch norm, upsampling,
 *     leakyRelu, convTranspose2d, sigmoid, MSE, backward, Adam) on the CPU backend and on WebGPU through
 *     navigator.gpu (Chromium's SwiftShader adapter), which must agree; the WGSL comes from the bundle, never
 *     fetched;
 *   - examples/browser/index.html, whose loss must fall;
 *   - the browser bench (bench/browser/, its script built here too; tfjs served from node_modules): skipgrad and
 *     tfjs-webgpu each train AESc from the same weights, and their first losses must agree.
 * With CI=true a missing Chromium is a failure; elsewhere these tests skip, saying why.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SHADER_NAMES } from '../src/engine/webgpu/shaders.js';

const CHROMIUM = process.env.SKIPGRAD_CHROMIUM ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = fs.existsSync(CHROMIUM);
if (!HAVE_CHROMIUM) {
  const hint = `no Chromium at ${CHROMIUM} (run: bash scripts/provision-chromium.sh, or set SKIPGRAD_CHROMIUM)`;
  if (process.env.CI === 'true') throw new Error(`CI=true but ${hint}`);
  console.warn(`browser tests skipped: ${hint}`);
}
// Flags for a headless Chromium on a machine with no network and no GPU (WebGPU then runs on SwiftShader).
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-webgpu-adapter=swiftshader'];

const CHECK_PAGE = `<!doctype html><meta charset="utf-8"><title>check</title>
<script type="module">
  import * as sg from '/dist/browser/skipgrad.js';
  import { check } from '/test/browser/check.js';
  check(sg).then((r) => { window.result = r; }, (e) => { window.result = { error: String(e && e.stack || e) }; });
</script>`;

let bundleDir = '';
let benchDir = '';
let server: http.Server;
let base = '';
let browser: Browser | null = null;
const requested: string[] = [];

/** Serves the bundle built here at /dist/browser/, the check page, and files of examples/browser and test/browser. */
function serve(): Promise<void> {
  const types: Record<string, string> = { '.js': 'text/javascript', '.html': 'text/html', '.map': 'application/json' };
  server = http.createServer((req, res) => {
    const url = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requested.push(url);
    let file: string | null = null;
    if (url === '/check.html') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(CHECK_PAGE);
      return;
    }
    if (url.startsWith('/dist/browser/')) file = path.join(bundleDir, url.slice('/dist/browser/'.length));
    else if (url.startsWith('/dist/bench-browser/')) file = path.join(benchDir, url.slice('/dist/bench-browser/'.length));
    else if (['/examples/browser/', '/test/browser/', '/bench/browser/', '/node_modules/@tensorflow/'].some((p) => url.startsWith(p)) && !url.includes('..')) {
      file = path.join(process.cwd(), url.endsWith('/') ? `${url}index.html` : url);
    }
    if (!file || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' });
    res.end(fs.readFileSync(file));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    resolve();
  }));
}

beforeAll(async () => {
  bundleDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-browser-'));
  await build({ configFile: 'vite.browser.config.ts', logLevel: 'silent', build: { outDir: bundleDir, emptyOutDir: true, sourcemap: false } });
  benchDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-bench-browser-'));
  await build({ configFile: 'bench/browser/vite.config.ts', logLevel: 'silent', build: { outDir: benchDir, emptyOutDir: true, sourcemap: false } });
  await serve();
  if (HAVE_CHROMIUM) browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  server?.close();
});

/** Opens a page, waits until `done` holds in it, and returns `value` evaluated there. */
async function inPage<T>(url: string, done: string, value: string, timeoutMs = 90_000): Promise<{ value: T; console: string[] }> {
  const page = await browser!.newPage();
  const messages: string[] = [];
  page.on('console', (m) => messages.push(m.text()));
  page.on('pageerror', (e) => messages.push(`pageerror: ${e.message}`));
  try {
    await page.goto(`${base}${url}`);
    await page.waitForFunction(done, undefined, { timeout: timeoutMs }).catch((e: Error) => {
      throw new Error(`${url}: ${e.message}\npage console:\n${messages.join('\n')}`);
    });
    return { value: (await page.evaluate(value)) as T, console: messages };
  } finally {
    await page.close();
  }
}

describe('the browser bundle', () => {
  it('is one file with every WGSL kernel built in', () => {
    expect(fs.readdirSync(bundleDir)).toEqual(['skipgrad.js']);
    const src = fs.readFileSync(path.join(bundleDir, 'skipgrad.js'), 'utf8');
    for (const name of SHADER_NAMES) expect(src, name).toContain(`shaders/${name}.wgsl`);
    expect(src).toContain('fn main('); // WGSL text, not a URL to fetch
  });
});

describe.skipIf(!HAVE_CHROMIUM)('in headless Chromium', () => {
  interface Check {
    error?: string;
    process: string;
    cpu: { describe: string; loss: number; gradNorm: number };
    webgpu: { describe: string; loss: number } | null;
    maxDiff: number | null;
    edges?: { cpu: Record<string, string[]>; webgpu: Record<string, string[]> };
  }

  it('trains on the CPU backend and on WebGPU (navigator.gpu), which agree; no shader is fetched', async () => {
    requested.length = 0;
    const { value: r } = await inPage<Check>('/check.html', 'window.result !== undefined', 'window.result');
    expect(r.error).toBeUndefined();
    expect(r.process).toBe('undefined');
    expect(r.cpu.describe).toMatch(/^cpu: unknown x \d+, Mozilla\/5\.0 .*Chrome\//); // host.browser.ts
    expect(r.cpu.loss).toBeGreaterThan(0);
    expect(r.cpu.gradNorm).toBeGreaterThan(0);
    expect(r.webgpu?.describe).toMatch(/^webgpu: /);
    expect(Math.abs(r.webgpu!.loss - r.cpu.loss)).toBeLessThan(1e-6);
    expect(r.maxDiff).toBeLessThan(1e-5);
    // exp, log and sqrt outside their domain, and tanh and sigmoid of NaN (made of exp): WGSL leaves those undefined
    // (SwiftShader gives finite values); the kernels return what the CPU's Math gives. (Finite values compared as
    // strings with 6 digits of agreement.)
    const edges = r.edges!;
    for (const op of ['exp', 'log', 'sqrt', 'tanh', 'sigmoid']) {
      expect(edges.webgpu[op].map((v) => (Number.isFinite(Number(v)) ? Number(v).toPrecision(6) : v)), op)
        .toEqual(edges.cpu[op].map((v) => (Number.isFinite(Number(v)) ? Number(v).toPrecision(6) : v)));
    }
    expect(requested.filter((u) => u.endsWith('.wgsl'))).toEqual([]);
    expect(requested).toContain('/dist/browser/skipgrad.js');
  });

  it('runs the example page (examples/browser/index.html): its loss falls', async () => {
    const { value: text } = await inPage<{ backend: string; log: string }>('/examples/browser/', "document.getElementById('log').textContent.includes('200 steps in')",
      "({ backend: document.getElementById('backend').textContent, log: document.getElementById('log').textContent })");
    expect(text.backend).toMatch(/^backend: (cpu|webgpu): /);
    const losses = [...text.log.matchAll(/loss (\d+\.\d+)/g)].map((m) => Number(m[1]));
    expect(losses.length).toBe(11); // steps 1, 20, 40, ..., 200
    expect(losses[10]).toBeLessThan(losses[0] / 2);
  });

  it('runs the browser bench: skipgrad and tfjs-webgpu train AESc from the same weights (first losses agree)', async () => {
    interface Bench { error?: string; adapter: string; rows: Array<{ model: string; impl: string; stepMs: number; firstLoss: number; ratio?: number }> }
    // SwiftShader compiles and runs both sides' kernels on the CPU: about 35 s here, so a roomier limit.
    const { value: r } = await inPage<Bench>('/bench/browser/?size=64&batch=2&steps=0&models=AESc', 'window.benchResult !== undefined', 'window.benchResult', 200_000);
    expect(r.error).toBeUndefined();
    expect(r.adapter).toMatch(/^webgpu: /);
    expect(r.rows.map((row) => row.impl)).toEqual(['skipgrad-webgpu', 'tfjs-webgpu']);
    const [ours, theirs] = r.rows;
    expect(ours.stepMs).toBeGreaterThan(0);
    expect(theirs.ratio).toBeCloseTo(theirs.stepMs / ours.stepMs, 10);
    expect(Math.abs(theirs.firstLoss - ours.firstLoss) / ours.firstLoss).toBeLessThan(1e-4);
  }, 240_000);

  it('the browser bench reports a query parameter it does not know, or a bad value, on the page instead of running', async () => {
    for (const [query, message] of [['?model=AE', "?model=: unknown parameter (expected size, batch, steps, models)"], ['?size=big', "?size= expects an integer >= 1, got 'big'"]]) {
      const { value: r } = await inPage<{ error?: string }>(`/bench/browser/${query}`, 'window.benchResult !== undefined', 'window.benchResult');
      expect(r.error).toContain(message);
    }
  });
});
