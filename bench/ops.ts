/**
 * `npm run bench:ops`: conv2d forward and gradients at the shapes of ops-shapes.ts (an AESc layer and one other),
 * skipgrad against TensorFlow.js in one run, with warm-up and medians:
 *   cpu:    skipgrad cpu   vs tfjs cpu and tfjs wasm         -> bench/results/ops-cpu.json
 *   webgpu: skipgrad webgpu vs tfjs webgpu on the same Dawn adapter -> bench/results/ops-webgpu.json
 * tfjs runs in child processes (bench/model-worker.ts, started by bench/tfjs-run.ts) so a slow measurement can be
 * capped: a run stopped before its first timed repetition reports a lower bound ('>', the time it had run), or, when
 * its warm-up run finished, that run's time ('*').
 * Passes: forward; gradInput = forward + input gradient; gradFull = forward + input and weight gradients
 * (what tf.grads computes). speedup = peer time / skipgrad time.
 *
 * Options: OPS_OPTIONS below (`--help` prints them). runOpsBench() is the same run as a function (bench/bench.ts
 * calls it).
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as sg from '../src/engine/index.js';
import { formatTable } from '../src/engine/audit/trace.js';
import { writeFileAtomic } from '../src/engine/io/atomic.js';
import { benchMain, type BenchOptions, intArg, listArg, parseBenchArgs, secondsArg } from './args.js';
import { machineInfo, markdownTable, shortError, type MachineInfo } from './model.js';
import { benchExtraOps, type ExtraMeasurement } from './ops-extra.js';
import { type BenchShape, convFlops, nchwInput, oihwWeight, outSize, SHAPES, type TfjsJob, type TfjsPass } from './ops-shapes.js';
import { fmtRatio, fmtTime, runTfjsWorker, timeIt, type Basis } from './tfjs-run.js';

interface Measurement {
  impl: string;
  pass: TfjsPass;
  /** Wall time in ms, obtained as `basis` says: the median; the time a run stopped in its first run had taken
   *  ('lower-bound'); the warm-up run's time when only that finished ('warm-up'). */
  ms: number | null;
  basis: Basis;
  error?: string;
  gflops?: number;
  checksum?: number;
}

export interface OpsBenchOptions {
  backends: Array<'cpu' | 'webgpu'>;
  /** Timed repetitions for skipgrad. */
  reps: number;
  /** Timed repetitions for tfjs (default min(reps, 3)). */
  tfjsReps: number;
  capSeconds: number;
  quick: boolean;
  /** Also the ops of bench/ops-extra.ts. */
  extras: boolean;
}

export interface OpsReport {
  kind: 'ops';
  backend: 'cpu' | 'webgpu';
  date: string;
  machine: MachineInfo;
  /** false in the file written after each conv shape (a run stopped from outside keeps the shapes it finished). */
  complete?: boolean;
  settings: Record<string, unknown>;
  results: ShapeResult[];
  extras: ExtraMeasurement[];
  parity: Array<{ shape: string; skipgradSum?: number; tfjsSum?: number; relDiff: number | null }>;
  table: string;
  markdown: string;
}

/** The options of the op bench (bench/bench.ts passes them through too). */
export const OPS_OPTIONS: BenchOptions = {
  backends: { type: 'string', help: 'cpu,webgpu: which comparisons (default both; webgpu needs an adapter)' },
  reps: { type: 'string', help: 'timed repetitions for skipgrad (default 5)' },
  'tfjs-reps': { type: 'string', help: 'timed repetitions for tfjs, each after one warm-up run (default min(reps, 3))' },
  cap: { type: 'string', help: 'seconds after which a tfjs measurement is stopped (default 120)' },
  quick: { type: 'boolean', help: 'only the second (smaller) shape, 2 repetitions; the extra ops at batch 2' },
  'no-extras': { type: 'boolean', help: 'only conv2d (not convTranspose2d, upsampleNearest2d, batchNorm2d, the AdamW update)' },
};

/** The op bench's options from argv; `also`: other options to accept and ignore (bench/bench.ts's and the model bench's). */
export function opsOptionsFromArgs(argv: string[], also: BenchOptions = {}): OpsBenchOptions {
  const a = parseBenchArgs(argv, OPS_OPTIONS, also);
  const quick = a.flag('quick');
  const reps = quick ? 2 : intArg('reps', a.str('reps'), 5);
  const tfjsReps = intArg('tfjs-reps', a.str('tfjs-reps'), Math.min(reps, 3));
  const capSeconds = secondsArg('cap', a.str('cap'), 120);
  const backends = listArg('backends', a.str('backends'), 'cpu,webgpu', ['cpu', 'webgpu'] as const);
  return { backends, reps, tfjsReps, capSeconds, quick, extras: !a.flag('no-extras') };
}

