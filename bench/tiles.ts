/**
 * `npm run bench:tiles`: are chooseTiles' picks the fastest on this adapter? Every convolution kernel launch of one
 * esann training step, timed (GPU timestamps) with the tile shape chooseTiles picks and with the shapes around it.
 *
 * The launches come from a traced step of the model (conv2d, convTranspose2d and their gradients, each mapped to
 * the kernel that runs it: conv2d, conv2dGradInput or conv2dGradWeight, with its geometry); equal launches are
 * timed once and counted as often as the step makes them. Candidates per launch: the row counts of chooseTiles'
 * pick and the next smaller one (more workgroups when there are few), each at every width down to 32 columns
 * (and 32 threads), each at its BK and twice that where the kernels' limits allow. Each candidate: one untimed
 * launch (pipeline compiled), then --reps timed ones, median.
 *
 *   --model AESc|AE   default AESc       --size N      default 256      --batch N   default 8
 *   --channels N      default 16         --reps N      default 5
 *   --max-seconds S   stop sweeping after S seconds; the launches not reached keep only chooseTiles' time (default 120)
 *   --out FILE        default bench/results/tiles-webgpu.json (rewritten after each launch, `complete` false until the end)
 *
 * Prints one line per launch (pick vs fastest, and the FLOPs the pick computes, tile padding included, over the
 * useful ones: convTileWork) and the step's total convolution time with the picks and with the fastest shape per
 * launch; writes the JSON. Needs an adapter with timestamp queries.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import * as sg from '../src/engine/index.js';
import type { Conv2dGeometry } from '../src/engine/backend.js';
import { formatTable } from '../src/engine/audit/trace.js';
import { writeFileAtomic } from '../src/engine/io/atomic.js';
import { WebGPUBackend } from '../src/engine/webgpu/backend.js';
import {
  chooseTiles, conv2d, conv2dGradInput, conv2dGradWeight, convTileProblem, convTileWork, TILE_ROWS, tileWidths, tilesValid, type ConvKernel,
  type GemmTiles,
} from '../src/engine/webgpu/kernels/conv.js';
import type { GpuRuntime } from '../src/engine/webgpu/runtime.js';
import { intArg, modelArg } from './args.js';
import { machineInfo } from './model.js';
import { esannStepper, median } from './model-step.js';

/** One kernel launch of the step (equal launches merged: `count`). */
export interface ConvLaunch {
  kernel: ConvKernel;
  /** The op(s) of the trace that made it, e.g. 'convTranspose2d/forward'. */
  ops: string[];
  count: number;
  g: Conv2dGeometry;
  /** The GEMM: M x N outputs, K deep (for the input gradient, N and K over all stride phases together). */
  m: number;
  n: number;
  k: number;
  flops: number;
}

export interface TileTiming {
  tiles: GemmTiles;
  gpuMs: number;
}

export interface LaunchResult extends ConvLaunch {
  pick: GemmTiles;
  /** FLOPs the pick computes, tile padding included (2 x convTileWork); `flops` is the useful part. */
  pickFlops: number;
  /** Median GPU time with each candidate timed, the pick first; only the pick when the sweep ran out of time. */
  timings: TileTiming[];
  pickMs: number;
  best: TileTiming;
}

export interface TilesReport {
  kind: 'tiles';
  date: string;
  machine: ReturnType<typeof machineInfo>;
  settings: { model: string; size: number; batch: number; channels: number; reps: number; maxSeconds: number };
  /** false while the launches are still being timed (the file is rewritten after each one). */
  complete: boolean;
  /** The launches timed so far, in the order of the step. */
  launches: LaunchResult[];
  /**
   * Sums over the step (each launch times its count): the picks' GPU time, the fastest shapes' and their ratio; the
   * useful FLOPs and those the picks compute (tile padding included).
   */
  summary: {
    launches: number; distinct: number; swept: number; pickMs: number; bestMs: number; pickOverBest: number; seconds: number;
    usefulFlops: number; pickFlops: number;
  };
  table: string;
}

