/**
 * The WebGPU matmul and convolution kernels (src/engine/webgpu/kernels/conv.ts, shaders/matmul.wgsl,
 * conv2d*.wgsl) against the CPU reference kernels (src/engine/cpu/conv.ts, run in float64 on the same
 * float32 inputs), on random geometries drawn by fast-check: odd sizes, strides 1-3 (unequal),
 * paddings 0-2 (asymmetric), kernels 1-5, implied negative bottom/right padding (as transposed
 * convolutions with output padding produce), channel counts that are not multiples of the tile
 * sizes, batch 1-3; plus every tile shape chooseTiles returns, one other shape with the tile loops
 * unrolled as on a GPU (software adapters get rolled loops by default, see ConvOptions.rolled),
 * split-K with one to 45 chunks, the tiles loaded a step ahead (prefetch), and strides larger than the kernel
 * (input rows no window touches).
 * Outputs start as NaN (poisoned), so an unwritten element fails.
 *
 * Run time on lavapipe is mostly pipeline compilation (~1 s per pipeline, 20 pipelines: about 25 s
 * with a cold Mesa shader cache, a few seconds with a warm one).
 *
 * Tolerance: max |gpu - cpu| <= 1e-5 * max |cpu| (float32 accumulation over K <= ~2000 products of
 * values in [-1, 1]; the rounding error grows like sqrt(K) * 6e-8 relative to the largest output).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Conv2dGeometry } from '../src/engine/backend.js';
import * as cpu from '../src/engine/cpu/conv.js';
import {
  checkTiles, chooseTiles, conv2d, tilesValid, convSplit, convTileProblem, convTileWork, conv2dGradInput, conv2dGradWeight, matmul, type ConvKernel, type ConvOptions, type GemmTiles,
} from '../src/engine/webgpu/kernels/conv.js';
import { download, haveGpu, inOp as op, poisoned, rtOrThrow, upload } from './webgpu/gpu.js';
import { expectClose, fillSeeded } from './helpers/numeric.js';
import { convSizes, geometryArb as convGeometryArb } from './helpers/conv-cases.js';

const GPU = await haveGpu();

const TOL = 1e-5;

/** Deterministic values in [-1, 1), rounded to float32. */
function randomValues(size: number, seed: number): Float32Array {
  return fillSeeded(new Float32Array(size), seed);
}



type Which = 'forward' | 'gradInput' | 'gradWeight';

/** Runs the chosen convolution kernels on the GPU and on the CPU and compares them. */
async function checkConv(g: Conv2dGeometry, seed: number, opts: ConvOptions = {}, which: readonly Which[] = ['forward', 'gradInput', 'gradWeight']): Promise<void> {
  const rt = await rtOrThrow();
  const n = convSizes(g);
  const x = randomValues(n.x, seed);
  const w = randomValues(n.w, seed + 1);
  const bias = seed % 2 === 0 ? randomValues(g.outChannels, seed + 2) : null;
  const dy = randomValues(n.y, seed + 3);
  const what = `${JSON.stringify(g)} ${JSON.stringify(opts)}`;
  const bufs = [upload(rt, x), upload(rt, w), upload(rt, bias ?? [0]), upload(rt, dy)];
  const [xb, wb, bb, dyb] = bufs;
  const f64 = (a: Float32Array) => Float64Array.from(a);

  if (which.includes('forward')) {
    const out = poisoned(rt, n.y);
    op(rt, 'conv2d', () => conv2d(rt, xb, wb, bias ? bb : null, out, g, opts));
    const want = new Float64Array(n.y);
    cpu.conv2dForward(f64(x), f64(w), bias ? f64(bias) : null, want, g);
    expectClose(await download(rt, out, n.y), want, TOL, `conv2d ${what}${bias ? ' bias' : ''}`, 1e-6);
    rt.release(out);
  }
  if (which.includes('gradInput')) {
    const dx = poisoned(rt, n.x);
    op(rt, 'conv2dGradInput', () => conv2dGradInput(rt, dyb, wb, dx, g, opts));
    const want = new Float64Array(n.x);
    cpu.conv2dGradInput(f64(dy), f64(w), want, g);
    expectClose(await download(rt, dx, n.x), want, TOL, `conv2dGradInput ${what}`, 1e-6);
    rt.release(dx);
  }
  if (which.includes('gradWeight')) {
    const dw = poisoned(rt, n.w);
    op(rt, 'conv2dGradWeight', () => conv2dGradWeight(rt, xb, dyb, dw, g, opts));
    const want = new Float64Array(n.w);
    cpu.conv2dGradWeight(f64(x), f64(dy), want, g);
    expectClose(await download(rt, dw, n.w), want, TOL, `conv2dGradWeight ${what}`, 1e-6);
    rt.release(dw);
  }
  for (const b of bufs) rt.release(b);
}

