/**
 * The model bench: one training step of the paper's autoencoders (esann preset: AESc and AE), skipgrad against
 * TensorFlow.js running the same network (bench/model-tfjs.ts; numerical parity in test/bench-parity.test.ts)
 * from the same initial weights on the same batch:
 *   cpu:    skipgrad cpu    vs tfjs cpu and tfjs wasm       -> bench/results/model-cpu.json
 *   webgpu: skipgrad webgpu vs tfjs webgpu (same Dawn adapter) -> bench/results/model-webgpu.json
 *
 * One step = forward (BN in training mode) -> MSE loss against a target -> gradients of all parameters ->
 * AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 1e-2, decoupled as PyTorch's AdamW: p *= 1 - lr wd,
 * then the bias-corrected Adam update). skipgrad: sg.Adam({ decoupled: true }); tfjs: the decay by hand, then
 * tf.train.adam. Both ends wait for the device (skipgrad: the loss read back and backend.sync(); tfjs: the loss
 * and a weight read back with await data()). Also measured: a forward pass alone (training-mode BN, no gradient
 * recording, output read back), which runs where tfjs cannot train (tfjs-wasm has no Conv2DBackpropFilter kernel).
 *
 * Peak memory: the high-water of live tensor bytes on the backend over the first (warm-up) step, which
 * includes the weights, the optimizer state, the batch and every activation and gradient:
 *   skipgrad: backend.memory().bytes checked at every allocation; tfjs: tf.profile's peakBytes (tf.memory().numBytes
 *   after each kernel). Neither counts allocator pools or caches.
 * Timings: the median of the timed steps after the warm-up. tfjs runs in a child process stopped at --cap seconds;
 * a stopped measurement reports what finished (see bench/tfjs-run.ts), a '>' marks a lower bound.
 *
 * Options: MODEL_OPTIONS below (`--help` prints them). --host-only runs webgpu on Dawn's null backend
 * (SKIPGRAD_DAWN_OPTIONS=backend=null, for tfjs too): every command is recorded and validated but no kernel runs, so
 * a step's time is its host side alone (engine, autograd, optimizer, WebGPU calls), the part a fast GPU cannot hide.
 * Its defaults: 64x64, batch 4 (the null device holds little memory; the host work of a step does not depend on the
 * image size), 10 timed steps each; it writes model-webgpu-host.json.
 */
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as sg from '../src/engine/index.js';
import { formatTable } from '../src/engine/audit/trace.js';
import { writeFileAtomic } from '../src/engine/io/atomic.js';
import { buildAutoencoder } from '../src/models/autoencoder.js';
import { benchMain, esannBatchArg, esannSizeArg, type BenchOptions, intArg, listArg, parseBenchArgs, secondsArg, UsageError } from './args.js';
import type { NamedArray } from './model-tfjs.js';
import { median, skipgradStepper } from './model-step.js';
import type { TfjsBackendName } from './model-worker.js';
import { fmtRatio, fmtTime, marked, runTfjsWorker, type PhaseTiming } from './tfjs-run.js';

export type ModelName = 'AESc' | 'AE';

export interface ModelBenchOptions {
  backends: Array<'cpu' | 'webgpu'>;
  models: ModelName[];
  size: number;
  batch: number;
  baseChannels: number;
  reps: number;
  tfjsReps: number;
  capSeconds: number;
  /** Where model-<backend>.json goes (default bench/results). */
  outDir: string;
  seed: number;
  lr: number;
  weightDecay: number;
  /** webgpu on Dawn's null backend: the host side of a step alone (see --host-only). */
  hostOnly?: boolean;
  log?: (s: string) => void;
}

export interface ModelRow {
  model: ModelName;
  impl: string;
  stepMs: number | null;
  stepBasis: PhaseTiming['basis'];
  stepTimes: number[];
  forwardMs: number | null;
  forwardBasis: PhaseTiming['basis'];
  imagesPerSecond: number | null;
  peakBytes: number | null;
  /** skipgrad webgpu: the high-water of allocated GPU buffers over the first step (tensors, kernel scratch such as
   *  split-K partials, and the pool's power-of-two size classes), which peakBytes (tensor bytes) leaves out. */
  peakBufferBytes?: number;
  /** The loss of the first step (from the shared initial weights; the same on every implementation). */
  firstLoss: number | null;
  /** peer / skipgrad on the same backend kind (null for skipgrad's own rows). */
  stepRatio?: number | null;
  forwardRatio?: number | null;
  memoryRatio?: number | null;
  firstLossRelDiff?: number | null;
  error?: string;
  info?: unknown;
}