const KERNEL_OF: Record<string, ConvKernel> = {
  conv2d: 'conv2d', conv2dGradInput: 'conv2dGradInput', convTranspose2d: 'conv2dGradInput', conv2dGradWeight: 'conv2dGradWeight',
};

/** The convolution kernel launches of a trace, merged where kernel and geometry are equal (in first-seen order). */
export function convLaunches(entries: readonly sg.TraceEntry[]): ConvLaunch[] {
  const out = new Map<string, ConvLaunch>();
  for (const e of entries) {
    const kernel = KERNEL_OF[e.op];
    if (!kernel) continue;
    const a = e.attrs as { kernel: [number, number]; stride: [number, number]; padTopLeft: [number, number] } | undefined;
    if (!a) throw new Error(`tiles: trace entry ${e.index} (${e.op}) has no geometry attributes`);
    // The image x [B,C,H,W] and the output y [B,O,OH,OW] of the convolution the kernel belongs to.
    const [x, y] = kernel === 'conv2d' ? [e.inputs[0], e.outputs[0]]
      : kernel === 'conv2dGradInput' ? [e.outputs[0], e.inputs[0]]
      : [e.inputs[0], e.inputs[1]];
    const g: Conv2dGeometry = {
      batch: x[0], inChannels: x[1], inHeight: x[2], inWidth: x[3], outChannels: y[1], outHeight: y[2], outWidth: y[3],
      kernelH: a.kernel[0], kernelW: a.kernel[1], strideH: a.stride[0], strideW: a.stride[1], padTop: a.padTopLeft[0], padLeft: a.padTopLeft[1],
    };
    const key = `${kernel} ${JSON.stringify(g)}`;
    const op = `${e.op}/${e.phase}`;
    const prev = out.get(key);
    if (prev) {
      prev.count++;
      if (!prev.ops.includes(op)) prev.ops.push(op);
      continue;
    }
    const pixelsIn = g.batch * g.inHeight * g.inWidth, pixelsOut = g.batch * g.outHeight * g.outWidth;
    const taps = g.kernelH * g.kernelW;
    const [m, n, k] = kernel === 'conv2d' ? [g.outChannels, pixelsOut, g.inChannels * taps]
      : kernel === 'conv2dGradInput' ? [g.inChannels, pixelsIn, g.outChannels * taps]
      : [g.outChannels, g.inChannels * taps, pixelsOut];
    out.set(key, { kernel, ops: [op], count: 1, g, m, n, k, flops: 2 * g.outChannels * pixelsOut * g.inChannels * taps });
  }
  return [...out.values()];
}

/** chooseTiles' pick first, then: its rows and the next smaller, every width down to 32 columns, BK and 2 BK. */
export function tileCandidates(m: number, n: number): GemmTiles[] {
  const pick = chooseTiles(m, n);
  const i = TILE_ROWS.findIndex((r) => r.bm === pick.bm && r.tm === pick.tm);
  const rows = [TILE_ROWS[i], ...(i > 0 ? [TILE_ROWS[i - 1]] : [])];
  const out: GemmTiles[] = [pick];
  const key = (t: GemmTiles) => `${t.bm}/${t.bn}/${t.bk}/${t.tm}`;
  const seen = new Set([key(pick)]);
  for (const r of rows) {
    for (const bn of tileWidths(r)) {
      for (const bk of [r.bk, 2 * r.bk]) {
        const t = { ...r, bn, bk };
        if (!seen.has(key(t)) && tilesValid(t)) {
          seen.add(key(t));
          out.push(t);
        }
      }
    }
  }
  return out;
}

function launchKernel(rt: GpuRuntime, l: ConvLaunch, bufs: GPUBuffer[], tiles: GemmTiles): void {
  const [x, w, y] = bufs;
  if (l.kernel === 'conv2d') conv2d(rt, x, w, null, y, l.g, { tiles });
  else if (l.kernel === 'conv2dGradInput') conv2dGradInput(rt, y, w, x, l.g, { tiles });
  else conv2dGradWeight(rt, x, y, w, l.g, { tiles });
}