interface MatmulCase { batch: number; m: number; k: number; n: number; transA: boolean; transB: boolean }

async function checkMatmul(p: MatmulCase, seed: number, opts: ConvOptions = {}): Promise<void> {
  const rt = await rtOrThrow();
  const a = randomValues(p.batch * p.m * p.k, seed);
  const b = randomValues(p.batch * p.k * p.n, seed + 1);
  const [ab, bb] = [upload(rt, a), upload(rt, b)];
  const out = poisoned(rt, p.batch * p.m * p.n);
  op(rt, 'matmul', () => matmul(rt, ab, bb, out, p.batch, p.m, p.k, p.n, p.transA, p.transB, opts));
  const want = new Float64Array(p.batch * p.m * p.n);
  cpu.matmul(Float64Array.from(a), Float64Array.from(b), want, p.batch, p.m, p.k, p.n, p.transA, p.transB);
  expectClose(await download(rt, out, p.batch * p.m * p.n), want, TOL, `matmul ${JSON.stringify(p)} ${JSON.stringify(opts)}`, 1e-6);
  for (const buf of [ab, bb, out]) rt.release(buf);
}

/** Random geometry; bottom/right padding is implied by the output size and may be negative. */
const geometryArb = convGeometryArb({ maxIn: 20, maxOut: 40, maxSide: 13, maxPad: 2 });

function geom(batch: number, inChannels: number, inHeight: number, inWidth: number, outChannels: number,
  kernelH: number, kernelW: number, strideH: number, strideW: number, padTop: number, padLeft: number,
  padBottom: number, padRight: number): Conv2dGeometry {
  return {
    batch, inChannels, inHeight, inWidth, outChannels, kernelH, kernelW, strideH, strideW, padTop, padLeft,
    outHeight: Math.floor((inHeight + padTop + padBottom - kernelH) / strideH) + 1,
    outWidth: Math.floor((inWidth + padLeft + padRight - kernelW) / strideW) + 1,
  };
}

/**
 * A tile shape chooseTiles never returns (8 rows per thread, 32 threads, BK = 4), run with the tile loops
 * unrolled as on a GPU (the other tests use the rolled loops that software adapters get by default).
 */
const ODD_TILES: ConvOptions = { tiles: { bm: 32, bn: 32, bk: 4, tm: 8 }, rolled: false };

/**
 * Tile shapes with 8 columns per thread (TN = 8), which chooseTiles does not pick: 8 x 8 per thread on 128 x 128
 * tiles (256 threads), 4 x 8 on 32 x 64 (64 threads, BK = 4: the B tile takes 4 rows of slots), and 8 x 8 on
 * 64 x 32 (32 threads: each thread loads 2 vec4 slots of A and 2 of B per step).
 */
const WIDE_TILES: readonly GemmTiles[] = [
  { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8 },
  { bm: 32, bn: 64, bk: 4, tm: 4, tn: 8 },
  { bm: 64, bn: 32, bk: 8, tm: 8, tn: 8 },
];

