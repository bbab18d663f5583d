/**
 * `npm run bench:tiles`: are chooseTiles' picks the fastest on this adapter? Every convolution kernel launch of one
 * esann training step, timed (GPU timestamps) with the tile shape chooseTiles picks and with the shapes around it.
 *
 * The launches come from a traced step of the model (conv2d, convTranspose2d and their gradients, each mapped to
 * the kernel that runs it: conv2d, conv2dGradInput or conv2dGradWeight, with its geometry); equal launches are
 * timed once and counted as often as the step makes them. Candidates per launch: chooseTiles' pick with convSplit's
 * K split, then the pick split 1, 2, 4, 8 and 16 ways (split-K: more workgroups for a large GPU, and a reduce
 * pass), the pick with its tiles prefetched a step ahead (the shaders' PREFETCH), then the row counts of the pick
 * and the next smaller one (more workgroups when there are few), each at every width down to 32 columns (and 32
 * threads), with 4 columns per thread at its BK and twice that, and with 8 columns per thread from twice its widest
 * width at its BK, twice and half that, where the kernels' limits allow, with convSplit's split. Each candidate:
 * one untimed launch (pipeline compiled), then --reps timed ones, median (a split launch's time includes its
 * reduce pass).
 *
 * Options: TILES_OPTIONS below (`--help` prints them).
 *
 * Launches are swept the most work (count x FLOPs) first. Prints one line per launch (pick vs fastest, and the
 * FLOPs the pick computes, tile padding included, over the useful ones: convTileWork) and the step's total
 * convolution time with the picks and with the fastest shape per launch; writes the JSON. Needs an adapter with
 * timestamp queries.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as sg from '../src/engine/index.js';
import type { Conv2dGeometry } from '../src/engine/backend.js';
import { formatTable } from '../src/engine/audit/trace.js';
import { writeFileAtomic } from '../src/engine/io/atomic.js';
import { WebGPUBackend } from '../src/engine/webgpu/backend.js';
import {
  chooseTiles, conv2d, conv2dGradInput, conv2dGradWeight, convSplit, convTileProblem, convTileWork, TILE_ROWS, tileTn, tileWidths, tilesValid,
  type ConvKernel, type GemmTiles,
} from '../src/engine/webgpu/kernels/conv.js';
import type { GpuRuntime } from '../src/engine/webgpu/runtime.js';
import { benchMain, type BenchOptions, ESANN_STEP_OPTIONS, esannStepArgs, intArg, parseBenchArgs } from './args.js';
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

/** A way to run a launch: a tile shape, the K per split (convSplit's when absent), and whether tiles are prefetched. */
export interface TileCandidate {
  tiles: GemmTiles;
  kChunk?: number;
  prefetch?: boolean;
}

export interface TileTiming {
  tiles: GemmTiles;
  /** The K per split and the number of splits the launch ran with (1: no split, no reduce pass). */
  kChunk: number;
  splits: number;
  /** The shaders' PREFETCH: each step's tiles loaded during the previous step's multiply-adds. */
  prefetch: boolean;
  gpuMs: number;
}