/** Median GPU time (ms) of `reps` launches after one untimed launch (which compiles the pipeline). */
async function timeLaunch(rt: GpuRuntime, l: ConvLaunch, bufs: GPUBuffer[], tiles: GemmTiles, reps: number): Promise<number> {
  rt.beginOp('tiles-warmup');
  try {
    launchKernel(rt, l, bufs, tiles);
  } finally {
    void rt.endOp();
  }
  const times: Promise<{ gpuMs?: number }>[] = [];
  for (let r = 0; r < reps; r++) {
    rt.beginOp(`${l.kernel} ${tiles.bm}x${tiles.bn}x${tiles.bk}/${tiles.tm}`, true);
    try {
      launchKernel(rt, l, bufs, tiles);
    } finally {
      times.push(rt.endOp());
    }
  }
  rt.flush();
  const ms = (await Promise.all(times)).map((t) => t.gpuMs);
  await rt.sync();
  if (ms.some((t) => t === undefined)) throw new Error('tiles: no GPU time came back (the adapter needs timestamp-query)');
  return median(ms as number[]);
}

/** The median GPU time of launch l with each tile shape (on scratch buffers of its sizes). */
export async function timeCandidates(rt: GpuRuntime, l: ConvLaunch, candidates: readonly GemmTiles[], reps: number): Promise<TileTiming[]> {
  const g = l.g;
  const sizes = [g.batch * g.inChannels * g.inHeight * g.inWidth, g.outChannels * g.inChannels * g.kernelH * g.kernelW, g.batch * g.outChannels * g.outHeight * g.outWidth];
  const bufs = sizes.map((s) => rt.acquire(Math.max(4, 4 * s)));
  try {
    const timings: TileTiming[] = [];
    for (const tiles of candidates) timings.push({ tiles, gpuMs: await timeLaunch(rt, l, bufs, tiles, reps) });
    return timings;
  } finally {
    for (const b of bufs) rt.release(b);
  }
}

export interface TilesOptions {
  model: 'AESc' | 'AE';
  size: number;
  batch: number;
  channels: number;
  reps: number;
  maxSeconds: number;
  out: string | null;
}

export function tilesOptionsFromArgs(argv: string[]): TilesOptions {
  const { values } = parseArgs({
    args: argv, strict: true,
    options: {
      model: { type: 'string' }, size: { type: 'string' }, batch: { type: 'string' }, channels: { type: 'string' },
      reps: { type: 'string' }, 'max-seconds': { type: 'string' }, out: { type: 'string' },
    },
  });
  return {
    model: modelArg(values.model), size: intArg('size', values.size, 256, 16), batch: intArg('batch', values.batch, 8),
    channels: intArg('channels', values.channels, 16), reps: intArg('reps', values.reps, 5),
    maxSeconds: intArg('max-seconds', values['max-seconds'], 120, 0),
    out: values.out ?? path.join('bench', 'results', 'tiles-webgpu.json'),
  };
}

const fmtTiles = (t: GemmTiles): string => `${t.bm}x${t.bn}x${t.bk}${t.tm === 8 ? '/8' : ''}`;

