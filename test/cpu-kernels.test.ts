/**
 * The CPU GEMM / convolution kernels (src/engine/cpu/gemm.ts, conv.ts, threads.ts) against naive
 * direct loops written here, on random geometries drawn by fast-check: odd sizes, strides 1-3,
 * zero and non-zero padding, kernels 1-5, and negative implied bottom/right padding (input rows
 * and columns that no output reads, as transposed convolutions with output padding produce).
 * Both float64 (relative tolerance 1e-10) and float32 (1e-4), plain typed arrays and
 * SharedArrayBuffer-backed ones on the worker-thread path. Outputs start filled with NaN, so a
 * kernel that forgets to write an element fails.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Conv2dGeometry } from '../src/engine/backend.js';
import { allocArray, type DType, type FloatArray } from '../src/engine/dtype.js';
import { gemm } from '../src/engine/cpu/gemm.js';
import { chunking, conv2dForward, conv2dGradInput, conv2dGradWeight, matmul, usesDirectConv } from '../src/engine/cpu/conv.js';
import {
  getParallelMinFlops, getThreadCount, parallelRunCount, runParallel, setParallelMinFlops, setThreadCount,
} from '../src/engine/cpu/threads.js';
import { expectClose, fillSeeded } from './helpers/numeric.js';
import { convSizes, convTaps, geometryArb as convGeometryArb } from './helpers/conv-cases.js';

// ---------------------------------------------------------------------------------------------
// Naive references (float64 accumulation, direct loops straight from the definitions)
// ---------------------------------------------------------------------------------------------

function convRef(x: FloatArray, w: FloatArray, bias: FloatArray | null, g: Conv2dGeometry): Float64Array {
  const out = new Float64Array(g.batch * g.outChannels * g.outHeight * g.outWidth);
  const plane = g.outHeight * g.outWidth;
  if (bias) for (let i = 0; i < out.length; i++) out[i] = bias[Math.floor(i / plane) % g.outChannels];
  convTaps(g, (yi, xi, wi) => (out[yi] += x[xi] * w[wi]));
  return out;
}

function gradInputRef(dy: FloatArray, w: FloatArray, g: Conv2dGeometry): Float64Array {
  const dx = new Float64Array(convSizes(g).x);
  convTaps(g, (yi, xi, wi) => (dx[xi] += dy[yi] * w[wi]));
  return dx;
}

function gradWeightRef(x: FloatArray, dy: FloatArray, g: Conv2dGeometry): Float64Array {
  const dw = new Float64Array(convSizes(g).w);
  convTaps(g, (yi, xi, wi) => (dw[wi] += dy[yi] * x[xi]));
  return dw;
}

function matmulRef(a: FloatArray, b: FloatArray, batch: number, m: number, k: number, n: number, tA: boolean, tB: boolean): Float64Array {
  const out = new Float64Array(batch * m * n);
  for (let bi = 0; bi < batch; bi++) for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let p = 0; p < k; p++) {
      const av = tA ? a[bi * m * k + p * m + i] : a[bi * m * k + i * k + p];
      const bv = tB ? b[bi * k * n + j * k + p] : b[bi * k * n + p * n + j];
      s += av * bv;
    }
    out[(bi * m + i) * n + j] = s;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

function randomArray(dtype: DType, size: number, seed: number, shared: boolean): FloatArray {
  return fillSeeded(allocArray(dtype, size, shared), seed);
}

function nanArray(dtype: DType, size: number, shared: boolean): FloatArray {
  const a = allocArray(dtype, size, shared);
  a.fill(NaN);
  return a;
}

const tolerance = (dtype: DType): number => (dtype === 'float64' ? 1e-10 : 1e-4);

/** Random convolution geometry; bottom/right padding is implied and may be negative. */
const geometryArb = convGeometryArb({ maxIn: 4, maxOut: 5, maxSide: 11, maxPad: 3 });