describe('chooseTiles', () => {
  const threads = (t: GemmTiles) => (t.bm / t.tm) * (t.bn / (t.tn ?? 4));
  const padded = (x: number, tile: number) => Math.ceil(x / tile) * tile;

  it('gives valid tiles of 32-256 threads whose padding past M is under 2x (4 rows at least), 8 columns per thread where valid', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 1 << 22 }), (m, n) => {
      const t = chooseTiles(m, n);
      checkTiles(t);
      expect(threads(t)).toBeGreaterThanOrEqual(32);
      expect(threads(t)).toBeLessThanOrEqual(256);
      expect(padded(m, t.bm)).toBeLessThanOrEqual(Math.max(4, 2 * m - 2));
      // A narrower tile of the same rows (as many threads at 4 columns each) would have padded N less only if this
      // one pads at most an eighth.
      for (let bn = t.bn / 2; bn >= 32 && threads({ ...t, bn, tn: 4 }) >= 32; bn /= 2) {
        if (padded(n, bn) < padded(n, t.bn)) expect(8 * padded(n, t.bn)).toBeLessThanOrEqual(9 * n);
      }
      // The tile goes to half the threads with 8 columns each wherever that is valid and leaves a warp.
      if (t.tn !== 8) expect(tilesValid({ ...t, tn: 8 }) && threads({ ...t, tn: 8 }) >= 32).toBe(false);
    }), { numRuns: 2000 });
  });

  it('fits the narrow products of the esann step (1-channel output, 1-channel input)', () => {
    // The decoder's last conv (16 -> 1 channel) and its weight gradient: 4-row tiles, not 16.
    expect(chooseTiles(1, 8 * 256 * 256)).toMatchObject({ bm: 4 });
    expect(chooseTiles(1, 16 * 5 * 5)).toMatchObject({ bm: 4 });
    // The first conv's weight gradient (16 x 1*5*5): 32 columns, not 256.
    expect(chooseTiles(16, 25)).toMatchObject({ bm: 16, bn: 32 });
    // 32 x 16*5*5: 64 columns (448 computed) rather than 128 (512).
    expect(chooseTiles(32, 400)).toMatchObject({ bm: 32, bn: 64 });
    // Wide products keep the widest tile, with 8 columns per thread.
    expect(chooseTiles(32, 8 * 126 * 126)).toEqual({ bm: 32, bn: 128, bk: 16, tm: 4, tn: 8 });
    expect(chooseTiles(256, 8 * 13 * 13)).toEqual({ bm: 128, bn: 64, bk: 16, tm: 8, tn: 8 });
    // 4-row tiles have one thread row, which the B-tile loads of 8 columns per thread cannot use.
    expect(chooseTiles(1, 8 * 256 * 256)).toEqual({ bm: 4, bn: 512, bk: 4, tm: 4 });
  });
});