export async function runTiles(o: TilesOptions): Promise<TilesReport> {
  const be = await sg.useBackend('webgpu');
  if (!(be instanceof WebGPUBackend)) throw new Error('tiles: needs the webgpu backend');
  if (!be.rt.hasTimestamps) throw new Error(`tiles: the adapter (${be.describe()}) has no timestamp-query, so kernels cannot be timed`);
  const t0 = performance.now();

  // One traced step gives the launches.
  const stepper = esannStepper(be, o);
  const { result: loss, trace } = sg.traced(() => stepper.record());
  await loss.item();
  loss.dispose();
  await trace.settle();
  stepper.dispose();
  await be.sync();
  const launches = convLaunches(trace.entries);

  const rt = be.rt;
  const results: LaunchResult[] = [];
  let swept = 0;
  const report = (complete: boolean): TilesReport => {
    const pickMs = results.reduce((s, r) => s + r.count * r.pickMs, 0);
    const bestMs = results.reduce((s, r) => s + r.count * r.best.gpuMs, 0);
    const head = ['kernel', 'ops', 'n', 'M x N x K', 'GFLOP', 'pick', 'computed/useful', 'pick ms', 'fastest', 'fastest ms', 'pick/fastest', 'tried'];
    const cells = results.map((r) => [
      r.kernel, r.ops.join(' '), String(r.count), `${r.m} x ${r.n} x ${r.k}`, (r.flops / 1e9).toFixed(3), fmtTiles(r.pick),
      (r.pickFlops / r.flops).toFixed(2), r.pickMs.toFixed(3),
      fmtTiles(r.best.tiles), r.best.gpuMs.toFixed(3), (r.pickMs / r.best.gpuMs).toFixed(2), String(r.timings.length),
    ]);
    return {
      kind: 'tiles', date: new Date().toISOString(), machine: machineInfo(be.describe()),
      settings: { model: o.model, size: o.size, batch: o.batch, channels: o.channels, reps: o.reps, maxSeconds: o.maxSeconds },
      complete, launches: results,
      summary: {
        launches: results.reduce((s, r) => s + r.count, 0), distinct: results.length, swept, pickMs, bestMs,
        pickOverBest: pickMs / bestMs, seconds: (performance.now() - t0) / 1000,
        usefulFlops: results.reduce((s, r) => s + r.count * r.flops, 0), pickFlops: results.reduce((s, r) => s + r.count * r.pickFlops, 0),
      },
      table: formatTable(head, cells),
    };
  };
  for (const l of launches) {
    const { m, n } = convTileProblem(l.kernel, l.g);
    const pick = chooseTiles(m, n);
    const outOfTime = (performance.now() - t0) / 1000 > o.maxSeconds;
    if (!outOfTime) swept++;
    const timings = await timeCandidates(rt, l, outOfTime ? [pick] : tileCandidates(m, n), o.reps);
    const best = timings.reduce((a, b) => (b.gpuMs < a.gpuMs ? b : a));
    results.push({ ...l, pick, pickFlops: 2 * convTileWork(l.kernel, l.g, pick), timings, pickMs: timings[0].gpuMs, best });
    // Written after every launch: a run stopped from outside (a timeout) keeps what it measured.
    if (o.out !== null) writeFileAtomic(o.out, JSON.stringify(report(false), null, 2) + '\n');
  }
  const r = report(true);
  if (o.out !== null) writeFileAtomic(o.out, JSON.stringify(r, null, 2) + '\n');
  return r;
}

export function describeTiles(r: TilesReport): string {
  const s = r.summary, o = r.settings;
  return `${r.machine.device}\nesann ${o.model} ${o.size}x${o.size}, batch ${o.batch}, base width ${o.channels}: ${s.launches} convolution launches `
    + `(${s.distinct} distinct, ${s.swept} swept), tiles BMxBNxBK (/8: 8 rows per thread), median of ${o.reps}\n${r.table}\n\n`
    + `the step's convolutions: ${s.pickMs.toFixed(3)} ms with chooseTiles' picks, ${s.bestMs.toFixed(3)} ms with the fastest shape per launch `
    + `(picks/fastest ${s.pickOverBest.toFixed(3)}); the picks compute ${(s.pickFlops / 1e9).toFixed(2)} GFLOP for ${(s.usefulFlops / 1e9).toFixed(2)} useful `
    + `(tile padding included); ${s.seconds.toFixed(1)} s`;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const o = tilesOptionsFromArgs(process.argv.slice(2));
  const r = await runTiles(o);
  process.stdout.write(`\n${describeTiles(r)}\n${o.out !== null ? `wrote ${o.out}\n` : ''}`);
  process.exit(0);
}