/** Run all three convolution kernels on g and compare them with the references. */
function checkConv(g: Conv2dGeometry, dtype: DType, shared: boolean, seed: number, withBias: boolean): void {
  const n = convSizes(g);
  const x = randomArray(dtype, n.x, seed, shared);
  const w = randomArray(dtype, n.w, seed + 1, shared);
  const bias = withBias ? randomArray(dtype, g.outChannels, seed + 2, shared) : null;
  const dy = randomArray(dtype, n.y, seed + 3, shared);
  const tol = tolerance(dtype);
  const what = `${dtype}${shared ? ' shared' : ''} ${JSON.stringify(g)}`;

  const out = nanArray(dtype, n.y, shared);
  conv2dForward(x, w, bias, out, g);
  expectClose(out, convRef(x, w, bias, g), tol, `forward ${what}`);

  const dx = nanArray(dtype, n.x, shared);
  conv2dGradInput(dy, w, dx, g);
  expectClose(dx, gradInputRef(dy, w, g), tol, `gradInput ${what}`);

  const dw = nanArray(dtype, n.w, shared);
  conv2dGradWeight(x, dy, dw, g);
  expectClose(dw, gradWeightRef(x, dy, g), tol, `gradWeight ${what}`);
}

const matmulArb = fc.record({
  batch: fc.integer({ min: 1, max: 3 }),
  m: fc.integer({ min: 1, max: 37 }),
  k: fc.integer({ min: 1, max: 37 }),
  n: fc.integer({ min: 1, max: 37 }),
  transA: fc.boolean(),
  transB: fc.boolean(),
});