export interface ModelReport {
  kind: 'model';
  backend: 'cpu' | 'webgpu';
  date: string;
  machine: MachineInfo;
  /** false in the file written after each model but the last (a run stopped from outside keeps what it finished). */
  complete?: boolean;
  settings: Record<string, unknown>;
  rows: ModelRow[];
  table: string;
  markdown: string;
}

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  platform: string;
  /** The skipgrad backend's description (cpu: threads; webgpu: the adapter). */
  device: string;
}

export function machineInfo(device: string): MachineInfo {
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version, platform: `${os.platform()} ${os.arch()}`, device,
  };
}

/** Seeded batch: inputs uniform in [0,1], targets a different uniform draw (the loss only needs to be non-trivial). */
function batchData(o: ModelBenchOptions): { x: Float32Array; target: Float32Array } {
  const n = o.batch * o.size * o.size;
  const rng = new sg.Rng(o.seed + 1000);
  const x = Float32Array.from({ length: n }, () => rng.uniform(0, 1));
  const target = Float32Array.from({ length: n }, () => rng.uniform(0, 1));
  return { x, target };
}

/** Runs fn while recording the backend's live-bytes high-water at every allocation. */
async function withPeak<T>(be: sg.Backend, fn: () => Promise<T>): Promise<{ result: T; peak: number }> {
  const own = Object.prototype.hasOwnProperty.call(be, 'alloc');
  const orig = be.alloc;
  let peak = be.memory().bytes;
  be.alloc = function alloc(this: sg.Backend, dtype, n) {
    const s = orig.call(this, dtype, n);
    peak = Math.max(peak, be.memory().bytes);
    return s;
  };
  try {
    const result = await fn();
    return { result, peak };
  } finally {
    if (own) be.alloc = orig;
    else delete (be as { alloc?: unknown }).alloc;
  }
}

