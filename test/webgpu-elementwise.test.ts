/**
 * The WebGPU elementwise / copy / reduction kernels (src/engine/webgpu/kernels/elementwise.ts, shaders/fill,
 * copy, unary, binary, reduce_sum, mse_loss, value_stats, adam) against the CPU reference kernels
 * (src/engine/cpu/elementwise.ts, the CPU backend's valueStats / mseLoss formulas, a plain JS Adam),
 * on shapes drawn by fast-check: ranks 0-11 (the shaders walk 8 axes; more take extra passes), odd sizes, size-1 and broadcast (stride 0) axes, permuted
 * and sliced operands, padded destinations. Every output starts filled with NaN (poisoned()), so an
 * element a kernel forgets to write fails.
 *
 * Tolerances (inputs are rounded to f32 first, the reference runs in float64):
 *   - fill, copy, relu-like and add/sub/mul selects: exact;
 *   - unary / binary: |gpu - ref| <= 1e-5 * max(1, max |ref|) (exp/log/pow/tanh are a few f32 ulps on
 *     GPUs; pow is exp2(p log2 x), whose error grows with |p log2 x| <= ~10 here);
 *   - reductions: |gpu - ref| <= 1e-5 * |scale| * max_o sum_r |x| (f32 rounding of a pairwise sum), plus
 *     sums of 127008 and 300001 positive values held to 2e-6 relative, which a serial f32 sum does not meet
 *     (measured on these inputs: 4.3e-6 and 8.5e-6; forcing one serial thread per output fails this test);
 *   - adam: 1e-5 relative to the largest magnitude of each of p, m, v after 5 steps.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { BinaryOp, UnaryOp } from '../src/engine/backend.js';
import { binaryKernel, copyKernel, reduceSumKernel, unaryKernel } from '../src/engine/cpu/elementwise.js';
import type { GpuRuntime } from '../src/engine/webgpu/runtime.js';
import { contiguousStrides } from '../src/engine/ops/util.js';
import { sizeOf } from '../src/engine/dtype.js';
import { adam, binary, copy, fill, mseLoss, reduceSum, splitScale, unary, valueStats } from '../src/engine/webgpu/kernels/elementwise.js';
import { download, haveGpu, inOp as op, poisoned, rtOrThrow, upload } from './webgpu/gpu.js';

const GPU = await haveGpu();

const int = (min: number, max: number): fc.Arbitrary<number> => fc.integer({ min, max });

/** Deterministic uniform [0, 1) generator (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n values uniform in [lo, hi), rounded to f32, as float64. */
function randomArray(seed: number, n: number, lo = -1, hi = 1): Float64Array {
  const r = rng(seed);
  return Float64Array.from(Float32Array.from({ length: n }, () => lo + (hi - lo) * r()));
}



function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) if (Number.isFinite(a[i])) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Elementwise check: NaN where ref is NaN, equal infinities, else |got - ref| <= tol. */
function expectClose(got: ArrayLike<number>, ref: ArrayLike<number>, tol: number, what: string): void {
  expect(got.length).toBe(ref.length);
  for (let i = 0; i < ref.length; i++) {
    const g = got[i], r = ref[i];
    if (Number.isNaN(r)) {
      if (!Number.isNaN(g)) throw new Error(`${what}: [${i}] got ${g}, want NaN`);
    } else if (!Number.isFinite(r)) {
      if (g !== r) throw new Error(`${what}: [${i}] got ${g}, want ${r}`);
    } else if (!(Math.abs(g - r) <= tol)) {
      throw new Error(`${what}: [${i}] got ${g}, want ${r} (|diff| ${Math.abs(g - r)} > ${tol})`);
    }
  }
}