describe('convSplit', () => {
  const kernels: ConvKernel[] = ['conv2d', 'conv2dGradInput', 'conv2dGradWeight'];
  /** K of a kernel's GEMM (the largest stride phase's, for the input gradient). */
  const depth = (kernel: ConvKernel, g: Conv2dGeometry) => kernel === 'conv2d' ? g.inChannels * g.kernelH * g.kernelW
    : kernel === 'conv2dGradInput' ? g.outChannels * Math.ceil(g.kernelH / g.strideH) * Math.ceil(g.kernelW / g.strideW)
    : g.batch * g.outHeight * g.outWidth;

  it('covers K with chunks of whole BK steps; splits conv2d and the input gradient only below 256 workgroups', () => {
    fc.assert(fc.property(convGeometryArb({ maxIn: 300, maxOut: 300, maxSide: 40, maxPad: 2 }), fc.constantFrom(...kernels), (g, kernel) => {
      const { m, n } = convTileProblem(kernel, g);
      const t = chooseTiles(m, n);
      const k = depth(kernel, g);
      const { kChunk, splits, workgroups } = convSplit(kernel, g, t);
      // A CPU-emulated adapter splits only the weight gradient.
      const soft = convSplit(kernel, g, t, { software: true });
      expect(soft.splits).toBe(kernel === 'conv2dGradWeight' ? splits : 1);
      expect(kChunk % t.bk).toBe(0);
      expect(splits).toBe(Math.max(1, Math.ceil(k / kChunk)));
      const unsplit = workgroups / splits;
      expect(unsplit).toBe(Math.ceil(m / t.bm) * Math.ceil(n / t.bn) * (kernel === 'conv2dGradInput' ? g.strideH * g.strideW : 1));
      if (splits > 1) {
        expect(kChunk, 'each split does 8 BK steps at least').toBeGreaterThanOrEqual(8 * t.bk);
        expect(unsplit).toBeLessThan(kernel === 'conv2dGradWeight' ? 512 : 256);
      }
    }), { numRuns: 3000 });
  });

  it('fills a large GPU on the deep layers of the esann step at 256x256, batch 8', () => {
    // l5: 128 -> 256 channels, 5x5 stride 2, 29x29 -> 13x13. Its forward conv is 256 x 1352 outputs on 128 x 64 tiles:
    // 44 workgroups, split 6 ways (K = 3200, 200 BK steps: chunks of 34) to 264.
    const l5 = { batch: 8, inChannels: 128, inHeight: 29, inWidth: 29, outChannels: 256, outHeight: 13, outWidth: 13, kernelH: 5, kernelW: 5, strideH: 2, strideW: 2, padTop: 0, padLeft: 0 };
    expect(convSplit('conv2d', l5, chooseTiles(256, 8 * 13 * 13))).toEqual({ kChunk: 34 * 16, splits: 6, workgroups: 264, steps: 200 });
    // Its input gradient: 4 stride phases of 128 x 8*15*15 on 128 x 64 tiles (116 workgroups), the largest phase
    // K = 256 * 3 * 3: 3 splits.
    expect(convSplit('conv2dGradInput', l5, chooseTiles(128, 8 * 15 * 15))).toMatchObject({ splits: 3, workgroups: 348 });
    // Its weight gradient: 256 x 3200 on 128 x 64 tiles, 100 workgroups, K = 1352: 6 splits (for 512).
    expect(convSplit('conv2dGradWeight', l5, chooseTiles(256, 3200))).toMatchObject({ splits: 6, workgroups: 600 });
    // l3: 32 -> 64 channels, 127x127 -> 61x61: 466 workgroups, no split.
    const l3 = { ...l5, inChannels: 32, inHeight: 125, inWidth: 125, outChannels: 64, outHeight: 61, outWidth: 61 };
    expect(convSplit('conv2d', l3, chooseTiles(64, 8 * 61 * 61))).toEqual({ kChunk: 800, splits: 1, workgroups: 466, steps: 50 });
  });

  it('takes a forced chunk, and rejects one that is not a positive multiple of BK', () => {
    const g = { batch: 1, inChannels: 10, inHeight: 8, inWidth: 8, outChannels: 4, outHeight: 8, outWidth: 8, kernelH: 3, kernelW: 3, strideH: 1, strideW: 1, padTop: 1, padLeft: 1 };
    const t = { bm: 4, bn: 64, bk: 4, tm: 4 };
    expect(convSplit('conv2d', g, t, { kChunk: 8 })).toEqual({ kChunk: 8, splits: 12, workgroups: 12, steps: 23 }); // K = 90
    expect(convSplit('conv2d', g, t, { kChunk: 400, software: true })).toMatchObject({ splits: 1 });
    expect(() => convSplit('conv2d', g, t, { kChunk: 6 })).toThrow(/conv2d: kChunk 6 is not a positive multiple of BK = 4/);
    expect(() => convSplit('conv2dGradWeight', g, t, { kChunk: 0 })).toThrow(/kChunk 0/);
  });
});