async function benchSkipgrad(be: sg.Backend, model: ModelName, o: ModelBenchOptions, data: { x: Float32Array; target: Float32Array }): Promise<{ row: ModelRow; state: NamedArray[] }> {
  const net = buildAutoencoder('esann', { skips: model === 'AESc', inputSize: o.size, baseChannels: o.baseChannels, seed: o.seed, backend: be }).train();
  const state: NamedArray[] = [];
  for (const [name, t] of net.stateDict()) state.push({ name, shape: [...t.shape], data: Float32Array.from(await t.data()) });
  const shape = [o.batch, 1, o.size, o.size];
  const x = sg.fromArray(data.x, shape, { backend: be }).keep();
  const target = sg.fromArray(data.target, shape, { backend: be }).keep();
  const stepper = skipgradStepper(be, net, x, target, o);
  const step = (): Promise<number> => stepper.step();
  const forward = async (): Promise<void> => {
    const y = sg.noGrad(() => sg.scope(() => net.forward(x).output));
    await y.data();
    y.dispose();
  };
  const timed = async (fn: () => Promise<unknown>, label: string): Promise<number[]> => {
    const times: number[] = [];
    for (let i = 0; i < o.reps; i++) {
      const t0 = performance.now();
      await fn();
      times.push(performance.now() - t0);
      o.log?.(` ${label} ${(times[i] / 1000).toFixed(2)} s`);
    }
    return times;
  };
  const t0 = performance.now();
  const rt = be.name === 'webgpu' ? (be as unknown as { rt: { counters: { liveBytes: number; peakLiveBytes: number } } }).rt : null;
  if (rt) rt.counters.peakLiveBytes = rt.counters.liveBytes;
  const { result: firstLoss, peak } = await withPeak(be, step);
  const peakBufferBytes = rt ? rt.counters.peakLiveBytes : undefined;
  o.log?.(` step (warm-up) ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  const stepTimes = await timed(step, 'step');
  await forward();
  const fwdTimes = await timed(forward, 'forward');
  for (const t of [x, target]) t.dispose();
  stepper.dispose();
  net.dispose();
  const stepMs = median(stepTimes);
  return {
    state,
    row: {
      model, impl: `skipgrad-${be.name}`, stepMs, stepBasis: 'median', stepTimes, forwardMs: median(fwdTimes), forwardBasis: 'median',
      imagesPerSecond: o.batch / (stepMs / 1000), peakBytes: peak, firstLoss,
      ...(peakBufferBytes !== undefined ? { peakBufferBytes } : {}),
    },
  };
}

async function benchTfjs(peer: TfjsBackendName, model: ModelName, o: ModelBenchOptions, state: NamedArray[], data: { x: Float32Array; target: Float32Array }): Promise<ModelRow> {
  const base = {
    kind: 'model' as const, backend: peer, skips: model === 'AESc', size: o.size, batch: o.batch, baseChannels: o.baseChannels,
    warmup: 1, reps: o.tfjsReps, state, x: data.x, target: data.target, lr: o.lr, weightDecay: o.weightDecay,
  };
  o.log?.(`\n  tfjs ${peer} step (cap ${o.capSeconds} s) ...`);
  const s = await runTfjsWorker({ ...base, phases: ['step'] }, o.capSeconds, (l) => o.log?.(l));
  o.log?.(`\n  tfjs ${peer} forward (cap ${o.capSeconds} s) ...`);
  const f = await runTfjsWorker({ ...base, phases: ['forward'] }, o.capSeconds, (l) => o.log?.(l));
  const step = s.phases.get('step');
  const fwd = f.phases.get('forward');
  const errors = [s.setupError, step?.error, fwd?.error && `forward: ${fwd.error}`].filter((e): e is string => !!e);
  const stepMs = step?.ms ?? null;
  return {
    model, impl: `tfjs-${peer}`, stepMs, stepBasis: step?.basis ?? 'failed', stepTimes: step?.times ?? [],
    forwardMs: fwd?.ms ?? null, forwardBasis: fwd?.basis ?? 'failed',
    imagesPerSecond: stepMs !== null && step?.basis !== 'lower-bound' ? o.batch / (stepMs / 1000) : null,
    peakBytes: s.peakBytes ?? null, firstLoss: step?.losses[0] ?? null,
    ...(errors.length ? { error: errors.join('; ') } : {}),
    info: s.info ?? f.info,
  };
}

function fmtBytes(b: number | null): string {
  return b === null ? '' : `${(b / 2 ** 20).toFixed(0)} MiB`;
}

export const MODEL_HEAD = ['model', 'implementation', 'train step', 'images/s', 'step: peer/skipgrad', 'peak memory', 'memory: peer/skipgrad', 'forward', 'forward: peer/skipgrad', 'first loss'];

export function modelRowCells(r: ModelRow): string[] {
  const own = r.impl.startsWith('skipgrad');
  const stepCell = r.stepMs === null ? `n/a${r.error ? ` (${shortError(r.error).slice(0, 50)})` : ''}` : fmtTime(r.stepMs, r.stepBasis);
  // images/s carries the step time's mark (* from the warm-up step alone, ~ from fewer timed steps than asked).
  const ips = r.imagesPerSecond === null ? '' : marked(r.imagesPerSecond.toFixed(2), r.stepBasis);
  const mem = r.peakBufferBytes !== undefined ? `${fmtBytes(r.peakBytes)} (${fmtBytes(r.peakBufferBytes)} in GPU buffers)` : fmtBytes(r.peakBytes);
  const loss = r.firstLoss === null ? '' : `${r.firstLoss.toFixed(6)}${r.firstLossRelDiff != null && r.firstLossRelDiff > FIRST_LOSS_TOLERANCE ? ' (differs!)' : ''}`;
  return [
    r.model, r.impl, stepCell, ips,
    own ? '1x' : fmtRatio(r.stepRatio, r.stepBasis),
    mem, own ? '1x' : fmtRatio(r.memoryRatio),
    fmtTime(r.forwardMs, r.forwardBasis), own ? '1x' : fmtRatio(r.forwardRatio, r.forwardBasis),
    loss,
  ];
}

/** "Kernel 'X' not registered for backend 'wasm'" -> "no X kernel"; else the first line. */
export function shortError(e: string): string {
  const k = /Kernel '(\w+)' not registered/.exec(e);
  return k ? `no ${k[1]} kernel` : e.split('\n')[0];
}

export function markdownTable(head: string[], rows: string[][]): string {
  const esc = (c: string): string => c.replace(/\|/g, '\\|');
  return [`| ${head.map(esc).join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}

/** The first losses of skipgrad and a peer (same weights, same batch) differ by more than this, relatively: the table
 *  says so, and the run warns (the parity tests hold them to far less; this catches a bench that compares different
 *  work). */
const FIRST_LOSS_TOLERANCE = 1e-4;

const NOTE = 'train step = forward + MSE + all gradients + AdamW, median after 1 warm-up; peer/skipgrad = peer / skipgrad (time: >1 means skipgrad is faster; memory: >1 means skipgrad uses less); > = lower bound (the peer was stopped at the cap); * = the warm-up run only; ~ = the median of fewer timed steps than asked (stopped at the cap); peak memory = live tensor bytes high-water over the first step on both sides (neither counts allocator pools; skipgrad webgpu also shows its allocated GPU buffers, kernel scratch and size rounding included); forward = training-mode forward alone, output read back; first loss: from the shared initial weights, equal across implementations up to rounding (marked "differs!" beyond 1e-4 relative)';

export async function runModelBench(o: ModelBenchOptions): Promise<ModelReport[]> {
  const reports: ModelReport[] = [];
  const data = batchData(o);
  for (const backend of o.backends) {
    let be: sg.Backend;
    if (backend === 'webgpu') {
      const gpu = await sg.webgpuBackend();
      if (!gpu) {
        o.log?.('\nwebgpu: no adapter, model comparison skipped (bash scripts/provision-vulkan.sh && source .vk/env.sh for a software one)\n');
        continue;
      }
      be = gpu;
    } else be = sg.getBackend('cpu');
    if (o.hostOnly && !be.describe().includes('null-backend')) {
      throw new Error(`--host-only: the WebGPU device is ${be.describe()}, not Dawn's null backend (SKIPGRAD_DAWN_OPTIONS=backend=null must be set before Dawn is created)`);
    }
    const peers: TfjsBackendName[] = backend === 'cpu' ? ['cpu', 'wasm'] : ['webgpu'];
    const rows: ModelRow[] = [];
    const out = path.join(o.outDir, `model-${backend}${o.hostOnly ? '-host' : ''}.json`);
    // On the null backend nothing runs: what reads back is not a loss.
    const noLoss = (r: ModelRow): ModelRow => (o.hostOnly ? Object.assign(r, { firstLoss: null, firstLossRelDiff: null }) : r);
    const makeReport = (complete: boolean): ModelReport => {
      const cells = rows.map(modelRowCells);
      return {
        kind: 'model', backend, date: new Date().toISOString(), machine: machineInfo(be.describe()), complete,
        settings: {
          preset: 'esann', size: o.size, batch: o.batch, baseChannels: o.baseChannels, reps: o.reps, tfjsReps: o.tfjsReps, warmup: 1,
          capSeconds: o.capSeconds, seed: o.seed, optimizer: `AdamW lr ${o.lr}, betas 0.9/0.999, eps 1e-8, weight decay ${o.weightDecay} (decoupled)`,
          threads: process.env.SKIPGRAD_THREADS ?? 'all cores',
          note: o.hostOnly ? `${NOTE}; host only: Dawn's null backend runs no kernel, so these are the host side of a step alone, and no loss is computed` : NOTE,
          ...(o.hostOnly ? { dawn: 'null backend (SKIPGRAD_DAWN_OPTIONS=backend=null): commands recorded and validated, no kernel runs' } : {}),
        },
        rows, table: formatTable(MODEL_HEAD, cells), markdown: markdownTable(MODEL_HEAD, cells),
      };
    };
    for (const model of o.models) {
      o.log?.(`\n[${backend}] ${model} ${o.size}x${o.size}, batch ${o.batch}\n  skipgrad ${backend} ...`);
      const { row, state } = await benchSkipgrad(be, model, o, data);
      rows.push(noLoss(row));
      for (const peer of peers) {
        const r = await benchTfjs(peer, model, o, state, data);
        r.stepRatio = r.stepMs !== null && row.stepMs !== null ? r.stepMs / row.stepMs : null;
        r.forwardRatio = r.forwardMs !== null && row.forwardMs !== null ? r.forwardMs / row.forwardMs : null;
        r.memoryRatio = r.peakBytes !== null && row.peakBytes !== null ? r.peakBytes / row.peakBytes : null;
        r.firstLossRelDiff = r.firstLoss !== null && row.firstLoss !== null ? Math.abs(r.firstLoss - row.firstLoss) / Math.abs(row.firstLoss) : null;
        if (!o.hostOnly && r.firstLossRelDiff != null && r.firstLossRelDiff > FIRST_LOSS_TOLERANCE) {
          o.log?.(`\n  warning: ${r.impl}'s first loss ${r.firstLoss} differs from skipgrad's ${row.firstLoss} by ${r.firstLossRelDiff.toExponential(1)} (relative): the two sides did not compute the same step\n`);
        }
        rows.push(noLoss(r));
      }
      o.log?.('\n');
      // Written after every model: a run stopped from outside (a timeout) keeps the models it finished.
      if (model !== o.models[o.models.length - 1]) writeFileAtomic(out, JSON.stringify(makeReport(false), null, 2) + '\n');
    }
    const report = makeReport(true);
    writeFileAtomic(out, JSON.stringify(report, null, 2) + '\n');
    process.stdout.write(`\n${report.machine.device}\n${report.table}\nwrote ${out}\n`);
    reports.push(report);
  }
  return reports;
}

/** The options of the model bench (bench/bench.ts passes them through too). */
export const MODEL_OPTIONS: BenchOptions = {
  size: { type: 'string', help: "image side (default 256, the paper's; 128 runs ~4x faster)" },
  batch: { type: 'string', help: "default 8 (the paper's)" },
  models: { type: 'string', help: 'AESc,AE: which models (default both)' },
  backends: { type: 'string', help: 'cpu,webgpu: which comparisons (default both; webgpu needs an adapter)' },
  reps: { type: 'string', help: 'timed steps for skipgrad after one warm-up (default 2)' },
  'model-reps': { type: 'string', help: 'the same as --reps (npm run bench passes its --reps to the op bench, --model-reps here)' },
  'tfjs-reps': { type: 'string', help: "timed steps for tfjs after its warm-up (default min(reps, 2)); 0: the warm-up step only ('*')" },
  cap: { type: 'string', help: 'seconds after which a tfjs run is stopped (default 300)' },
  'model-cap': { type: 'string', help: 'the same as --cap, before it (for npm run bench, whose --cap both benches get)' },
  'out-dir': { type: 'string', help: 'where model-<backend>.json goes (default bench/results)' },
  quick: { type: 'boolean', help: 'AESc only, size 128 unless --size is given, 1 timed step, cap 120 s' },
  'host-only': { type: 'boolean', help: "webgpu on Dawn's null backend: the step's host side alone (see the file's header)" },
};

/**
 * Options from the command line (shared with bench/bench.ts, which passes its own argv through, keeps --reps for the
 * op bench, and names its own and the op bench's options in `also`, accepted here and ignored).
 */
export function modelOptionsFromArgs(argv: string[], { inheritReps = true, also = {} }: { inheritReps?: boolean; also?: BenchOptions } = {}): ModelBenchOptions {
  const a = parseBenchArgs(argv, MODEL_OPTIONS, also);
  const str = a.str;
  const quick = a.flag('quick');
  const hostOnly = a.flag('host-only');
  const reps = intArg('reps', str('model-reps') ?? (inheritReps ? str('reps') : undefined), hostOnly ? 10 : quick ? 1 : 2);
  const tfjsReps = intArg('tfjs-reps', str('tfjs-reps'), hostOnly ? reps : Math.min(reps, 2), 0);
  const cap = secondsArg('cap', str('model-cap') ?? str('cap'), quick ? 120 : 300);
  const models = listArg('models', str('models'), quick ? 'AESc' : 'AESc,AE', ['AESc', 'AE'] as const);
  const backends = listArg('backends', str('backends'), hostOnly ? 'webgpu' : 'cpu,webgpu', ['cpu', 'webgpu'] as const);
  if (hostOnly && backends.join() !== 'webgpu') throw new UsageError(`--host-only measures webgpu alone, got --backends ${backends.join(',')}`);
  const size = esannSizeArg(str('size'), hostOnly ? 64 : quick ? 128 : 256);
  const batch = esannBatchArg(str('batch'), hostOnly ? 4 : 8, size);
  if (hostOnly) {
    // Read when Dawn is first created (src/engine/webgpu/device.ts), here and in the tfjs child, which inherits it.
    process.env.SKIPGRAD_DAWN_OPTIONS = `${process.env.SKIPGRAD_DAWN_OPTIONS ?? ''} backend=null`.trim();
  }
  return {
    backends, models, size, batch, baseChannels: 16,
    reps, tfjsReps, capSeconds: cap, outDir: str('out-dir') ?? path.join('bench', 'results'), seed: 0, lr: 1e-3, weightDecay: 1e-2,
    hostOnly, log: (s) => process.stderr.write(s),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchMain('dist/bench/model.js', 'one AESc / AE training step (forward, MSE, backward, AdamW), skipgrad vs tfjs.', MODEL_OPTIONS,
    async (argv) => { await runModelBench(modelOptionsFromArgs(argv)); });
  process.exit(0);
}
