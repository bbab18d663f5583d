/**
 * The CPU elementwise, copy and reduction kernels (src/engine/cpu/elementwise.ts) against naive loops
 * that compute every element's operand offsets from its multi-index, on shapes and strides drawn by
 * fast-check: ranks 0-5, sizes 0-4 (1s often, so broadcasting and dimension merging both happen),
 * broadcast (stride 0), permuted and offset operands. Outputs start as NaN, so a missed element fails.
 */
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { BinaryOp, UnaryOp } from '../src/engine/backend.js';
import { binaryKernel, coalesce, copyKernel, reduceSumKernel, unaryKernel } from '../src/engine/cpu/elementwise.js';
import { getParallelMinFlops, getThreadCount, parallelRunCount, setParallelMinFlops, setThreadCount } from '../src/engine/cpu/threads.js';
import * as sg from '../src/engine/index.js';
import { contiguousStrides as contiguous } from '../src/engine/ops/util.js';

const shapeArb = fc.array(fc.oneof(fc.constant(1), fc.integer({ min: 0, max: 4 })), { minLength: 0, maxLength: 5 });

const size = (shape: readonly number[]): number => shape.reduce((p, d) => p * d, 1);

/** Every multi-index of shape, row-major. */
function* indices(shape: readonly number[]): Generator<number[]> {
  if (shape.some((d) => d === 0)) return;
  const idx = new Array<number>(shape.length).fill(0);
  for (;;) {
    yield idx.slice();
    let d = shape.length - 1;
    for (; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

const offset = (idx: readonly number[], strides: readonly number[], base = 0): number =>
  idx.reduce((o, i, d) => o + i * strides[d], base);

/** Strides for an operand of `shape` read through a random layout: broadcast where drawn (stride 0), else a permuted contiguous layout. */
const layoutArb = (shape: readonly number[]): fc.Arbitrary<number[]> =>
  fc.tuple(fc.array(fc.boolean(), { minLength: shape.length, maxLength: shape.length }), fc.nat(1000)).map(([bcast, seed]) => {
    // A permutation of the axes from the seed, then the contiguous strides of the permuted shape mapped back.
    const order = shape.map((_, d) => d).sort((p, q) => ((p * 7 + seed) % 11) - ((q * 7 + seed) % 11));
    const permStrides = contiguous(order.map((d) => shape[d]));
    const st = new Array<number>(shape.length);
    order.forEach((d, k) => (st[d] = permStrides[k]));
    return st.map((s, d) => (bcast[d] ? 0 : s));
  });

const caseArb = shapeArb.chain((shape) => fc.tuple(fc.constant(shape), layoutArb(shape), layoutArb(shape)));

const filled = (n: number, seed: number): Float64Array => Float64Array.from({ length: n }, (_, i) => Math.sin(seed + i * 1.3) * 2);
/** Elements an operand with these strides spans (its largest offset + 1). */
const span = (shape: readonly number[], strides: readonly number[]): number =>
  shape.some((d) => d === 0) ? 0 : 1 + shape.reduce((o, d, k) => o + (d - 1) * strides[k], 0);

describe('CPU elementwise kernels vs naive per-element loops', () => {
  it('coalesce visits the same operand offsets in the same order', () => {
    fc.assert(fc.property(caseArb, ([shape, sa, sb]) => {
      const c = coalesce(shape, [sa, sb]);
      expect(c.shape.length).toBeLessThanOrEqual(Math.max(shape.length, 0));
      const before = [...indices(shape)].map((i) => [offset(i, sa), offset(i, sb)]);
      const after = [...indices(c.shape)].map((i) => [offset(i, c.strides[0]), offset(i, c.strides[1])]);
      expect(after).toEqual(before);
    }), { numRuns: 300 });
  });

  it('merges contiguous operands into one row, and H x W of a per-channel operand', () => {
    expect(coalesce([8, 16, 30, 30], [contiguous([8, 16, 30, 30]), contiguous([8, 16, 30, 30])]).shape).toEqual([115200]);
    expect(coalesce([8, 16, 30, 30], [contiguous([8, 16, 30, 30]), [0, 1, 0, 0]])).toEqual({ shape: [8, 16, 900], strides: [[14400, 900, 1], [0, 1, 0]] });
    expect(coalesce([], [[], []])).toEqual({ shape: [], strides: [[], []] });
    expect(coalesce([1, 1], [[1, 1], [0, 0]])).toEqual({ shape: [1], strides: [[0], [0]] });
  });

  const binaryOps: BinaryOp[] = ['add', 'sub', 'mul', 'div', 'reluGrad', 'leakyReluGrad', 'sigmoidGrad', 'tanhGrad'];
  const binaryRef: Record<BinaryOp, (a: number, b: number, p: number) => number> = {
    add: (a, b) => a + b, sub: (a, b) => a - b, mul: (a, b) => a * b, div: (a, b) => a / b,
    reluGrad: (a, b) => (b > 0 ? a : 0), leakyReluGrad: (a, b, p) => (b > 0 ? a : p * a),
    sigmoidGrad: (a, b) => a * b * (1 - b), tanhGrad: (a, b) => a * (1 - b * b),
  };

  it('binaryKernel: every op, broadcast and permuted operands', () => {
    fc.assert(fc.property(caseArb, fc.constantFrom(...binaryOps), fc.double({ min: 0, max: 1, noNaN: true }), ([shape, sa, sb], op, p) => {
      const a = filled(span(shape, sa), 1), b = filled(span(shape, sb), 2);
      const out = new Float64Array(size(shape)).fill(NaN);
      binaryKernel(op, a, sa, b, sb, out, shape, p);
      const want = [...indices(shape)].map((i) => binaryRef[op](a[offset(i, sa)], b[offset(i, sb)], p));
      expect(Array.from(out)).toEqual(want);
    }), { numRuns: 300 });
  });

  it('copyKernel: permuted source and destination with offsets', () => {
    fc.assert(fc.property(caseArb, fc.nat(5), fc.nat(5), ([shape, sx], xOffset, outOffset) => {
      const so = contiguous(shape).map((s) => s * 2); // every other element of the destination
      const x = filled(xOffset + span(shape, sx), 3);
      const out = new Float64Array(outOffset + span(shape, so)).fill(NaN);
      copyKernel(x, sx, xOffset, out, so, outOffset, shape);
      const want = new Float64Array(out.length).fill(NaN);
      for (const i of indices(shape)) want[offset(i, so, outOffset)] = x[offset(i, sx, xOffset)];
      expect(Array.from(out)).toEqual(Array.from(want));
    }), { numRuns: 300 });
  });

  it('reduceSumKernel: any set of axes, with a scale', () => {
    const arb = shapeArb.chain((shape) => fc.tuple(fc.constant(shape), fc.subarray(shape.map((_, d) => d)), fc.double({ min: -2, max: 2, noNaN: true })));
    fc.assert(fc.property(arb, ([shape, axes, scale]) => {
      const x = filled(size(shape), 4);
      const kept = shape.map((d, k) => (axes.includes(k) ? 1 : d));
      const out = new Float64Array(size(kept)).fill(NaN);
      reduceSumKernel(x, shape, axes, out, scale);
      const want = new Float64Array(out.length);
      const keptStrides = contiguous(kept);
      for (const i of indices(shape)) want[offset(i.map((v, k) => (axes.includes(k) ? 0 : v)), keptStrides)] += x[offset(i, contiguous(shape))];
      for (let k = 0; k < want.length; k++) expect(out[k]).toBeCloseTo(want[k] * scale, 10);
    }), { numRuns: 300 });
  });

  it('unaryKernel: leakyRelu keeps the sign of zero; both pass NaN and infinities as PyTorch does', () => {
    const x = Float64Array.from([-2, -0, 0, 3, NaN, Infinity, -Infinity, 1e-300]);
    for (const op of ['leakyRelu', 'relu'] as UnaryOp[]) {
      const out = new Float64Array(x.length);
      unaryKernel(op, x, out, 0.01);
      // relu: x <= 0 ? 0 : x (torch.relu(nan) is nan); leakyRelu: x > 0 ? x : p x (nan * p is nan).
      expect(Array.from(out)).toEqual(Array.from(x, (v) => (op === 'relu' ? (v <= 0 ? 0 : v) : v > 0 ? v : 0.01 * v)));
    }
    expect(Number.isNaN((() => { const o = new Float64Array(1); unaryKernel('relu', Float64Array.of(NaN), o, 0); return o[0]; })())).toBe(true);
    // reluGrad(gy, x): x <= 0 ? 0 : gy, so a NaN x passes gy on (PyTorch's threshold_backward).
    const gy = Float64Array.from([1, 2, 3, 4]);
    const xs = Float64Array.from([-1, 0, NaN, 5]);
    const g = new Float64Array(4);
    binaryKernel('reluGrad', gy, [1], xs, [1], g, [4], 0);
    expect(Array.from(g)).toEqual([0, 0, 3, 4]);
  });
});

describe('elementwise kernels in parts (what the threads run)', () => {
  /** Two cut points in [0, n], sorted: the kernels run as three parts [0, c1), [c1, c2), [c2, n). */
  const cutsArb = fc.tuple(fc.nat(), fc.nat());
  const cuts = (n: number, [u, v]: [number, number]): [number, number][] => {
    const [c1, c2] = [u % (n + 1), v % (n + 1)].sort((x, y) => x - y);
    return [[0, c1], [c1, c2], [c2, n]];
  };

  it('binary, copy and unary kernels over consecutive element ranges write exactly what one call writes', () => {
    fc.assert(fc.property(caseArb, cutsArb, ([shape, sa, sb], cut) => {
      const n = size(shape);
      const a = filled(span(shape, sa), 1), b = filled(span(shape, sb), 2);
      const whole = new Float64Array(n).fill(NaN), parts = new Float64Array(n).fill(NaN);
      binaryKernel('leakyReluGrad', a, sa, b, sb, whole, shape, 0.1);
      for (const [s0, e0] of cuts(n, cut)) binaryKernel('leakyReluGrad', a, sa, b, sb, parts, shape, 0.1, s0, e0);
      expect(Array.from(parts)).toEqual(Array.from(whole));

      const so = contiguous(shape).map((st) => st * 2);
      const c1 = new Float64Array(span(shape, so) + 1).fill(NaN), c2 = new Float64Array(c1.length).fill(NaN);
      copyKernel(a, sa, 0, c1, so, 1, shape);
      for (const [s0, e0] of cuts(n, cut)) copyKernel(a, sa, 0, c2, so, 1, shape, s0, e0);
      expect(Array.from(c2)).toEqual(Array.from(c1));

      const x = filled(n, 3), u1 = new Float64Array(n).fill(NaN), u2 = new Float64Array(n).fill(NaN);
      unaryKernel('tanh', x, u1, 0);
      for (const [s0, e0] of cuts(n, cut)) unaryKernel('tanh', x, u2, 0, s0, e0);
      expect(Array.from(u2)).toEqual(Array.from(u1));
    }), { numRuns: 300 });
  });

  const savedThreads = getThreadCount(), savedMin = getParallelMinFlops();
  afterAll(() => {
    setThreadCount(savedThreads);
    setParallelMinFlops(savedMin);
  });

  it('the CPU backend splits large elementwise ops and copies across threads, with the same results', () => {
    // [3,7,33,29] = 20097 elements: large enough for SharedArrayBuffer storage; odd sizes so parts start mid-row.
    const run = (): number[][] => sg.scope(() => {
      const x = sg.uniform([3, 7, 33, 29], -1, 1, { rng: new sg.Rng(1) });
      const bias = sg.uniform([7, 1, 1], -1, 1, { rng: new sg.Rng(2) });
      const y = sg.add(x, bias);
      const z = sg.leakyRelu(sg.mul(y, x), 0.2);
      const p = sg.permute(z, [0, 2, 1, 3]);
      const c = sg.concat([p, p], 2);
      return [y, z, p, c].map((t) => Array.from(t.dataSync()));
    });
    setThreadCount(1);
    const serial = run();
    setThreadCount(2);
    setParallelMinFlops(0);
    const before = parallelRunCount();
    const threaded = run();
    expect(parallelRunCount() - before).toBeGreaterThanOrEqual(5); // add, mul, leakyRelu, permute, both concat copies
    threaded.forEach((t, i) => expect(t, `output ${i}`).toEqual(serial[i]));
  });
});
