/**
 * `npm run bench:ops`: conv2d forward and gradients at the AESc layer shapes, skipgrad against
 * TensorFlow.js in one run, with warm-up and medians:
 *   cpu:    skipgrad cpu   vs tfjs cpu and tfjs wasm         -> bench/results/ops-cpu.json
 *   webgpu: skipgrad webgpu vs tfjs webgpu on the same Dawn adapter -> bench/results/ops-webgpu.json
 * tfjs runs in worker threads so a slow measurement can be capped (a capped run reports a lower bound).
 * Passes: forward; gradInput = forward + input gradient; gradFull = forward + input and weight gradients
 * (what tf.grads computes). speedup = peer time / skipgrad time.
 *
 *   --backends cpu,webgpu   which comparisons (default: both; webgpu needs an adapter)
 *   --reps N                timed repetitions for skipgrad (default 5; tfjs gets min(N, 3))
 *   --cap S                 seconds after which a tfjs measurement is stopped (default 120)
 *   --quick                 only the second (smaller) shape, 2 repetitions
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import * as sg from '../src/engine/index.js';
import { formatTable } from '../src/engine/audit/trace.js';
import { writeFileAtomic } from '../src/engine/io/atomic.js';
import { type BenchShape, convFlops, nchwInput, oihwWeight, outSize, SHAPES, type TfjsJob, type TfjsPass } from './ops-shapes.js';

interface Measurement {
  impl: string;
  pass: TfjsPass;
  /** Median wall time in ms; for a capped run, the cap (a lower bound). */
  ms: number | null;
  capped?: boolean;
  error?: string;
  gflops?: number;
  checksum?: number;
}

const { values } = parseArgs({
  options: { backends: { type: 'string' }, reps: { type: 'string' }, cap: { type: 'string' }, quick: { type: 'boolean' } },
});
const reps = values.quick ? 2 : Number(values.reps ?? 5);
const capSeconds = Number(values.cap ?? 120);
const wanted = (values.backends ?? 'cpu,webgpu').split(',');
if (!Number.isInteger(reps) || reps < 1) throw new Error(`--reps expects a positive integer, got ${values.reps}`);
if (!(capSeconds > 0)) throw new Error(`--cap expects seconds > 0, got ${values.cap}`);
for (const b of wanted) if (b !== 'cpu' && b !== 'webgpu') throw new Error(`--backends: unknown backend '${b}' (expected cpu and/or webgpu)`);
const seed = 42;

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function timeIt(fn: () => Promise<void>, warmup: number, n: number): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return median(times);
}

async function benchSkipgrad(backend: 'cpu' | 'webgpu', s: BenchShape): Promise<Measurement[]> {
  const be = sg.getBackend(backend);
  const x = sg.fromArray(nchwInput(s, seed), [s.n, s.c, s.h, s.w], { backend: be });
  const w = sg.fromArray(oihwWeight(s, seed), [s.o, s.c, s.k, s.k], { backend: be });
  const [oh, ow] = outSize(s);
  const dy = sg.ones([s.n, s.o, oh, ow], { backend: be });
  const opts = { stride: s.stride, padding: s.pad };
  const done = async (): Promise<void> => {
    await be.sync?.();
  };
  let checksum = 0;
  const impl = `skipgrad-${backend}`;
  const fwd = await timeIt(async () => {
    const y = sg.noGrad(() => sg.conv2d(x, w, opts));
    await done();
    y.dispose();
  }, 1, reps);
  const y0 = sg.noGrad(() => sg.sum(sg.conv2d(x, w, opts)));
  checksum = await y0.item();
  y0.dispose();
  const grad = async (wantWeight: boolean): Promise<void> => {
    x.requiresGrad = true;
    w.requiresGrad = wantWeight;
    sg.scope(() => sg.conv2d(x, w, opts).backward(dy));
    await done();
    sg.zeroGrad([x, w]);
  };
  const gradInput = await timeIt(() => grad(false), 1, reps);
  const full = await timeIt(() => grad(true), 1, reps);
  for (const t of [x, w, dy]) t.dispose();
  return [
    { impl, pass: 'forward', ms: fwd, checksum },
    { impl, pass: 'gradInput', ms: gradInput },
    { impl, pass: 'gradFull', ms: full },
  ];
}

function benchTfjs(backend: TfjsJob['backend'], s: BenchShape, pass: TfjsPass): Promise<Measurement> {
  const here = path.dirname(new URL(import.meta.url).pathname);
  const ts = import.meta.url.endsWith('.ts');
  const job: TfjsJob = { backend, shape: s, pass, warmup: 1, reps: Math.min(reps, 3), seed };
  const worker = new Worker(path.join(here, ts ? 'tfjs-worker.ts' : 'tfjs-worker.js'), {
    workerData: job, ...(ts ? { execArgv: ['--import', 'tsx'] } : {}),
  });
  const impl = `tfjs-${backend}`;
  return new Promise((resolve) => {
    const finish = (m: Measurement): void => {
      clearTimeout(timer);
      void worker.terminate();
      resolve(m);
    };
    const timer = setTimeout(() => finish({ impl, pass, ms: capSeconds * 1000, capped: true }), capSeconds * 1000);
    worker.on('message', (m: { times?: number[]; checksum?: number; error?: string }) => {
      if (m.error !== undefined) finish({ impl, pass, ms: null, error: m.error });
      else if (m.times) finish({ impl, pass, ms: median(m.times), ...(m.checksum ? { checksum: m.checksum } : {}) });
    });
    worker.on('error', (e) => finish({ impl, pass, ms: null, error: e.message }));
  });
}