const seed = 42;
/** Output sums of skipgrad's and tfjs's forward conv further apart than this, relatively, are warned about (float32
 *  rounding of sums of ~1e6 terms stays near 1e-6; a different convolution lands far off). */
const PARITY_TOLERANCE = 1e-4;

async function benchSkipgrad(backend: 'cpu' | 'webgpu', s: BenchShape, reps: number): Promise<Measurement[]> {
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
    { impl, pass: 'forward', ms: fwd, basis: 'median', checksum },
    { impl, pass: 'gradInput', ms: gradInput, basis: 'median' },
    { impl, pass: 'gradFull', ms: full, basis: 'median' },
  ];
}

async function benchTfjs(backend: TfjsJob['backend'], s: BenchShape, pass: TfjsPass, reps: number, capSeconds: number): Promise<Measurement> {
  const impl = `tfjs-${backend}`;
  const r = await runTfjsWorker({ kind: 'conv', backend, shape: s, pass, warmup: 1, reps, seed }, capSeconds);
  const p = r.phases.get(pass);
  if (r.setupError !== undefined) return { impl, pass, ms: null, basis: 'failed', error: r.setupError };
  if (!p || p.basis === 'failed') return { impl, pass, ms: null, basis: 'failed', error: p?.error ?? 'no result' };
  return peerMeasurement(impl, pass, p.ms, p.basis, r.checksum);
}

/** A tfjs measurement; one stopped in its first run is a lower bound: the time that run had taken (not the cap, which
 *  also covered the worker's start, tfjs's import and the upload). */
function peerMeasurement(impl: string, pass: TfjsPass, ms: number | null, basis: Basis, checksum?: number): Measurement {
  return { impl, pass, ms, basis, ...(checksum !== undefined ? { checksum } : {}) };
}

function fmtMs(m: Measurement | undefined): string {
  if (!m) return '';
  if (m.ms === null) return `n/a (${shortError(m.error ?? '').slice(0, 50)})`;
  return fmtTime(m.ms, m.basis, 1);
}

interface ShapeResult { shape: BenchShape; flops: Record<TfjsPass, number>; measurements: Measurement[] }

async function runComparison(backend: 'cpu' | 'webgpu', peers: Array<TfjsJob['backend']>, describe: string, o: OpsBenchOptions): Promise<OpsReport> {
  const { reps, tfjsReps, capSeconds } = o;
  const shapes = o.quick ? SHAPES.slice(1) : SHAPES;
  const out = path.join('bench', 'results', `ops-${backend}.json`);
  const results: ShapeResult[] = [];
  for (const s of shapes) {
    const f = convFlops(s);
    const flops: Record<TfjsPass, number> = { forward: f, gradInput: 2 * f, gradFull: 3 * f };
    process.stderr.write(`\n[${backend}] ${s.name}: ${(f / 1e9).toFixed(2)} GFLOP per conv\n  skipgrad ${backend} ...`);
    const measurements = await benchSkipgrad(backend, s, reps);
    for (const peer of peers) {
      for (const pass of ['forward', 'gradInput', 'gradFull'] as const) {
        if (peer === 'cpu' && pass === 'gradInput') continue; // as slow as gradFull on tfjs-cpu; the cap would only repeat itself
        process.stderr.write(`\n  tfjs ${peer} ${pass} (cap ${capSeconds} s) ...`);
        measurements.push(await benchTfjs(peer, s, pass, tfjsReps, capSeconds));
      }
    }
    process.stderr.write('\n');
    for (const m of measurements) if (m.ms !== null && m.basis !== 'lower-bound') m.gflops = flops[m.pass] / (m.ms / 1000) / 1e9;
    results.push({ shape: s, flops, measurements });
    writeFileAtomic(out, JSON.stringify(opsReport(backend, peers, describe, o, results, [], false), null, 2) + '\n');
  }
  const extras = o.extras
    ? await benchExtraOps(backend, peers, {
      reps, tfjsReps, capSeconds, batch: o.quick ? 2 : 8, seed, log: (l) => process.stderr.write(l),
    })
    : [];
  const report = opsReport(backend, peers, describe, o, results, extras, true);
  writeFileAtomic(out, JSON.stringify(report, null, 2) + '\n');
  const parity = report.parity.map((p) => p.relDiff?.toExponential(1) ?? 'n/a').join(', ');
  const off = report.parity.filter((p) => p.relDiff !== null && p.relDiff > PARITY_TOLERANCE);
  process.stdout.write(`\n${describe}\n${report.table}\n\nforward parity vs tfjs-${peers[0]} (relative difference of the output sums): ${parity}\n`
    + off.map((p) => `warning: ${p.shape}: skipgrad's and tfjs's outputs differ (sums ${p.skipgradSum} and ${p.tfjsSum}): the two sides did not compute the same convolution\n`).join('')
    + `wrote ${out}\n`);
  return report;
}