describe('convTileWork', () => {
  const unit = { bm: 1, bn: 1, bk: 1, tm: 4 };

  it('with 1 x 1 x 1 tiles, is the GEMM each kernel computes (the input gradient counted pixel by pixel)', () => {
    fc.assert(fc.property(convGeometryArb({ maxIn: 4, maxOut: 4, maxSide: 9, maxPad: 2 }), (g) => {
      const macs = g.batch * g.outChannels * g.outHeight * g.outWidth * g.inChannels * g.kernelH * g.kernelW;
      expect(convTileWork('conv2d', g, unit)).toBe(macs);
      expect(convTileWork('conv2dGradWeight', g, unit)).toBe(macs);
      // Each dx pixel sums over the kernel taps of its stride phase (whether or not they land inside dy).
      let want = 0;
      for (let iy = 0; iy < g.inHeight; iy++) {
        for (let ix = 0; ix < g.inWidth; ix++) {
          let ky = 0, kx = 0;
          for (let t = 0; t < g.kernelH; t++) if ((iy + g.padTop - t) % g.strideH === 0) ky++;
          for (let t = 0; t < g.kernelW; t++) if ((ix + g.padLeft - t) % g.strideW === 0) kx++;
          want += g.batch * g.inChannels * g.outChannels * ky * kx;
        }
      }
      expect(convTileWork('conv2dGradInput', g, unit)).toBe(want);
    }), { numRuns: 300 });
  });

  it('counts every row, column and step of a partly filled tile', () => {
    const g = { batch: 1, inChannels: 3, inHeight: 10, inWidth: 10, outChannels: 5, outHeight: 10, outWidth: 10, kernelH: 3, kernelW: 3, strideH: 1, strideW: 1, padTop: 1, padLeft: 1 };
    // conv2d: M = 5 -> 8 rows, N = 100 -> 128 columns, K = 27 -> 32.
    expect(convTileWork('conv2d', g, { bm: 8, bn: 64, bk: 8, tm: 4 })).toBe(8 * 128 * 32);
  });
});

