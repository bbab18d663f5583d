/**
 * The WebGPU upsampling and BatchNorm2d kernels (src/engine/webgpu/kernels/norm.ts, shaders/upsample_nearest*.wgsl,
 * shaders/batchnorm_*.wgsl) against the CPU reference kernels (src/engine/cpu/upsample.ts, batchnorm.ts) run in
 * float64 on the same f32-rounded inputs, on random shapes drawn by fast-check: odd sizes, batch 1, channels 1..7,
 * scales 1..4 (unequal), training and eval, with and without running statistics, momentum 0 / 0.1 / 0.5 / 1, and
 * first-level reduction chunks from 1 value to the default 4096 (so the two-level reductions run with one chunk,
 * many chunks, and more chunks than a merge workgroup has threads). Outputs start filled with NaN, so an element a
 * kernel forgets to write fails. Running statistics are compared after the in-place update.
 *
 * Tolerances (f32 against f64):
 *   upsample forward: exact (a copy).
 *   other elementwise outputs: 1e-5 x the largest magnitude of the reference output.
 *   per-channel sums (dgamma, dbeta): 1e-5 x sum of |terms| of that channel (the condition of a sum; the sums
 *     themselves may be near zero by cancellation).
 *   mean: 1e-5 x max|x|; invStd, running var: 1e-5 relative.
 *   dx (training): 1e-5 x (max|dx| + max|gamma*invStd*dy|): dx = gamma*invStd*(dy - mean(dy) - xhat*mean(dy*xhat)) is
 *     a difference of terms up to |gamma*invStd*dy| in size, so its f32 rounding scales with them, not with dx.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { BatchNorm2dParams } from '../src/engine/backend.js';
import { upsampleNearest2dBackward, upsampleNearest2dForward } from '../src/engine/cpu/upsample.js';
import { batchNorm2dBackward, batchNorm2dForward } from '../src/engine/cpu/batchnorm.js';
import { batchNorm2d, batchNorm2dGrad, normTuning, upsampleNearest2d, upsampleNearest2dGrad } from '../src/engine/webgpu/kernels/norm.js';
import type { GpuRuntime } from '../src/engine/webgpu/runtime.js';
import { download, haveGpu, poisoned, rtOrThrow, upload } from './webgpu/gpu.js';

const GPU = await haveGpu();
const DEFAULT_CHUNK = normTuning.reduceChunk;

/** Deterministic pseudo-random values (mulberry32), rounded to f32 so CPU and GPU see the same inputs. */
function randomF32(seed: number, n: number, lo = -1, hi = 1): Float64Array {
  let s = seed >>> 0;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out[i] = Math.fround(lo + (hi - lo) * u);
  }
  return out;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Every element finite and within tol[i] (or one tol) of the reference. */
function expectClose(name: string, got: Float32Array, want: ArrayLike<number>, tol: number | ((i: number) => number)): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const t = typeof tol === 'number' ? tol : tol(i);
    const err = Math.abs(got[i] - want[i]);
    if (!(err <= t)) throw new Error(`${name}[${i}]: got ${got[i]}, want ${want[i]} (|err| ${err} > tol ${t})`);
  }
}

/** Runs fn, then releases the buffers. (Kernels are called between rt.beginOp and rt.endOp, as the backend does.) */
async function withBuffers<T>(rt: GpuRuntime, bufs: GPUBuffer[], fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } finally {
    for (const b of bufs) rt.release(b);
  }
}

afterEach(() => {
  normTuning.reduceChunk = DEFAULT_CHUNK;
});