function checkMatmul(p: { batch: number; m: number; k: number; n: number; transA: boolean; transB: boolean }, dtype: DType, shared: boolean, seed: number): void {
  const a = randomArray(dtype, p.batch * p.m * p.k, seed, shared);
  const b = randomArray(dtype, p.batch * p.k * p.n, seed + 1, shared);
  const out = nanArray(dtype, p.batch * p.m * p.n, shared);
  matmul(a, b, out, p.batch, p.m, p.k, p.n, p.transA, p.transB);
  expectClose(out, matmulRef(a, b, p.batch, p.m, p.k, p.n, p.transA, p.transB), tolerance(dtype), `matmul ${dtype} ${JSON.stringify(p)}`);
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

describe('gemm', () => {
  it('handles offsets, strides, accumulate and ragged edges (blocked and small paths)', () => {
    for (const [m, n, k] of [[3, 5, 7], [33, 29, 300], [70, 9, 513], [5, 130, 40], [2, 50, 70], [50, 3, 70]]) {
      // (A float32 C is staged in doubles on the blocked path, and copied in first when accumulating.)
      for (const [dtype, accumulate] of [['float64', false], ['float64', true], ['float32', false], ['float32', true]] as const) {
        // A stored transposed with a leading gap, B row-major with padded rows, C with padded rows.
        const lda = m + 3, ldb = n + 2, ldc = n + 5;
        const a = randomArray(dtype, 4 + k * lda, 1, false);
        const b = randomArray(dtype, 2 + k * ldb, 2, false);
        const c0 = randomArray(dtype, 1 + m * ldc, 3, false);
        const c = c0.slice();
        gemm(m, n, k, a, 4, 1, lda, b, 2, ldb, 1, c, 1, ldc, accumulate);
        for (let i = 0; i < m; i++) for (let j = 0; j < ldc; j++) {
          const idx = 1 + i * ldc + j;
          if (j >= n) { expect(c[idx]).toBe(c0[idx]); continue; } // padding untouched
          let s = accumulate ? c0[idx] : 0;
          for (let p = 0; p < k; p++) s += a[4 + p * lda + i] * b[2 + p * ldb + j];
          expect(Math.abs(c[idx] - s)).toBeLessThan((dtype === 'float64' ? 1e-11 : 1e-6) * Math.max(1, Math.abs(s)));
        }
        expect(c[0]).toBe(c0[0]);
      }
    }
  });

  it('overwrites NaN in C when not accumulating, including k = 0', () => {
    const c = new Float32Array(6).fill(NaN);
    gemm(2, 3, 0, new Float32Array(0), 0, 0, 1, new Float32Array(0), 0, 3, 1, c, 0, 3, false);
    expect(Array.from(c)).toEqual([0, 0, 0, 0, 0, 0]);
  });
});

describe('matmul vs naive loops', () => {
  for (const dtype of ['float64', 'float32'] as const) {
    it(`${dtype}, random shapes and transposes`, () => {
      fc.assert(fc.property(matmulArb, fc.integer({ min: 1, max: 1e6 }), (p, seed) => checkMatmul(p, dtype, false, seed)), { numRuns: 60 });
    });
  }
});

describe('conv2d kernels vs naive loops (calling thread)', () => {
  for (const dtype of ['float64', 'float32'] as const) {
    it(`${dtype}, random geometries`, () => {
      fc.assert(fc.property(geometryArb, fc.integer({ min: 1, max: 1e6 }), fc.boolean(), (g, seed, withBias) => {
        checkConv(g, dtype, false, seed, withBias);
      }), { numRuns: 120 });
    });
  }

  it('a transposed-convolution geometry (stride 2, output padding: last input row and column never read)', () => {
    // 7x7 input, 3x3 kernel, stride 2, pad 1: the 'natural' output is 4x4, but we ask for 3x3,
    // so input row/column 6 is never read and its dx must be exactly 0.
    const g: Conv2dGeometry = { batch: 2, inChannels: 3, inHeight: 7, inWidth: 7, outChannels: 4, kernelH: 3, kernelW: 3,
      outHeight: 3, outWidth: 3, strideH: 2, strideW: 2, padTop: 1, padLeft: 1 };
    checkConv(g, 'float64', false, 7, true);
    const dx = nanArray('float64', convSizes(g).x, false);
    conv2dGradInput(randomArray('float64', convSizes(g).y, 9, false), randomArray('float64', convSizes(g).w, 8, false), dx, g);
    for (let n = 0; n < 2; n++) for (let c = 0; c < 3; c++) for (let i = 0; i < 7; i++) {
      expect(dx[((n * 3 + c) * 7 + 6) * 7 + i]).toBe(0);
      expect(dx[((n * 3 + c) * 7 + i) * 7 + 6]).toBe(0);
    }
  });

  /** A geometry on the GEMM path, cut into the given chunks, checked against the reference. */
  const checkChunked = (g: Conv2dGeometry, chunks: ReturnType<typeof chunking>, dtype: 'float32' | 'float64', seed: number): void => {
    expect(usesDirectConv(g)).toBe(false);
    expect(chunking(g)).toEqual(chunks);
    checkConv(g, dtype, false, seed, true);
  };

  it('chunks tall images into several row blocks', () => {
    // inChannels*kernel*outWidth large enough that an image is processed in several row chunks.
    const g: Conv2dGeometry = { batch: 2, inChannels: 8, inHeight: 70, inWidth: 300, outChannels: 3, kernelH: 5, kernelW: 5,
      outHeight: 68, outWidth: 150, strideH: 1, strideW: 2, padTop: 1, padLeft: 2 };
    checkChunked(g, { images: 1, rows: 4, count: 17, units: 34 }, 'float32', 11);
  });

  it('a last row chunk shorter than the others (39 rows as 20 + 19)', () => {
    const g: Conv2dGeometry = { batch: 2, inChannels: 8, inHeight: 39, inWidth: 91, outChannels: 3, kernelH: 3, kernelW: 3,
      outHeight: 39, outWidth: 91, strideH: 1, strideW: 1, padTop: 1, padLeft: 1 };
    checkChunked(g, { images: 1, rows: 20, count: 2, units: 4 }, 'float64', 14);
    checkChunked(g, { images: 1, rows: 20, count: 2, units: 4 }, 'float32', 15);
  });

  it('puts small images side by side in one product, in groups of (nearly) equal size', () => {
    // 200 x 225 columns per image: two fit in a column matrix, so 5 images are 3 products (2, 2 and 1 images).
    const g: Conv2dGeometry = { batch: 5, inChannels: 8, inHeight: 33, inWidth: 33, outChannels: 6, kernelH: 5, kernelW: 5,
      outHeight: 15, outWidth: 15, strideH: 2, strideW: 2, padTop: 0, padLeft: 0 };
    checkChunked(g, { images: 2, rows: 15, count: 1, units: 3 }, 'float64', 12);
    // A 1x1 output (the esann encoder's deepest layer at 64x64): all 8 images in one product.
    const deep: Conv2dGeometry = { batch: 8, inChannels: 16, inHeight: 5, inWidth: 5, outChannels: 32, kernelH: 5, kernelW: 5,
      outHeight: 1, outWidth: 1, strideH: 2, strideW: 2, padTop: 0, padLeft: 0 };
    checkChunked(deep, { images: 8, rows: 1, count: 1, units: 1 }, 'float32', 13);
  });
});

describe('direct convolution kernels (conv-direct.ts) vs naive loops', () => {
  // A geometry for the checks below: 5x5 (or kh x kw), stride s, 'same'-style padding p, [n, c, h, w] -> o channels.
  const geo = (n: number, c: number, h: number, w: number, o: number, k: number, s: number, p: number): Conv2dGeometry => ({
    batch: n, inChannels: c, inHeight: h, inWidth: w, outChannels: o, kernelH: k, kernelW: k, strideH: s, strideW: s,
    padTop: p, padLeft: p, outHeight: Math.floor((h + 2 * p - k) / s) + 1, outWidth: Math.floor((w + 2 * p - k) / s) + 1,
  });

  it('are used for one output channel, and for 5-wide stride-1 rows with few channels', () => {
    // The paper's layers with one channel on a side: the decoder's last conv and the first layer (esann, 5x5 'same').
    expect(usesDirectConv(geo(8, 16, 64, 64, 1, 5, 1, 2))).toBe(true);
    expect(usesDirectConv(geo(8, 1, 64, 64, 16, 5, 1, 2))).toBe(true);
    expect(usesDirectConv(geo(8, 16, 64, 64, 16, 5, 1, 2))).toBe(true);
    // More channels: im2col + GEMM.
    expect(usesDirectConv(geo(8, 16, 64, 64, 32, 5, 1, 2))).toBe(false);
    // Stride-2 or 3x3 rows take the direct kernels only for one output channel.
    expect(usesDirectConv(geo(8, 8, 64, 64, 16, 5, 2, 0))).toBe(false);
    expect(usesDirectConv(geo(8, 8, 64, 64, 1, 5, 2, 0))).toBe(true);
    expect(usesDirectConv(geo(8, 8, 64, 64, 2, 3, 1, 1))).toBe(false);
    expect(usesDirectConv(geo(8, 8, 64, 64, 1, 3, 1, 1))).toBe(true);
  });

  const cases = [
    ['5-wide stride-1 rows (the fast row loops)', { maxIn: 6, maxOut: 6, maxSide: 14, maxPad: 3, fixed: { kernelW: 5, strideW: 1 } }],
    ['one output channel, any kernel and stride (the plain row loops)', { maxIn: 4, maxOut: 1, maxSide: 11, maxPad: 3, fixed: { outChannels: 1 } }],
  ] as const;
  for (const [name, arb] of cases) {
    for (const dtype of ['float64', 'float32'] as const) {
      it(`${dtype}, ${name}, random geometries`, () => {
        fc.assert(fc.property(convGeometryArb(arb), fc.integer({ min: 1, max: 1e6 }), fc.boolean(), (g, seed, withBias) => {
          expect(usesDirectConv(g)).toBe(true); // (up to 6 x 6 channels: within DIRECT_MAX_CHANNEL_PRODUCT)
          checkConv(g, dtype, false, seed, withBias);
        }), { numRuns: 100 });
      });
    }
  }

  it('images wider than the kernel, with padding on every side, and a 1-channel input', () => {
    checkConv(geo(2, 3, 23, 37, 1, 5, 1, 2), 'float64', false, 41, true);
    checkConv(geo(2, 1, 20, 19, 4, 5, 1, 2), 'float32', false, 42, true);
    checkConv(geo(1, 2, 17, 16, 1, 4, 2, 1), 'float64', false, 43, false);
    checkConv(geo(3, 2, 12, 13, 1, 5, 3, 0), 'float64', false, 44, true);
  });
});

describe('worker threads (SharedArrayBuffer arrays)', () => {
  const savedThreads = getThreadCount();
  const savedMin = getParallelMinFlops();
  beforeAll(() => setThreadCount(2));
  afterAll(() => {
    setParallelMinFlops(savedMin);
    setThreadCount(savedThreads);
  });

  it('random geometries on the threaded path (threshold forced to 0)', () => {
    setParallelMinFlops(0);
    try {
      const before = parallelRunCount();
      for (const dtype of ['float64', 'float32'] as const) {
        fc.assert(fc.property(geometryArb, fc.integer({ min: 1, max: 1e6 }), fc.boolean(), (g, seed, withBias) => {
          checkConv(g, dtype, true, seed, withBias);
        }), { numRuns: 40 });
        fc.assert(fc.property(matmulArb, fc.integer({ min: 1, max: 1e6 }), (p, seed) => checkMatmul(p, dtype, true, seed)), { numRuns: 30 });
      }
      expect(parallelRunCount()).toBeGreaterThan(before);
    } finally {
      setParallelMinFlops(savedMin);
    }
  });

  it('larger problems take the threaded path with the default threshold', () => {
    const before = parallelRunCount();
    // Each of these is about 4-5 MFLOP per kernel, above the default threshold for two threads.
    // Batch 3 (odd, uneven split), stride 2, 'same'-style padding with a negative bottom/right.
    checkConv({ batch: 3, inChannels: 8, inHeight: 33, inWidth: 31, outChannels: 16, kernelH: 5, kernelW: 5,
      outHeight: 16, outWidth: 15, strideH: 2, strideW: 2, padTop: 1, padLeft: 2 }, 'float32', true, 21, true);
    // Batch 1: forward / weight grad split row chunks of the one image, input grad splits channels.
    checkConv({ batch: 1, inChannels: 8, inHeight: 48, inWidth: 45, outChannels: 16, kernelH: 3, kernelW: 3,
      outHeight: 48, outWidth: 45, strideH: 1, strideW: 1, padTop: 1, padLeft: 1 }, 'float64', true, 22, false);
    checkMatmul({ batch: 1, m: 123, k: 150, n: 131, transA: true, transB: false }, 'float32', true, 23);
    checkMatmul({ batch: 5, m: 33, k: 100, n: 140, transA: false, transB: true }, 'float64', true, 24);
    // Matrix-vector-like: too few rows to split, so the columns are split.
    checkMatmul({ batch: 1, m: 2, k: 300, n: 4001, transA: false, transB: false }, 'float32', true, 25);
    // The direct kernels: (image, channel) units over the threads; the weight gradient sums per-thread partials.
    // Image groups (2, 2 and 1 images) split over the threads; the input gradient's parts (images 0-1 and 2-4)
    // group their own images.
    checkConv({ batch: 5, inChannels: 8, inHeight: 33, inWidth: 33, outChannels: 6, kernelH: 5, kernelW: 5,
      outHeight: 15, outWidth: 15, strideH: 2, strideW: 2, padTop: 0, padLeft: 0 }, 'float32', true, 28, true);
    const last: Conv2dGeometry = { batch: 3, inChannels: 8, inHeight: 48, inWidth: 47, outChannels: 1, kernelH: 5, kernelW: 5,
      outHeight: 48, outWidth: 47, strideH: 1, strideW: 1, padTop: 2, padLeft: 2 }; // 2.7 MFLOP
    expect(usesDirectConv(last)).toBe(true);
    checkConv(last, 'float32', true, 27, true);
    expect(parallelRunCount() - before).toBe(15);
  });

  it('non-shared outputs keep a kernel on the calling thread; small non-shared inputs are copied to the workers', () => {
    const before = parallelRunCount();
    checkMatmul({ batch: 1, m: 200, k: 200, n: 200, transA: false, transB: false }, 'float32', false, 25);
    expect(parallelRunCount()).toBe(before);
    // Shared input and output, plain (small) weight and bias: still threaded, still right.
    const g: Conv2dGeometry = { batch: 4, inChannels: 8, inHeight: 30, inWidth: 30, outChannels: 16, kernelH: 3, kernelW: 3,
      outHeight: 28, outWidth: 28, strideH: 1, strideW: 1, padTop: 0, padLeft: 0 };
    const n = convSizes(g);
    const x = randomArray('float32', n.x, 31, true);
    const w = randomArray('float32', n.w, 32, false);
    const bias = randomArray('float32', g.outChannels, 33, false);
    const out = nanArray('float32', n.y, true);
    conv2dForward(x, w, bias, out, g);
    expectClose(out, convRef(x, w, bias, g), 1e-4, 'forward with plain weight and bias');
    const dw = nanArray('float32', n.w, false); // written by the calling thread only
    const dy = randomArray('float32', n.y, 34, true);
    conv2dGradWeight(x, dy, dw, g);
    expectClose(dw, gradWeightRef(x, dy, g), 1e-4, 'gradWeight into a plain dw');
    expect(parallelRunCount() - before).toBe(2);
  });

  it('a failing worker task surfaces as a thrown Error', () => {
    expect(() => runParallel([{ kernel: 'noSuchKernel', args: [] }], () => {})).toThrow(/noSuchKernel/);
    // The pool still works afterwards.
    checkMatmul({ batch: 2, m: 64, k: 200, n: 200, transA: false, transB: false }, 'float64', true, 26);
  });
});