/** A random permutation of 0..n-1. */
function permutation(r: () => number, n: number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

/**
 * Strides (and the storage size) of an operand of logical shape `shape` stored as a permutation of a
 * larger row-major array (slices: `extra` more elements per axis, starting at a random offset); axes in
 * `broadcast` get stride 0.
 */
function stridedOperand(r: () => number, shape: readonly number[], broadcast: readonly boolean[], slice: boolean): { strides: number[]; offset: number; size: number } {
  const rank = shape.length;
  const perm = permutation(r, rank);
  const full = shape.map((d, i) => (broadcast[i] ? 1 : d + (slice ? Math.floor(r() * 3) : 0)));
  // Storage order: axis perm[0] outermost.
  const storedShape = perm.map((a) => full[a]);
  const storedStrides = contiguousStrides(storedShape);
  const strides = new Array<number>(rank).fill(0);
  let offset = 0;
  perm.forEach((a, k) => {
    if (broadcast[a]) return;
    strides[a] = storedStrides[k];
    offset += Math.floor(r() * (full[a] - shape[a] + 1)) * storedStrides[k];
  });
  return { strides, offset, size: Math.max(1, sizeOf(full)) };
}

const shapeArb = (minRank: number, maxRank: number, maxDim: number): fc.Arbitrary<number[]> =>
  fc.array(int(1, maxDim), { minLength: minRank, maxLength: maxRank });

describe.skipIf(!GPU)('webgpu elementwise kernels', () => {
  it('fill writes every element', async () => {
    const rt = await rtOrThrow();
    await fc.assert(fc.asyncProperty(int(1, 70000), fc.double({ min: -1e6, max: 1e6, noNaN: true }), async (n, value) => {
      const out = poisoned(rt, n);
      op(rt, 'fill', () => fill(rt, out, n, value));
      const got = await download(rt, out, n);
      rt.release(out);
      const want = Math.fround(value);
      for (let i = 0; i < n; i++) if (got[i] !== want) throw new Error(`fill n=${n}: [${i}] = ${got[i]}, want ${want}`);
    }), { numRuns: 12 });
  });

  it('copy: permuted, sliced, broadcast sources into padded destinations, rank 0-11 (the shader walks 8)', async () => {
    const rt = await rtOrThrow();
    const arb = fc.record({
      shape: fc.oneof(shapeArb(0, 8, 4), shapeArb(9, 11, 3)).filter((s) => sizeOf(s) <= 4000),
      seed: fc.nat(),
      slice: fc.boolean(),
      pad: fc.boolean(),
      bcast: fc.array(fc.boolean(), { minLength: 11, maxLength: 11 }),
    });
    await fc.assert(fc.asyncProperty(arb, async ({ shape, seed, slice, pad, bcast }) => {
      const r = rng(seed);
      const src = stridedOperand(r, shape, shape.map((_, i) => bcast[i] && r() < 0.5), slice);
      // Destination: a row-major array padded by 0-2 per axis (as pad / concat write into a larger output).
      const outFull = shape.map((d) => d + (pad ? Math.floor(r() * 3) : 0));
      const outStrides = contiguousStrides(outFull);
      let outOffset = 0;
      shape.forEach((d, i) => (outOffset += Math.floor(r() * (outFull[i] - d + 1)) * outStrides[i]));
      const outSize = sizeOf(outFull);
      const x = randomArray(seed + 1, src.size);
      const ref = new Float64Array(outSize).fill(NaN);
      copyKernel(x, src.strides, src.offset, ref, outStrides, outOffset, shape);
      const xb = upload(rt, x);
      const ob = poisoned(rt, outSize);
      op(rt, 'copy', () => copy(rt, xb, src.strides, src.offset, ob, outStrides, outOffset, shape));
      const got = await download(rt, ob, outSize);
      rt.release(xb);
      rt.release(ob);
      expectClose(got, ref, 0, `copy shape [${shape}] x strides [${src.strides}]+${src.offset} out strides [${outStrides}]+${outOffset}`);
    }), { numRuns: 40 });
  });

  it('unary: every op on odd sizes', async () => {
    const rt = await rtOrThrow();
    const cases: { op: UnaryOp; lo: number; hi: number; params: number[] }[] = [
      { op: 'neg', lo: -5, hi: 5, params: [0] },
      { op: 'exp', lo: -10, hi: 10, params: [0] },
      { op: 'log', lo: 1e-3, hi: 100, params: [0] },
      { op: 'sqrt', lo: 0, hi: 100, params: [0] },
      { op: 'square', lo: -10, hi: 10, params: [0] },
      { op: 'relu', lo: -3, hi: 3, params: [0] },
      { op: 'sigmoid', lo: -30, hi: 30, params: [0] },
      { op: 'tanh', lo: -12, hi: 12, params: [0] },
      { op: 'tanh', lo: -0.1, hi: 0.1, params: [0] },
      { op: 'leakyRelu', lo: -3, hi: 3, params: [0.01, 0.2] },
      { op: 'addScalar', lo: -3, hi: 3, params: [1.5, -0.25] },
      { op: 'mulScalar', lo: -3, hi: 3, params: [-2, 0.3] },
      { op: 'rsubScalar', lo: -3, hi: 3, params: [1, -7.5] },
      { op: 'rdivScalar', lo: 0.1, hi: 4, params: [1, -3] },
      { op: 'divScalar', lo: -4, hi: 4, params: [7, -0.3] },
      { op: 'powScalar', lo: 0.05, hi: 4, params: [2, 0.5, 3, -1, -0.5, 1.7, 0] },
      // negative bases: integer exponents keep/flip the sign, non-integer exponents give NaN (Math.pow)
      { op: 'powScalar', lo: -3, hi: 3, params: [2, 3, -2, 4, 1.5, 0] },
    ];
    let k = 0;
    for (const c of cases) {
      for (const p of c.params) {
        const n = [1, 255, 257, 1001, 4099][k++ % 5];
        const x = randomArray(k, n, c.lo, c.hi);
        if (c.op === 'powScalar' || c.op === 'rdivScalar') x[0] = c.lo < 0 ? 0 : x[0];
        const ref = new Float64Array(n);
        unaryKernel(c.op, x, ref, Math.fround(p));
        const xb = upload(rt, x);
        const ob = poisoned(rt, n);
        op(rt, 'unary', () => unary(rt, c.op, xb, ob, n, p));
        const got = await download(rt, ob, n);
        rt.release(xb);
        rt.release(ob);
        expectClose(got, ref, 1e-5 * Math.max(1, maxAbs(ref)), `unary ${c.op}(p=${p}) n=${n}`);
      }
    }
  });

  it('unary: scales float32 cannot hold (below its normal range, above its largest) give what the CPU gives', async () => {
    const rt = await rtOrThrow();
    const cases: { op: UnaryOp; lo: number; hi: number; p: number }[] = [
      { op: 'mulScalar', lo: 1e3, hi: 1e5, p: 1e-40 },
      { op: 'mulScalar', lo: -1e5, hi: 1e5, p: -3e-41 },
      { op: 'mulScalar', lo: 1e-10, hi: 1e-8, p: 1e39 },
      { op: 'divScalar', lo: 1e30, hi: 3e38, p: 1e39 },
      { op: 'divScalar', lo: -1e-28, hi: 1e-28, p: 1e-39 },
      { op: 'divScalar', lo: 1e2, hi: 1e4, p: 3e38 },
      { op: 'rdivScalar', lo: 1e30, hi: 1e32, p: -1e39 },
      // A divisor whose float64 reciprocal overflows: +-Infinity, and 0 / it is 0.
      { op: 'divScalar', lo: -3, hi: 3, p: 1e-310 },
      { op: 'divScalar', lo: -3, hi: 3, p: -5e-324 },
    ];
    // Whether this adapter keeps subnormal float32 inputs (WGSL lets it flush them to 0; lavapipe keeps them).
    const probe = upload(rt, [2 ** -149]);
    const probeOut = poisoned(rt, 1);
    op(rt, 'unary', () => unary(rt, 'mulScalar', probe, probeOut, 1, 2 ** 100));
    const keepsSubnormals = (await download(rt, probeOut, 1))[0] !== 0;
    rt.release(probe);
    rt.release(probeOut);
    for (const [k, c] of cases.entries()) {
      const n = 257;
      const x = randomArray(30 + k, n, c.lo, c.hi);
      x[0] = c.op === 'rdivScalar' ? x[0] : 0; // 0 times a scale: 0 (it was 0 * Infinity = NaN)
      // Subnormal x by a divisor whose reciprocal overflows: still +-Infinity (where the adapter keeps them).
      if (Math.abs(c.p) < 1e-300 && keepsSubnormals) [x[1], x[2]] = [Math.fround(1e-40), -(2 ** -149)];
      const ref = new Float32Array(n); // the CPU backend: float64 arithmetic, stored as float32
      unaryKernel(c.op, x, ref, c.p);
      const xb = upload(rt, x);
      const ob = poisoned(rt, n);
      op(rt, 'unary', () => unary(rt, c.op, xb, ob, n, c.p));
      const got = await download(rt, ob, n);
      rt.release(xb);
      rt.release(ob);
      for (let i = 0; i < n; i++) {
        if (!(Object.is(got[i], ref[i]) || (Number.isFinite(ref[i]) && Math.abs(got[i] - ref[i]) <= 3e-7 * Math.abs(ref[i])))) {
          throw new Error(`unary ${c.op}(p=${c.p}) [${i}] x=${x[i]}: got ${got[i]}, want ${ref[i]}`);
        }
      }
    }
    expect(splitScale(0.5)).toBeNull();
    expect(splitScale(0)).toBeNull();
    expect(splitScale(Infinity)).toBeNull();
    const [s1, s2] = splitScale(1e-55)!;
    expect(Number.isInteger(Math.log2(s1))).toBe(true);
    expect(s1 * s2).toBeCloseTo(1e-55, 70);
    for (const f of [s1, s2]) expect(Math.abs(Math.fround(f))).toBeGreaterThanOrEqual(2 ** -126);
  });

  it('unary: powScalar follows Math.pow at infinities and signed zeros', async () => {
    const rt = await rtOrThrow();
    const x = Float64Array.from([-Infinity, Infinity, -0, 0, -2, 2]);
    for (const p of [0.5, 1.5, -0.5, -1.5, 3, -3, 2, -2, 0]) {
      const ref = new Float64Array(x.length);
      unaryKernel('powScalar', x, ref, p);
      const xb = upload(rt, x);
      const ob = poisoned(rt, x.length);
      op(rt, 'unary', () => unary(rt, 'powScalar', xb, ob, x.length, p));
      const got = await download(rt, ob, x.length);
      rt.release(xb);
      rt.release(ob);
      got.forEach((v, i) => expect(Object.is(v, ref[i]) || Math.abs(v - ref[i]) <= 1e-6 * Math.abs(ref[i]), `${x[i]}^${p}: got ${v}, Math.pow ${ref[i]}`).toBe(true));
    }
  });

  it('relu passes NaN on, and reluGrad passes gy where x is NaN, as the CPU kernels and PyTorch do', async () => {
    const rt = await rtOrThrow();
    const x = Float64Array.from([-2, -0, 0, 3, NaN, Infinity, -Infinity]);
    const xb = upload(rt, x);
    const ob = poisoned(rt, x.length);
    op(rt, 'unary', () => unary(rt, 'relu', xb, ob, x.length, 0));
    expect(Array.from(await download(rt, ob, x.length))).toEqual([0, 0, 0, 3, NaN, Infinity, 0]);
    const gb = upload(rt, Float64Array.from([1, 2, 3, 4, 5, 6, 7]));
    const db = poisoned(rt, x.length);
    op(rt, 'binary', () => binary(rt, 'reluGrad', gb, [1], xb, [1], db, [x.length], 0));
    expect(Array.from(await download(rt, db, x.length))).toEqual([0, 0, 0, 4, 5, 6, 0]);
    for (const b of [xb, ob, gb, db]) rt.release(b);
  });

  it('unary: sigmoid and tanh saturate without NaN at large |x|', async () => {
    const rt = await rtOrThrow();
    const x = Float64Array.from([-1e30, -200, -89, -20, 0, 20, 89, 200, 1e30]);
    for (const opName of ['sigmoid', 'tanh'] as const) {
      const ref = new Float64Array(x.length);
      unaryKernel(opName, x, ref, 0);
      const xb = upload(rt, x);
      const ob = poisoned(rt, x.length);
      op(rt, 'unary', () => unary(rt, opName, xb, ob, x.length, 0));
      const got = await download(rt, ob, x.length);
      rt.release(xb);
      rt.release(ob);
      expectClose(got, ref, 1e-7, opName);
    }
  });

  it('binary: every op with broadcasting and permuted operands, rank 0-11 (the shader walks 8)', async () => {
    const rt = await rtOrThrow();
    const ops: BinaryOp[] = ['add', 'sub', 'mul', 'div', 'reluGrad', 'leakyReluGrad', 'sigmoidGrad', 'tanhGrad'];
    const arb = fc.record({
      op: fc.constantFrom(...ops),
      shape: fc.oneof(shapeArb(0, 8, 5), shapeArb(9, 11, 3)).filter((s) => sizeOf(s) <= 5000),
      seed: fc.nat(),
      slice: fc.boolean(),
      ba: fc.array(fc.boolean(), { minLength: 11, maxLength: 11 }),
      bb: fc.array(fc.boolean(), { minLength: 11, maxLength: 11 }),
      param: fc.constantFrom(0.01, 0.2, -1.5),
    });
    await fc.assert(fc.asyncProperty(arb, async ({ op: name, shape, seed, slice, ba, bb, param }) => {
      const r = rng(seed);
      // Binary operands have no offset argument: the operand starts at element 0 of its buffer.
      const A = stridedOperand(r, shape, shape.map((_, i) => ba[i]), false);
      const B = stridedOperand(r, shape, shape.map((_, i) => bb[i] && !ba[i]), slice);
      const a = randomArray(seed + 1, A.size, -2, 2);
      const b = randomArray(seed + 2, B.size, name === 'div' ? 0.5 : -2, 2);
      const n = sizeOf(shape);
      const ref = new Float64Array(n);
      binaryKernel(name, a, A.strides, b, B.strides, ref, shape, Math.fround(param));
      const ab = upload(rt, a);
      const bbuf = upload(rt, b);
      const ob = poisoned(rt, n);
      op(rt, 'binary', () => binary(rt, name, ab, A.strides, bbuf, B.strides, ob, shape, param));
      const got = await download(rt, ob, n);
      rt.release(ab);
      rt.release(bbuf);
      rt.release(ob);
      expectClose(got, ref, 1e-5 * Math.max(1, maxAbs(ref)), `binary ${name} shape [${shape}] a [${A.strides}] b [${B.strides}]`);
    }), { numRuns: 60 });
  });

  it('copy and binary beyond the 8 axes the shaders walk: extra dispatches, the same values as the CPU', async () => {
    const rt = await rtOrThrow();
    /** A copy of all of `shape`'s axes reversed (no two can merge): `dispatches` launches, the CPU's values. */
    const reversedCopy = async (shape: number[], seed: number, dispatches: number): Promise<{ x: Float64Array; xb: GPUBuffer; ob: GPUBuffer }> => {
      const n = sizeOf(shape);
      const xStrides = contiguousStrides([...shape].reverse()).reverse();
      const x = randomArray(seed, n);
      const ref = new Float64Array(n);
      copyKernel(x, xStrides, 0, ref, contiguousStrides(shape), 0, shape);
      const xb = upload(rt, x);
      const ob = poisoned(rt, n);
      const d0 = rt.counters.dispatches;
      op(rt, 'copy', () => copy(rt, xb, xStrides, 0, ob, contiguousStrides(shape), 0, shape));
      expect(rt.counters.dispatches - d0, `copy of [${shape}]`).toBe(dispatches);
      expectClose(await download(rt, ob, n), ref, 0, `copy of [${shape}] reversed`);
      return { x, xb, ob };
    };
    const shape = [2, 2, 2, 2, 2, 2, 2, 2, 3]; // 9 axes
    const n = sizeOf(shape);
    // One axis of 2 walked on the host, one dispatch per index.
    const { x, xb, ob } = await reversedCopy(shape, 21, 2);
    // A large axis among them: the host walks a small one instead (2 dispatches, not 300).
    const big = await reversedCopy([300, 2, 2, 2, 2, 2, 2, 2, 2], 23, 2);
    rt.release(big.xb);
    rt.release(big.ob);
    // binary: a broadcast along the odd axes, b along the even ones (no two axes merge in every operand)
    const aStrides = contiguousStrides(shape).map((st, i) => (i % 2 ? 0 : st));
    const bStrides = contiguousStrides(shape).map((st, i) => (i % 2 ? st : 0));
    const b = randomArray(22, n);
    const sum = new Float64Array(n);
    binaryKernel('sub', x, aStrides, b, bStrides, sum, shape, 0);
    const bb = upload(rt, b);
    const d1 = rt.counters.dispatches;
    op(rt, 'sub', () => binary(rt, 'sub', xb, aStrides, bb, bStrides, ob, shape, 0));
    expect(rt.counters.dispatches - d1).toBe(5); // a and b copied out (2 dispatches each), then one binary
    expectClose(await download(rt, ob, n), sum.map(Math.fround), 0, 'sub over 9 alternately broadcast axes');
    for (const buf of [xb, ob, bb]) rt.release(buf);
  });

  async function checkReduce(rt: GpuRuntime, shape: number[], axes: number[], scale: number, seed: number, lo = -1, hi = 1, relTol = 1e-5): Promise<void> {
    const n = sizeOf(shape);
    const x = randomArray(seed, n, lo, hi);
    const outSize = shape.reduce((acc, d, i) => (axes.includes(i) ? acc : acc * d), 1);
    const ref = new Float64Array(outSize);
    reduceSumKernel(x, shape, axes, ref, scale);
    const absRef = new Float64Array(outSize);
    reduceSumKernel(x.map(Math.abs), shape, axes, absRef, Math.abs(scale));
    const xb = upload(rt, x);
    const ob = poisoned(rt, outSize);
    op(rt, 'reduceSum', () => reduceSum(rt, xb, shape, axes, ob, scale));
    const got = await download(rt, ob, outSize);
    rt.release(xb);
    rt.release(ob);
    expectClose(got, ref, relTol * maxAbs(absRef) + 1e-30, `reduceSum [${shape}] axes [${axes}] scale ${scale}`);
  }

  it('reduceSum: random shapes and axis subsets', async () => {
    const rt = await rtOrThrow();
    const arb = shapeArb(0, 7, 7).filter((s) => sizeOf(s) <= 20000).chain((shape) => fc.record({
      shape: fc.constant(shape),
      mask: fc.array(fc.boolean(), { minLength: shape.length, maxLength: shape.length }),
      scale: fc.constantFrom(1, 0.5, -3),
      seed: fc.nat(),
    }));
    await fc.assert(fc.asyncProperty(arb, async ({ shape, mask, scale, seed }) => {
      const axes = shape.map((_, i) => i).filter((i) => mask[i]);
      await checkReduce(rt, shape, axes, scale, seed);
    }), { numRuns: 50 });
  });

  it('reduceSum: large reduced extents, large outputs, empty axes and zero-size axes', async () => {
    const rt = await rtOrThrow();
    // Batch-norm style: 32 outputs, 127008 terms each; positive values so the error check is tight (pairwise).
    await checkReduce(rt, [8, 32, 126, 126], [0, 2, 3], 1, 1, 0, 1, 2e-6);
    await checkReduce(rt, [8, 32, 126, 126], [0, 2, 3], 1 / (8 * 126 * 126), 2);
    // Whole-array sum across several split passes.
    await checkReduce(rt, [300001], [0], 1, 3, 0, 1, 2e-6);
    // Column sums (innermost axis kept) of a tall matrix, and of a tall array with 3 columns.
    await checkReduce(rt, [20000, 37], [0], 1, 4);
    await checkReduce(rt, [100003, 3], [0], 1, 5);
    // Many outputs, short reductions (row sums; bias-gradient style sums over the batch).
    await checkReduce(rt, [50000, 5], [1], 1, 6);
    await checkReduce(rt, [5, 40000], [0], 1, 7);
    await checkReduce(rt, [3, 1000, 9], [0, 2], 2, 8);
    // Kept and reduced axes alternating more often than the shader's 4 groups of each.
    await checkReduce(rt, [2, 3, 2, 3, 2, 3, 2, 3, 2, 3], [1, 3, 5, 7, 9], 1, 12);
    await checkReduce(rt, [3, 2, 3, 2, 3, 2, 3, 2, 3, 5], [0, 2, 4, 6, 8], 0.5, 13);
    // No axes (scaled copy), rank 0, a size-1 reduced axis.
    await checkReduce(rt, [7, 9], [], 3, 9);
    await checkReduce(rt, [], [], 2, 10);
    await checkReduce(rt, [4, 1, 5], [1], 1, 11);
    // Reduced extent 0: zeros. Kept extent 0: nothing to write.
    const ob = poisoned(rt, 6);
    const xb = upload(rt, [0]);
    op(rt, 'reduceSum', () => reduceSum(rt, xb, [2, 0, 3], [1], ob, 1));
    expect(Array.from(await download(rt, ob, 6))).toEqual([0, 0, 0, 0, 0, 0]);
    op(rt, 'reduceSum', () => reduceSum(rt, xb, [0, 3], [1], ob, 1));
    await rt.sync();
    rt.release(ob);
    rt.release(xb);
  });

  it('mseLoss matches mean((a-b)^2)', async () => {
    const rt = await rtOrThrow();
    await fc.assert(fc.asyncProperty(fc.oneof(int(1, 300), int(8000, 200000)), fc.nat(), async (n, seed) => {
      const a = randomArray(seed, n, -3, 3);
      const b = randomArray(seed + 1, n, -3, 3);
      let s = 0;
      for (let i = 0; i < n; i++) s += (a[i] - b[i]) ** 2;
      const want = s / n;
      const ab = upload(rt, a);
      const bb = upload(rt, b);
      const ob = poisoned(rt, 1);
      op(rt, 'mseLoss', () => mseLoss(rt, ab, bb, ob, n));
      const got = (await download(rt, ob, 1))[0];
      rt.release(ab);
      rt.release(bb);
      rt.release(ob);
      expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-5 * want);
    }), { numRuns: 10 });
  });

  it('valueStats: min/max/sum of finite values and NaN / Inf counts', async () => {
    const rt = await rtOrThrow();
    const check = async (x: Float64Array, what: string): Promise<void> => {
      let min = Infinity, max = -Infinity, sum = 0, abs = 0, nan = 0, inf = 0;
      for (const v of x) {
        if (Number.isNaN(v)) nan++;
        else if (!Number.isFinite(v)) inf++;
        else {
          min = Math.min(min, v);
          max = Math.max(max, v);
          sum += v;
          abs += Math.abs(v);
        }
      }
      const xb = upload(rt, x.length ? x : [0]);
      const ob = poisoned(rt, 5);
      op(rt, 'valueStats', () => valueStats(rt, xb, x.length, ob));
      const got = await download(rt, ob, 5);
      rt.release(xb);
      rt.release(ob);
      expect(got[0], `${what} min`).toBe(Math.fround(min));
      expect(got[1], `${what} max`).toBe(Math.fround(max));
      expect(Math.abs(got[2] - sum), `${what} sum`).toBeLessThanOrEqual(1e-5 * abs);
      expect(got[3], `${what} nan`).toBe(nan);
      expect(got[4], `${what} inf`).toBe(inf);
    };
    await fc.assert(fc.asyncProperty(fc.oneof(int(1, 600), int(9000, 120000)), fc.nat(), fc.double({ min: 0, max: 0.2, noNaN: true }), async (n, seed, frac) => {
      const x = randomArray(seed, n, -50, 30);
      const r = rng(seed + 7);
      for (let i = 0; i < n; i++) {
        const u = r();
        if (u < frac / 2) x[i] = NaN;
        else if (u < frac) x[i] = r() < 0.5 ? Infinity : -Infinity;
      }
      await check(x, `n=${n} frac=${frac}`);
    }), { numRuns: 10 });
    await check(Float64Array.from([NaN, Infinity, -Infinity, NaN]), 'no finite value');
    await check(new Float64Array(0), 'empty');
    await check(Float64Array.from([-0, 3e38, -3e38, 1e-40]), 'extremes');
  });

  it('adam / adamw: five fused steps match the reference formulas', async () => {
    const rt = await rtOrThrow();
    for (const decoupled of [false, true]) {
      for (const n of [1, 1001]) {
        const o = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.05, decoupled, step: 0 };
        const p = randomArray(20 + n, n, -2, 2);
        const m = new Float64Array(n);
        const v = new Float64Array(n);
        const pb = upload(rt, p), mb = upload(rt, m), vb = upload(rt, v);
        for (let step = 1; step <= 5; step++) {
          const g = randomArray(step * 31 + n, n, -1, 1);
          for (let i = 0; i < n; i++) {
            let gi = g[i];
            if (decoupled) p[i] *= 1 - o.lr * o.weightDecay;
            else gi += o.weightDecay * p[i];
            m[i] = o.beta1 * m[i] + (1 - o.beta1) * gi;
            v[i] = o.beta2 * v[i] + (1 - o.beta2) * gi * gi;
            const mhat = m[i] / (1 - o.beta1 ** step);
            const vhat = v[i] / (1 - o.beta2 ** step);
            p[i] -= o.lr * mhat / (Math.sqrt(vhat) + o.eps);
          }
          const gb = upload(rt, g);
          op(rt, 'adam', () => adam(rt, pb, gb, mb, vb, n, { ...o, step }));
          rt.release(gb);
        }
        const [gp, gm, gv] = [await download(rt, pb, n), await download(rt, mb, n), await download(rt, vb, n)];
        rt.release(pb);
        rt.release(mb);
        rt.release(vb);
        const what = `${decoupled ? 'adamw' : 'adam'} n=${n}`;
        expectClose(gp, p, 1e-5 * maxAbs(p), `${what} p`);
        expectClose(gm, m, 1e-5 * maxAbs(m), `${what} m`);
        expectClose(gv, v, 1e-5 * maxAbs(v), `${what} v`);
      }
    }
  });
});