describe.skipIf(!GPU)('webgpu upsampleNearest2d / upsampleNearest2dGrad', () => {
  const shape = fc.record({
    n: fc.integer({ min: 1, max: 3 }), c: fc.integer({ min: 1, max: 5 }),
    h: fc.integer({ min: 1, max: 9 }), w: fc.integer({ min: 1, max: 9 }),
    sh: fc.integer({ min: 1, max: 4 }), sw: fc.integer({ min: 1, max: 4 }), seed: fc.integer(),
  });

  it('matches the CPU kernels on random shapes and unequal scales', async () => {
    const rt = await rtOrThrow();
    await fc.assert(fc.asyncProperty(shape, async ({ n, c, h, w, sh, sw, seed }) => {
      const inSize = n * c * h * w;
      const outSize = inSize * sh * sw;
      const x = randomF32(seed, inSize);
      const dy = randomF32(seed + 1, outSize);
      const wantY = new Float64Array(outSize);
      upsampleNearest2dForward(x, wantY, n, c, h, w, sh, sw);
      const wantDx = new Float64Array(inSize);
      upsampleNearest2dBackward(dy, wantDx, n, c, h, w, sh, sw);

      const bx = upload(rt, x), by = poisoned(rt, outSize), bdy = upload(rt, dy), bdx = poisoned(rt, inSize);
      await withBuffers(rt, [bx, by, bdy, bdx], async () => {
        rt.beginOp('upsampleNearest2d');
        upsampleNearest2d(rt, bx, by, n, c, h, w, sh, sw);
        await rt.endOp();
        rt.beginOp('upsampleNearest2dGrad');
        upsampleNearest2dGrad(rt, bdy, bdx, n, c, h, w, sh, sw);
        await rt.endOp();
        expectClose('y', await download(rt, by, outSize), wantY, 0);
        expectClose('dx', await download(rt, bdx, inSize), wantDx, 1e-5 * maxAbs(wantDx));
      });
    }), { numRuns: 40 });
  });

  it('folds grids of more than 65535 workgroups into y', async () => {
    const rt = await rtOrThrow();
    // 1 x 2 x 1024 x 1024 upsampled 3 x 3: 18.9M outputs = 73728 workgroups of 256.
    const [n, c, h, w, sh, sw] = [1, 2, 1024, 1024, 3, 3];
    const inSize = n * c * h * w;
    const outSize = inSize * sh * sw;
    const x = randomF32(7, inSize);
    const wantY = new Float64Array(outSize);
    upsampleNearest2dForward(x, wantY, n, c, h, w, sh, sw);
    const bx = upload(rt, x), by = poisoned(rt, outSize);
    await withBuffers(rt, [bx, by], async () => {
      rt.beginOp('upsampleNearest2d');
      upsampleNearest2d(rt, bx, by, n, c, h, w, sh, sw);
      await rt.endOp();
      expectClose('y', await download(rt, by, outSize), wantY, 0);
    });
  });
});

interface BnCase {
  n: number; c: number; h: number; w: number;
  training: boolean; running: boolean; momentum: number; eps: number; chunk: number;
  offset: number; spread: number; seed: number;
}

const bnCase: fc.Arbitrary<BnCase> = fc.record({
  n: fc.integer({ min: 1, max: 3 }), c: fc.integer({ min: 1, max: 7 }),
  h: fc.integer({ min: 1, max: 9 }), w: fc.integer({ min: 1, max: 9 }),
  training: fc.boolean(), running: fc.boolean(),
  momentum: fc.constantFrom(0, 0.1, 0.5, 1),
  eps: fc.constantFrom(1e-5, 1e-3),
  chunk: fc.constantFrom(DEFAULT_CHUNK, 1, 5, 37, 256),
  offset: fc.constantFrom(0, -2, 3),
  spread: fc.constantFrom(0.5, 1, 2),
  seed: fc.integer(),
}).map((k) => ({ ...k, running: k.running || !k.training })); // eval needs running statistics