describe.skipIf(!GPU)('webgpu conv kernels', () => {
  it('conv2d, conv2dGradInput and conv2dGradWeight match the CPU kernels on random geometries', async () => {
    await fc.assert(fc.asyncProperty(geometryArb, fc.nat(1000), async (g, seed) => checkConv(g, seed)), { numRuns: 30 });
  });

  it('handle the edge geometries', async () => {
    const cases: Conv2dGeometry[] = [
      geom(2, 3, 9, 7, 5, 3, 3, 2, 2, 1, 1, -1, -1),  // transposed-conv style: negative bottom/right padding
      geom(1, 4, 7, 8, 3, 1, 1, 3, 2, 0, 0, 0, 0),    // stride > kernel: dx rows/columns no window touches
      geom(2, 5, 6, 11, 7, 2, 4, 3, 1, 2, 0, -2, 1),  // unequal strides, asymmetric padding
      geom(3, 2, 5, 5, 9, 5, 5, 1, 1, 0, 0, 0, 0),    // 1x1 output (kernel = image)
      geom(1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0),    // everything 1
      geom(1, 6, 4, 4, 2, 3, 3, 1, 1, 2, 2, 2, 2),    // padding wider than the image in places
      geom(1, 3, 10, 10, 4, 4, 4, 3, 3, 0, 0, 1, -2), // kernel and stride not dividing the image
    ];
    for (const [i, g] of cases.entries()) await checkConv(g, 100 + i);
    // Stride 300 x 300: 90,000 phases, more z layers than one grid takes (65535): the input gradient is launched
    // in parts, each from its zBase.
    await checkConv(geom(1, 2, 600, 2, 3, 1, 1, 300, 300, 0, 0, 0, 0), 110, {}, ['gradInput']);
  });

  it('other tile shapes, unrolled loops, and M above the largest tile give the same results', async () => {
    await checkConv(geom(2, 7, 9, 11, 37, 3, 2, 2, 1, 1, 0, 1, 1), 200, ODD_TILES);
    // 133 output and 70 input channels: several 128-row tiles, 8 rows per thread (chooseTiles' largest shape).
    expect(chooseTiles(133, 30)).toEqual({ bm: 128, bn: 32, bk: 16, tm: 8 });
    await checkConv(geom(1, 70, 6, 5, 133, 3, 3, 1, 2, 1, 1, 1, 0), 250);
    // 1 output channel and 3 input channels, unrolled as on a GPU: the 4-row tiles (all three kernels) and the
    // narrowed columns of the weight gradient (N = 3*5*5 = 75 on 128 columns).
    expect(chooseTiles(1, 75)).toMatchObject({ bm: 4, bn: 128 });
    await checkConv(geom(2, 3, 11, 9, 1, 5, 5, 2, 2, 2, 2, 2, 1), 240, { rolled: false });
    // 50 input channels: the input gradient on 64-row tiles (the random geometries have at most 20).
    await checkConv(geom(2, 50, 7, 6, 3, 3, 3, 2, 1, 1, 1, 0, 1), 260, {}, ['gradInput']);
  });

  it('conv2dGradWeight sums split-K chunks (one chunk per BK step, 15, 3 and 1 chunks)', async () => {
    const g = geom(3, 5, 12, 10, 6, 3, 3, 1, 1, 1, 1, 1, 1); // K = 3*12*10 = 360
    const tiles = chooseTiles(6, 45);
    for (const kChunk of [tiles.bk, 3 * tiles.bk, 128, 1024]) await checkConv(g, 300, { tiles, kChunk }, ['gradWeight']);
  });

  it('conv2d and conv2dGradInput sum split-K chunks: bias added once, stride phases with empty chunks', async () => {
    // conv2d: K = 9*3*3 = 81 (6 BK steps of 16): a chunk per step, 2 chunks, 1; even seeds have a bias, which
    // the reduce pass adds (the chunks must not). Stride 2, kernel 3: the input gradient's phases have 4, 2, 2
    // and 1 taps, so K = 12*4 = 48 in the largest phase and 12 in the smallest, whose later chunks are empty.
    const g = geom(2, 9, 11, 10, 12, 3, 3, 2, 2, 1, 1, 1, 0);
    const tiles = { bm: 16, bn: 64, bk: 16, tm: 4 };
    for (const [i, kChunk] of [16, 48, 96].entries()) await checkConv(g, 320 + 2 * i, { tiles, kChunk }, ['forward', 'gradInput']);
    await checkConv(g, 327, { tiles, kChunk: 16 }, ['forward']); // no bias
    // Unrolled, as on a GPU.
    await checkConv(g, 330, { tiles, kChunk: 32, rolled: false }, ['forward', 'gradInput']);
  });

  it('all three kernels match the CPU with K split into random chunks, on random geometries', async () => {
    // kChunk a multiple of 16: a multiple of every BK chooseTiles gives (4, 8, 16).
    await fc.assert(fc.asyncProperty(geometryArb, fc.nat(1000), fc.integer({ min: 1, max: 4 }), async (g, seed, steps) =>
      checkConv(g, seed, { kChunk: 16 * steps })), { numRuns: 12 });
  });

  it('all three kernels give the same results with the tiles loaded a step ahead (prefetch), split or not, rolled or not', async () => {
    await fc.assert(fc.asyncProperty(geometryArb, fc.nat(1000), fc.integer({ min: 0, max: 4 }), async (g, seed, steps) =>
      checkConv(g, seed, { prefetch: true, ...(steps > 0 ? { kChunk: 16 * steps } : {}) })), { numRuns: 8 });
    await checkConv(geom(2, 7, 9, 11, 37, 3, 2, 2, 1, 1, 0, 1, 1), 210, { ...ODD_TILES, prefetch: true });
    // Stride phases with empty chunks (no step at all), unrolled.
    await checkConv(geom(2, 9, 11, 10, 12, 3, 3, 2, 2, 1, 1, 1, 0), 322, { tiles: { bm: 16, bn: 64, bk: 16, tm: 4 }, kChunk: 16, prefetch: true, rolled: false });
  });

  it('8 columns per thread (TN = 8) give the same results: every kernel, rolled or not, split or not, prefetched', async () => {
    for (const tiles of WIDE_TILES) checkTiles(tiles);
    // 133 output and 70 input channels: two row tiles of the 128 x 128 shape, unrolled as on a GPU.
    await checkConv(geom(1, 70, 6, 5, 133, 3, 3, 1, 2, 1, 1, 1, 0), 500, { tiles: WIDE_TILES[0], rolled: false });
    await fc.assert(fc.asyncProperty(geometryArb, fc.nat(1000), fc.nat(WIDE_TILES.length - 1), fc.integer({ min: 0, max: 3 }), fc.boolean(),
      async (g, seed, i, steps, prefetch) => {
        const tiles = WIDE_TILES[i];
        await checkConv(g, seed, { tiles, prefetch, ...(steps > 0 ? { kChunk: 8 * steps } : {}) });
      }), { numRuns: 10 });
    await checkConv(geom(2, 9, 11, 10, 12, 3, 3, 2, 2, 1, 1, 1, 0), 510, { tiles: WIDE_TILES[1], kChunk: 8, prefetch: true, rolled: false });
  });

  it('matmul matches the CPU kernel for every transpose combination', async () => {
    const arb = fc.record({
      batch: fc.integer({ min: 1, max: 3 }),
      m: fc.integer({ min: 1, max: 70 }),
      k: fc.integer({ min: 1, max: 70 }),
      n: fc.integer({ min: 1, max: 70 }),
      transA: fc.boolean(),
      transB: fc.boolean(),
    });
    await fc.assert(fc.asyncProperty(arb, fc.nat(1000), async (p, seed) => checkMatmul(p, seed)), { numRuns: 30 });
    for (const [i, [transA, transB]] of [[false, false], [true, false], [false, true], [true, true]].entries()) {
      await checkMatmul({ batch: 2, m: 45, k: 37, n: 83, transA, transB }, 400 + i, ODD_TILES);
      await checkMatmul({ batch: 2, m: 45, k: 37, n: 83, transA, transB }, 410 + i, { tiles: WIDE_TILES[i % WIDE_TILES.length] });
    }
  });

  it('rejects tile shapes that break the kernels\' constraints', async () => {
    const rt = await rtOrThrow();
    const buf = poisoned(rt, 16);
    expect(() => matmul(rt, buf, buf, buf, 1, 2, 2, 2, false, false, { tiles: { bm: 64, bn: 64, bk: 64, tm: 4 } })).toThrow(/invalid GEMM tiles/);
    expect(() => matmul(rt, buf, buf, buf, 1, 2, 2, 2, false, false, { tiles: { bm: 64, bn: 64, bk: 16, tm: 2 } })).toThrow(/invalid GEMM tiles/);
    expect(() => matmul(rt, buf, buf, buf, 1, 2, 2, 2, false, false, { tiles: { bm: 64, bn: 64, bk: 16, tm: 4, tn: 6 } })).toThrow(/invalid GEMM tiles/);
    // 36 columns do not split into threads of 8.
    expect(() => conv2d(rt, buf, buf, null, buf, geom(1, 1, 2, 2, 1, 1, 1, 1, 1, 0, 0, 0, 0), { tiles: { bm: 8, bn: 36, bk: 4, tm: 4, tn: 8 } })).toThrow(/invalid GEMM tiles/);
    rt.release(buf);
  });
});