export interface LaunchResult extends ConvLaunch {
  pick: GemmTiles;
  /** The splits of K convSplit gives the pick. */
  pickSplits: number;
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
  /**
   * The launches timed so far, the most work first (count x FLOPs; in step order where equal), so that a sweep cut
   * short by --max-seconds has covered the launches that weigh most in the step.
   */
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

/**
 * The candidates timed for a launch: chooseTiles' pick with convSplit's split first, then the pick split 1, 2, 4, 8
 * and 16 ways (where each split keeps a BK step at least, and differs from those before), the pick with its split
 * and the tiles prefetched, then every other shape of tileCandidates with convSplit's split.
 */
export function launchCandidates(l: ConvLaunch, software: boolean): TileCandidate[] {
  const { m, n } = convTileProblem(l.kernel, l.g);
  const [pick, ...others] = tileCandidates(m, n);
  const { splits: pickSplits, steps } = convSplit(l.kernel, l.g, pick, { software });
  const out: TileCandidate[] = [{ tiles: pick }];
  const seen = new Set([pickSplits]);
  for (const want of [1, 2, 4, 8, 16]) {
    if (want > steps) break;
    const kChunk = Math.ceil(steps / want) * pick.bk;
    const { splits } = convSplit(l.kernel, l.g, pick, { kChunk });
    if (seen.has(splits)) continue;
    seen.add(splits);
    out.push({ tiles: pick, kChunk });
  }
  out.push({ tiles: pick, prefetch: true });
  return [...out, ...others.map((tiles) => ({ tiles }))];
}

/**
 * chooseTiles' pick first, then: its rows and the next smaller, every width down to 32 columns (and 32 threads),
 * with 4 columns per thread at BK and 2 BK, with 8 columns per thread at BK, 2 BK and BK / 2, widths from twice the
 * rows' widest (the same threads as 4 columns per thread at the widest).
 */
export function tileCandidates(m: number, n: number): GemmTiles[] {
  const pick = chooseTiles(m, n);
  const i = TILE_ROWS.findIndex((r) => r.bm === pick.bm && r.tm === pick.tm);
  const rows = [TILE_ROWS[i], ...(i > 0 ? [TILE_ROWS[i - 1]] : [])];
  const out: GemmTiles[] = [pick];
  const key = (t: GemmTiles) => `${t.bm}/${t.bn}/${t.bk}/${t.tm}/${tileTn(t)}`;
  const seen = new Set([key(pick)]);
  const shapes = [...rows, ...rows.map((r): GemmTiles => ({ ...r, bn: 2 * r.bn, tn: 8 }))]; // TILE_ROWS: 4 columns per thread
  for (const r of shapes) {
    for (const bn of tileWidths(r)) {
      for (const bk of tileTn(r) === 8 ? [r.bk, 2 * r.bk, r.bk / 2] : [r.bk, 2 * r.bk]) {
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

function launchKernel(rt: GpuRuntime, l: ConvLaunch, bufs: GPUBuffer[], c: TileCandidate): void {
  const [x, w, y] = bufs;
  const opts = { tiles: c.tiles, kChunk: c.kChunk, prefetch: c.prefetch };
  if (l.kernel === 'conv2d') conv2d(rt, x, w, null, y, l.g, opts);
  else if (l.kernel === 'conv2dGradInput') conv2dGradInput(rt, y, w, x, l.g, opts);
  else conv2dGradWeight(rt, x, y, w, l.g, opts);
}

/** Median GPU time (ms) of `reps` launches after one untimed launch (which compiles the pipeline). */
async function timeLaunch(rt: GpuRuntime, l: ConvLaunch, bufs: GPUBuffer[], c: TileCandidate, reps: number): Promise<number> {
  rt.beginOp('tiles-warmup');
  try {
    launchKernel(rt, l, bufs, c);
  } finally {
    void rt.endOp();
  }
  const times: Promise<{ gpuMs?: number }>[] = [];
  for (let r = 0; r < reps; r++) {
    rt.beginOp(`${l.kernel} ${fmtTiles(c.tiles, 1, c.prefetch)}`, true);
    try {
      launchKernel(rt, l, bufs, c);
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

/** The median GPU time of launch l with each candidate (on scratch buffers of its sizes). */
export async function timeCandidates(rt: GpuRuntime, l: ConvLaunch, candidates: readonly TileCandidate[], reps: number): Promise<TileTiming[]> {
  const g = l.g;
  const sizes = [g.batch * g.inChannels * g.inHeight * g.inWidth, g.outChannels * g.inChannels * g.kernelH * g.kernelW, g.batch * g.outChannels * g.outHeight * g.outWidth];
  const bufs = sizes.map((s) => rt.acquire(Math.max(4, 4 * s)));
  try {
    const timings: TileTiming[] = [];
    for (const c of candidates) {
      const { kChunk, splits } = convSplit(l.kernel, l.g, c.tiles, { kChunk: c.kChunk, software: rt.software });
      timings.push({ tiles: c.tiles, kChunk, splits, prefetch: c.prefetch ?? false, gpuMs: await timeLaunch(rt, l, bufs, c, reps) });
    }
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

export const TILES_OPTIONS: BenchOptions = {
  ...ESANN_STEP_OPTIONS,
  reps: { type: 'string', help: 'timed launches per candidate, after an untimed one; the median (default 5)' },
  'max-seconds': { type: 'string', help: "stop sweeping after S seconds; the launches not reached keep only chooseTiles' time (default 120)" },
  out: { type: 'string', help: 'default bench/results/tiles-webgpu.json (rewritten after each launch, `complete` false until the end)' },
};

export function tilesOptionsFromArgs(argv: string[]): TilesOptions {
  const a = parseBenchArgs(argv, TILES_OPTIONS);
  return {
    ...esannStepArgs(a), reps: intArg('reps', a.str('reps'), 5),
    maxSeconds: intArg('max-seconds', a.str('max-seconds'), 120, 0),
    out: a.str('out') ?? path.join('bench', 'results', 'tiles-webgpu.json'),
  };
}

/** BMxBNxBK, then the outputs per thread unless 4 x 4 (/8: 8 x 4; /4x8, /8x8), the splits of K (kS) and pf (prefetched). */
export const fmtTiles = (t: GemmTiles, splits = 1, prefetch = false): string => {
  const perThread = tileTn(t) === 4 ? (t.tm === 8 ? '/8' : '') : `/${t.tm}x${tileTn(t)}`;
  return `${t.bm}x${t.bn}x${t.bk}${perThread}${splits > 1 ? ` k${splits}` : ''}${prefetch ? ' pf' : ''}`;
};

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
      r.kernel, r.ops.join(' '), String(r.count), `${r.m} x ${r.n} x ${r.k}`, (r.flops / 1e9).toFixed(3), fmtTiles(r.pick, r.pickSplits),
      (r.pickFlops / r.flops).toFixed(2), r.pickMs.toFixed(3),
      fmtTiles(r.best.tiles, r.best.splits, r.best.prefetch), r.best.gpuMs.toFixed(3), (r.pickMs / r.best.gpuMs).toFixed(2), String(r.timings.length),
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
  const byWork = launches.map((l, i) => ({ l, i })).sort((a, b) => b.l.count * b.l.flops - a.l.count * a.l.flops || a.i - b.i);
  for (const { l } of byWork) {
    const { m, n } = convTileProblem(l.kernel, l.g);
    const pick = chooseTiles(m, n);
    const outOfTime = (performance.now() - t0) / 1000 > o.maxSeconds;
    if (!outOfTime) swept++;
    const timings = await timeCandidates(rt, l, outOfTime ? [{ tiles: pick }] : launchCandidates(l, rt.software), o.reps);
    const best = timings.reduce((a, b) => (b.gpuMs < a.gpuMs ? b : a));
    results.push({
      ...l, pick, pickSplits: timings[0].splits, pickFlops: 2 * convTileWork(l.kernel, l.g, pick), timings, pickMs: timings[0].gpuMs, best,
    });
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
    + `(${s.distinct} distinct, ${s.swept} swept), tiles BMxBNxBK (/8: 8 x 4 outputs per thread, /4x8 and /8x8: 8 columns per thread, else 4 x 4; kS: K split S ways; pf: tiles prefetched), median of ${o.reps}\n${r.table}\n\n`
    + `the step's convolutions: ${s.pickMs.toFixed(3)} ms with chooseTiles' picks, ${s.bestMs.toFixed(3)} ms with the fastest shape per launch `
    + `(picks/fastest ${s.pickOverBest.toFixed(3)}); the picks compute ${(s.pickFlops / 1e9).toFixed(2)} GFLOP for ${(s.usefulFlops / 1e9).toFixed(2)} useful `
    + `(tile padding included); ${s.seconds.toFixed(1)} s`;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchMain('dist/bench/tiles.js', "each convolution launch of one webgpu training step, timed with chooseTiles' pick and the shapes around it.", TILES_OPTIONS, async (argv) => {
    const o = tilesOptionsFromArgs(argv);
    const r = await runTiles(o);
    process.stdout.write(`\n${describeTiles(r)}\n${o.out !== null ? `wrote ${o.out}\n` : ''}`);
  });
  process.exit(0);
}