/** One batchNorm2d + batchNorm2dGrad case on CPU (float64) and GPU, compared. */
async function checkBatchNorm(rt: GpuRuntime, k: BnCase): Promise<void> {
  const { n, c, h, w, training, running, momentum, eps, chunk, offset, spread, seed } = k;
  normTuning.reduceChunk = chunk;
  const size = n * c * h * w;
  const m = n * h * w;
  const p: BatchNorm2dParams = { batch: n, channels: c, height: h, width: w, eps, momentum, training };
  const x = randomF32(seed, size, offset - spread, offset + spread);
  const gamma = randomF32(seed + 1, c, -2, 2);
  const beta = randomF32(seed + 2, c, -1, 1);
  const rm0 = randomF32(seed + 3, c, -1, 1);
  const rv0 = randomF32(seed + 4, c, 0.2, 3);
  const dy = randomF32(seed + 5, size);

  // CPU reference (float64), forward then backward from the CPU's saved statistics rounded to f32.
  const rm = rm0.slice(), rv = rv0.slice();
  const y = new Float64Array(size), mean = new Float64Array(c), invStd = new Float64Array(c);
  batchNorm2dForward(x, gamma, beta, running ? rm : null, running ? rv : null, y, mean, invStd, p);
  const meanF = mean.map(Math.fround), invStdF = invStd.map(Math.fround);
  const dx = new Float64Array(size), dgamma = new Float64Array(c), dbeta = new Float64Array(c);
  batchNorm2dBackward(dy, x, gamma, meanF, invStdF, dx, dgamma, dbeta, p);

  const bx = upload(rt, x), bg = upload(rt, gamma), bb = upload(rt, beta);
  const brm = running ? upload(rt, rm0) : null, brv = running ? upload(rt, rv0) : null;
  const by = poisoned(rt, size), bmean = poisoned(rt, c), binv = poisoned(rt, c);
  const bdy = upload(rt, dy), bmeanF = upload(rt, meanF), binvF = upload(rt, invStdF);
  const bdx = poisoned(rt, size), bdg = poisoned(rt, c), bdb = poisoned(rt, c);
  const all = [bx, bg, bb, by, bmean, binv, bdy, bmeanF, binvF, bdx, bdg, bdb, ...(brm && brv ? [brm, brv] : [])];
  await withBuffers(rt, all, async () => {
    rt.beginOp('batchNorm2d');
    batchNorm2d(rt, bx, bg, bb, brm, brv, by, bmean, binv, p);
    await rt.endOp();
    rt.beginOp('batchNorm2dGrad');
    batchNorm2dGrad(rt, bdy, bx, bg, bmeanF, binvF, bdx, bdg, bdb, p);
    await rt.endOp();

    const tag = JSON.stringify(k);
    const rel = (want: ArrayLike<number>) => (i: number) => 1e-5 * Math.abs(want[i]);
    try {
      expectClose('saveMean', await download(rt, bmean, c), mean, 1e-5 * maxAbs(x));
      expectClose('saveInvStd', await download(rt, binv, c), invStd, rel(invStd));
      expectClose('y', await download(rt, by, size), y, 1e-5 * maxAbs(y));
      if (brm && brv) {
        expectClose('runningMean', await download(rt, brm, c), rm, 1e-5 * Math.max(maxAbs(x), maxAbs(rm0)));
        expectClose('runningVar', await download(rt, brv, c), rv, rel(rv));
      }
      // Per-channel condition of the sums: sum |dy| and sum |dy * xhat|.
      const absDy = new Float64Array(c), absDyXhat = new Float64Array(c);
      const hw = h * w;
      for (let i = 0; i < size; i++) {
        const ch = Math.floor(i / hw) % c;
        absDy[ch] += Math.abs(dy[i]);
        absDyXhat[ch] += Math.abs(dy[i] * (x[i] - meanF[ch]) * invStdF[ch]);
      }
      expectClose('dbeta', await download(rt, bdb, c), dbeta, (i) => 1e-5 * absDy[i]);
      expectClose('dgamma', await download(rt, bdg, c), dgamma, (i) => 1e-5 * absDyXhat[i]);
      let kdy = 0;
      for (let i = 0; i < size; i++) kdy = Math.max(kdy, Math.abs(gamma[Math.floor(i / hw) % c] * invStdF[Math.floor(i / hw) % c] * dy[i]));
      expectClose('dx', await download(rt, bdx, size), dx, 1e-5 * (maxAbs(dx) + kdy));
    } catch (e) {
      throw new Error(`${(e as Error).message} in case ${tag} (M = ${m})`);
    }
  });
}