function fmtMs(m: Measurement | undefined): string {
  if (!m) return '';
  if (m.ms === null) return `n/a (${(m.error ?? '').slice(0, 50)})`;
  return `${m.capped ? '>' : ''}${m.ms >= 1000 ? (m.ms / 1000).toFixed(2) + ' s' : m.ms.toFixed(1) + ' ms'}`;
}

interface ShapeResult { shape: BenchShape; flops: Record<TfjsPass, number>; measurements: Measurement[] }

async function runComparison(backend: 'cpu' | 'webgpu', peers: Array<TfjsJob['backend']>, describe: string): Promise<void> {
  const shapes = values.quick ? SHAPES.slice(1) : SHAPES;
  const results: ShapeResult[] = [];
  for (const s of shapes) {
    const f = convFlops(s);
    const flops: Record<TfjsPass, number> = { forward: f, gradInput: 2 * f, gradFull: 3 * f };
    process.stderr.write(`\n[${backend}] ${s.name}: ${(f / 1e9).toFixed(2)} GFLOP per conv\n  skipgrad ${backend} ...`);
    const measurements = await benchSkipgrad(backend, s);
    for (const peer of peers) {
      for (const pass of ['forward', 'gradInput', 'gradFull'] as const) {
        if (peer === 'cpu' && pass === 'gradInput') continue; // as slow as gradFull on tfjs-cpu; the cap would only repeat itself
        process.stderr.write(`\n  tfjs ${peer} ${pass} (cap ${capSeconds} s) ...`);
        measurements.push(await benchTfjs(peer, s, pass));
      }
    }
    process.stderr.write('\n');
    for (const m of measurements) if (m.ms !== null && !m.capped) m.gflops = flops[m.pass] / (m.ms / 1000) / 1e9;
    results.push({ shape: s, flops, measurements });
  }

  const ours = `skipgrad-${backend}`;
  const rows: string[][] = [];
  for (const r of results) {
    for (const pass of ['forward', 'gradInput', 'gradFull'] as const) {
      const get = (impl: string): Measurement | undefined => r.measurements.find((m) => m.impl === impl && m.pass === pass);
      const me = get(ours)!;
      const row = [r.shape.name, pass, fmtMs(me), me.gflops?.toFixed(2) ?? ''];
      for (const peer of peers) {
        const p = get(`tfjs-${peer}`);
        row.push(fmtMs(p), p && p.ms !== null && me.ms !== null ? `${p.capped ? '>' : ''}${(p.ms / me.ms).toFixed(1)}x` : '');
      }
      rows.push(row);
    }
  }
  const head = ['shape', 'pass', `skipgrad ${backend}`, 'GFLOP/s', ...peers.flatMap((p) => [`tfjs ${p}`, 'speedup'])];
  const table = formatTable(head, rows);
  const parity = results.map((r) => {
    const a = r.measurements.find((m) => m.impl === ours && m.pass === 'forward')?.checksum;
    const b = r.measurements.find((m) => m.impl === `tfjs-${peers[0]}` && m.pass === 'forward')?.checksum;
    return { shape: r.shape.name, skipgradSum: a, tfjsSum: b, relDiff: a !== undefined && b !== undefined ? Math.abs(a - b) / Math.max(Math.abs(b), 1e-12) : null };
  });
  const report = {
    date: new Date().toISOString(),
    machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.arch()}`, device: describe },
    settings: {
      reps, tfjsReps: Math.min(reps, 3), capSeconds, threads: process.env.SKIPGRAD_THREADS ?? 'all cores',
      note: 'gradInput and gradFull include the forward conv (as tf.grads does); speedup = peer time / skipgrad time; > = peer was stopped at the cap (a lower bound on its time)',
    },
    results, parity, table,
  };
  const out = path.join('bench', 'results', `ops-${backend}.json`);
  writeFileAtomic(out, JSON.stringify(report, null, 2) + '\n');
  process.stdout.write(`\n${describe}\n${table}\n\nforward parity vs tfjs-${peers[0]} (relative difference of the output sums): ${parity.map((p) => p.relDiff?.toExponential(1) ?? 'n/a').join(', ')}\nwrote ${out}\n`);
}

if (wanted.includes('cpu')) await runComparison('cpu', ['cpu', 'wasm'], sg.getBackend('cpu').describe());
if (wanted.includes('webgpu')) {
  const gpu = await sg.webgpuBackend();
  if (gpu) await runComparison('webgpu', ['webgpu'], gpu.describe());
  else process.stdout.write('\nwebgpu: no adapter, comparison skipped (bash scripts/provision-vulkan.sh && source .vk/env.sh for a software one)\n');
}
process.exit(0);