/** The report of the shapes measured so far (and the extra ops, once measured). */
function opsReport(backend: 'cpu' | 'webgpu', peers: Array<TfjsJob['backend']>, describe: string, o: OpsBenchOptions,
  results: ShapeResult[], extras: ExtraMeasurement[], complete: boolean): OpsReport {
  const { reps, tfjsReps, capSeconds } = o;
  const ours = `skipgrad-${backend}`;
  const rows: string[][] = [];
  for (const r of results) {
    for (const pass of ['forward', 'gradInput', 'gradFull'] as const) {
      const get = (impl: string): Measurement | undefined => r.measurements.find((m) => m.impl === impl && m.pass === pass);
      const me = get(ours)!;
      const row = [r.shape.name, pass, fmtMs(me), me.gflops?.toFixed(2) ?? ''];
      for (const peer of peers) {
        const p = get(`tfjs-${peer}`);
        row.push(fmtMs(p), p ? ratio(p, me.ms) : '');
      }
      rows.push(row);
    }
  }
  for (const e of uniqueBy(extras, (m) => `${m.name}|${m.pass}`)) {
    const get = (impl: string): ExtraMeasurement | undefined => extras.find((m) => m.name === e.name && m.pass === e.pass && m.impl === impl);
    const me = get(ours);
    const row = [e.name, e.pass, me?.ms != null ? fmtTime(me.ms, 'median', 1) : 'n/a', ''];
    for (const peer of peers) {
      const p = get(`tfjs-${peer}`);
      const pm = p && { ...peerMeasurement(p.impl, 'forward', p.ms, p.basis ?? 'failed'), ...(p.error ? { error: shortError(p.error) } : {}) };
      row.push(fmtMs(pm), pm ? ratio(pm, me?.ms ?? null) : '');
    }
    rows.push(row);
  }
  const head = ['shape / op', 'pass', `skipgrad ${backend}`, 'GFLOP/s', ...peers.flatMap((p) => [`tfjs ${p}`, 'speedup'])];
  const table = formatTable(head, rows);
  const parity = results.map((r) => {
    const a = r.measurements.find((m) => m.impl === ours && m.pass === 'forward')?.checksum;
    const b = r.measurements.find((m) => m.impl === `tfjs-${peers[0]}` && m.pass === 'forward')?.checksum;
    return { shape: r.shape.name, skipgradSum: a, tfjsSum: b, relDiff: a !== undefined && b !== undefined ? Math.abs(a - b) / Math.max(Math.abs(b), 1e-12) : null };
  });
  return {
    kind: 'ops', backend,
    date: new Date().toISOString(),
    machine: machineInfo(describe), complete,
    settings: {
      reps, tfjsReps, capSeconds, threads: process.env.SKIPGRAD_THREADS ?? 'all cores',
      note: "gradInput and gradFull include the forward (as tf.grads does); dy (ones) is made before the timed runs on both sides; each run waits for the device (skipgrad: a sync; tfjs: one element of each output read back); speedup = peer time / skipgrad time; > = peer was stopped at the cap (a lower bound on its time: that run's time when stopped); * = only the peer's warm-up run finished (stopped at the cap before a timed repetition); ~ = the median of fewer timed runs than asked; extra ops: see bench/ops-extra.ts",
    },
    results, extras, parity, table, markdown: markdownTable(head, rows),
  };
}

/** peer time / skipgrad time, marked as the peer's time is. */
function ratio(peer: Measurement, ours: number | null): string {
  return fmtRatio(peer.ms !== null && ours ? peer.ms / ours : null, peer.basis, 1);
}

function uniqueBy<T>(xs: T[], key: (x: T) => string): T[] {
  const seen = new Set<string>();
  return xs.filter((x) => !seen.has(key(x)) && !!seen.add(key(x)));
}


export async function runOpsBench(o: OpsBenchOptions): Promise<OpsReport[]> {
  const reports: OpsReport[] = [];
  if (o.backends.includes('cpu')) reports.push(await runComparison('cpu', ['cpu', 'wasm'], sg.getBackend('cpu').describe(), o));
  if (o.backends.includes('webgpu')) {
    const gpu = await sg.webgpuBackend();
    if (gpu) reports.push(await runComparison('webgpu', ['webgpu'], gpu.describe(), o));
    else process.stdout.write('\nwebgpu: no adapter, comparison skipped (bash scripts/provision-vulkan.sh && source .vk/env.sh for a software one)\n');
  }
  return reports;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchMain('dist/bench/ops.js', 'conv2d forward and gradients at an AESc layer shape and [4,32,128,128] -> 64 (and the extra ops), skipgrad vs tfjs.', OPS_OPTIONS,
    async (argv) => { await runOpsBench(opsOptionsFromArgs(argv)); });
  process.exit(0);
}