describe.skipIf(!GPU)('webgpu batchNorm2d / batchNorm2dGrad', () => {
  it('matches the CPU kernels on random shapes, modes and momenta', async () => {
    const rt = await rtOrThrow();
    await fc.assert(fc.asyncProperty(bnCase, (k) => checkBatchNorm(rt, k)), {
      numRuns: 60,
      examples: [
        // batch 1 with a single value per channel (training: variance 0, unbiased variance = biased)
        [{ n: 1, c: 3, h: 1, w: 1, training: true, running: true, momentum: 0.1, eps: 1e-5, chunk: DEFAULT_CHUNK, offset: 0, spread: 1, seed: 1 }],
        // batch 1 training with H*W > 1, several chunks
        [{ n: 1, c: 2, h: 3, w: 5, training: true, running: true, momentum: 0.5, eps: 1e-5, chunk: 4, offset: 0, spread: 1, seed: 2 }],
        [{ n: 1, c: 1, h: 7, w: 3, training: true, running: false, momentum: 0.1, eps: 1e-3, chunk: DEFAULT_CHUNK, offset: 3, spread: 2, seed: 3 }],
        [{ n: 2, c: 7, h: 5, w: 5, training: false, running: true, momentum: 0.1, eps: 1e-5, chunk: DEFAULT_CHUNK, offset: -2, spread: 1, seed: 4 }],
      ],
    });
  });

  it('reduces with more chunks than a merge workgroup has threads', async () => {
    const rt = await rtOrThrow();
    // M = 2*17*19 = 646 values per channel in chunks of 1: 646 partials per channel, > 256 merge threads.
    for (const training of [true, false]) {
      await checkBatchNorm(rt, { n: 2, c: 3, h: 17, w: 19, training, running: true, momentum: 0.1, eps: 1e-5, chunk: 1, offset: 1, spread: 1, seed: 11 });
    }
  });

  it('reduces a larger channel with the default chunking (several chunks of 4096)', async () => {
    const rt = await rtOrThrow();
    await checkBatchNorm(rt, { n: 3, c: 2, h: 41, w: 67, training: true, running: true, momentum: 0.1, eps: 1e-5, chunk: DEFAULT_CHUNK, offset: 0.5, spread: 1, seed: 12 });
  });

  it('folds more than 65535 first-level workgroups into y', async () => {
    const rt = await rtOrThrow();
    // M = 1*257*257 = 66049 values in chunks of 1: 66049 workgroups for the statistics and the gradient sums.
    await checkBatchNorm(rt, { n: 1, c: 1, h: 257, w: 257, training: true, running: true, momentum: 0.1, eps: 1e-5, chunk: 1, offset: 0, spread: 1, seed: 13 });
  });

  it('keeps the variance accurate for a large mean (no E[x^2] - E[x]^2 cancellation)', async () => {
    const rt = await rtOrThrow();
    // x = 1000 + U(-1, 1): in f32, E[x^2] - E[x]^2 would lose the variance (1/3) to rounding of E[x^2] = 1e6 (ulp 0.06).
    const [n, c, h, w] = [2, 2, 37, 41];
    const size = n * c * h * w;
    const p: BatchNorm2dParams = { batch: n, channels: c, height: h, width: w, eps: 1e-5, momentum: 1, training: true };
    const x = randomF32(21, size, 999, 1001);
    const gamma = new Float64Array(c).fill(1), beta = new Float64Array(c);
    const rm0 = new Float64Array(c), rv0 = new Float64Array(c).fill(1);
    const rm = rm0.slice(), rv = rv0.slice();
    const y = new Float64Array(size), mean = new Float64Array(c), invStd = new Float64Array(c);
    batchNorm2dForward(x, gamma, beta, rm, rv, y, mean, invStd, p);
    const bx = upload(rt, x), bg = upload(rt, gamma), bb = upload(rt, beta), brm = upload(rt, rm0), brv = upload(rt, rv0);
    const by = poisoned(rt, size), bmean = poisoned(rt, c), binv = poisoned(rt, c);
    await withBuffers(rt, [bx, bg, bb, brm, brv, by, bmean, binv], async () => {
      rt.beginOp('batchNorm2d');
      batchNorm2d(rt, bx, bg, bb, brm, brv, by, bmean, binv, p);
      await rt.endOp();
      // f32 rounding of x - mean (ulp(1000) = 6e-5) limits y to ~1e-4 absolute; the variance to ~1e-4 relative.
      expectClose('saveInvStd', await download(rt, binv, c), invStd, (i) => 1e-4 * invStd[i]);
      expectClose('runningVar', await download(rt, brv, c), rv, (i) => 1e-4 * rv[i]);
      expectClose('y', await download(rt, by, size), y, 2e-4 * maxAbs(y));
    });
  });

  it('rejects eval mode without running statistics', async () => {
    const rt = await rtOrThrow();
    const p: BatchNorm2dParams = { batch: 1, channels: 1, height: 1, width: 1, eps: 1e-5, momentum: 0.1, training: false };
    const d = rt.dummy();
    expect(() => batchNorm2d(rt, d, d, d, null, null, d, d, d, p)).toThrow(/running mean and variance/);
  });
});
