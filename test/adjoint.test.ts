/**
 * Adjoint identities <A x, y> = <x, A^T y> for the linear ops and their hand-written transposes, in float64,
 * on shapes and options drawn by fast-check. No finite differences, so shapes can be larger than in the
 * gradient checks (large enough to leave the kernels' small-size paths).
 *
 * Tolerance: |<Ax,y> - <x,A^T y>| <= 1e-10 * S, where S = max over both sides of sum_i |a_i b_i| (the size of
 * the terms; rounding is relative to it, not to the possibly cancelled inner product itself).
 *
 * Also: the backend contract that every kernel fully overwrites its outputs (outputs are never assumed zero).
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import * as sg from '../src/engine/index.js';
import { sizeOf } from '../src/engine/dtype.js';
import { convCaseArb, convLabel } from './helpers/conv-cases.js';

const F64 = { dtype: 'float64' as const };
const REL = 1e-10;

const int = (min: number, max: number): fc.Arbitrary<number> => fc.integer({ min, max });
const seedArb = fc.nat();

function randn(rng: sg.Rng, shape: readonly number[]): sg.Tensor {
  return sg.fromArray(Array.from({ length: sizeOf(shape) }, () => rng.normal()), shape, F64);
}

interface Dot {
  value: number;
  /** sum |a_i b_i| */
  scale: number;
}

function dot(a: sg.Tensor, b: sg.Tensor): Dot {
  expect(a.shape).toEqual(b.shape);
  const x = a.dataSync(), y = b.dataSync();
  let value = 0, scale = 0;
  for (let i = 0; i < x.length; i++) {
    const p = x[i] * y[i];
    value += p;
    scale += Math.abs(p);
  }
  return { value, scale };
}

function expectAdjoint(label: string, lhs: Dot, rhs: Dot): void {
  const scale = Math.max(lhs.scale, rhs.scale);
  // scale may be 0 (e.g. a stride that skips every pixel of a tiny padded input): then both sides must be exactly 0.
  const err = Math.abs(lhs.value - rhs.value);
  expect(err, `${label}: <Ax,y> = ${lhs.value}, <x,A^T y> = ${rhs.value}, |diff| ${err} > ${REL} * ${scale}`).toBeLessThanOrEqual(REL * scale);
}

/** Runs fn in a scope and checks that it leaves no live tensor behind. */
function clean(fn: () => void): void {
  const before = sg.memory().tensors;
  sg.scope(fn);
  expect(sg.memory().tensors).toBe(before);
}

// ---------------------------------------------------------------------------------------------
const convArb = convCaseArb({ maxChannels: 6, maxPad: 3 });

describe('adjoint identities: convolutions', () => {
  it('<conv2d(x,w), y> = <x, conv2dGradInput(y, w, x.shape)> = <w, conv2dGradWeight(x, y, [kH,kW])>', () => {
    fc.assert(fc.property(convArb, seedArb, (p, seed) => clean(() => {
      const rng = new sg.Rng(seed);
      const opts = { stride: p.stride, padding: p.padding };
      const x = randn(rng, [p.n, p.c, p.h, p.w]);
      const w = randn(rng, [p.o, p.c, p.kh, p.kw]);
      const y = randn(rng, [p.n, p.o, p.g.outHeight, p.g.outWidth]);
      const lhs = dot(sg.conv2d(x, w, opts), y);
      expectAdjoint(`conv2d / conv2dGradInput ${convLabel(p)}`, lhs, dot(x, sg.conv2dGradInput(y, w, x.shape, opts)));
      expectAdjoint(`conv2d / conv2dGradWeight ${convLabel(p)}`, lhs, dot(w, sg.conv2dGradWeight(x, y, [p.kh, p.kw], opts)));
    })), { numRuns: 60 });
  });

  it('<convTranspose2d(x, w), y> = <x, conv2d(y, w)> with the same stride and padding (outputPadding < stride)', () => {
    const arb = fc.record({
      n: int(1, 3), cin: int(1, 5), cout: int(1, 5), h: int(1, 9), w: int(1, 9), kh: int(1, 5), kw: int(1, 5),
      sh: int(1, 3), sw: int(1, 3), ph: int(0, 3), pw: int(0, 3), opFrac: fc.tuple(fc.nat(), fc.nat()),
    }).map((p) => {
      const oph = p.opFrac[0] % p.sh, opw = p.opFrac[1] % p.sw;
      return { ...p, oph, opw, hOut: (p.h - 1) * p.sh - 2 * p.ph + p.kh + oph, wOut: (p.w - 1) * p.sw - 2 * p.pw + p.kw + opw };
    }).filter((p) => p.hOut >= 1 && p.wOut >= 1);
    fc.assert(fc.property(arb, seedArb, (p, seed) => clean(() => {
      const rng = new sg.Rng(seed);
      const label = `convTranspose2d x [${p.n},${p.cin},${p.h},${p.w}] w [${p.cin},${p.cout},${p.kh},${p.kw}] stride [${p.sh},${p.sw}] padding [${p.ph},${p.pw}] outputPadding [${p.oph},${p.opw}]`;
      const x = randn(rng, [p.n, p.cin, p.h, p.w]);
      const w = randn(rng, [p.cin, p.cout, p.kh, p.kw]);
      const t = sg.convTranspose2d(x, w, { stride: [p.sh, p.sw], padding: [p.ph, p.pw], outputPadding: [p.oph, p.opw] });
      expect(t.shape, label).toEqual([p.n, p.cout, p.hOut, p.wOut]);
      const y = randn(rng, t.shape);
      // w [Cin, Cout, kH, kW] read by conv2d as [O = Cin, C = Cout, kH, kW]; it maps y back to x's shape for outputPadding < stride.
      const c = sg.conv2d(y, w, { stride: [p.sh, p.sw], padding: [p.ph, p.pw] });
      expect(c.shape, `${label}: conv2d of y`).toEqual(x.shape);
      expectAdjoint(label, dot(t, y), dot(x, c));
    })), { numRuns: 60 });
  });

  it('<upsampleNearest2d(x, s), y> = <x, upsampleNearest2dGrad(y, s)> with random integer scales', () => {
    const arb = fc.tuple(int(1, 3), int(1, 4), int(1, 8), int(1, 8), fc.oneof(int(1, 4), fc.tuple(int(1, 4), int(1, 4))));
    fc.assert(fc.property(arb, seedArb, ([n, c, h, w, s], seed) => clean(() => {
      const rng = new sg.Rng(seed);
      const x = randn(rng, [n, c, h, w]);
      const u = sg.upsampleNearest2d(x, s);
      const y = randn(rng, u.shape);
      expectAdjoint(`upsample [${n},${c},${h},${w}] scale ${JSON.stringify(s)}`, dot(u, y), dot(x, sg.upsampleNearest2dGrad(y, s)));
    })), { numRuns: 40 });
  });
});

// ---------------------------------------------------------------------------------------------
const shapeArb = (minRank: number, maxRank: number, maxDim: number): fc.Arbitrary<number[]> =>
  fc.array(int(1, maxDim), { minLength: minRank, maxLength: maxRank });

describe('adjoint identities: shape ops and matmul', () => {
  it('<slice(x, begin, size), y> = <x, pad(y, x.shape, begin)>', () => {
    const arb = shapeArb(1, 5, 6).chain((shape) => fc.tuple(
      fc.constant(shape),
      fc.tuple(...shape.map((d) => int(0, d - 1).chain((b) => fc.tuple(fc.constant(b), int(1, d - b))))),
    ));
    fc.assert(fc.property(arb, seedArb, ([shape, box], seed) => clean(() => {
      const rng = new sg.Rng(seed);
      const begin = box.map(([b]) => b), size = box.map(([, s]) => s);
      const x = randn(rng, shape);
      const y = randn(rng, size);
      expectAdjoint(`slice ${JSON.stringify(shape)} at ${JSON.stringify(begin)} size ${JSON.stringify(size)}`,
        dot(sg.slice(x, begin, size), y), dot(x, sg.pad(y, shape, begin)));
    })), { numRuns: 60 });
  });

  it('<permute(x, p), y> = <x, permute(y, p^-1)>', () => {
    const arb = shapeArb(1, 5, 5).chain((shape) => fc.tuple(fc.constant(shape),
      fc.shuffledSubarray(shape.map((_, i) => i), { minLength: shape.length, maxLength: shape.length })));
    fc.assert(fc.property(arb, seedArb, ([shape, perm], seed) => clean(() => {
      const rng = new sg.Rng(seed);
      const inverse: number[] = [];
      perm.forEach((p, i) => (inverse[p] = i));
      const x = randn(rng, shape);
      const px = sg.permute(x, perm);
      expect(px.shape).toEqual(perm.map((p) => shape[p]));
      const y = randn(rng, px.shape);
      expectAdjoint(`permute ${JSON.stringify(shape)} by ${JSON.stringify(perm)}`, dot(px, y), dot(x, sg.permute(y, inverse)));
    })), { numRuns: 60 });
  });

  it('<broadcastTo(x, S), y> = <x, sumTo(y, x.shape)>', () => {
    const arb = shapeArb(1, 5, 5).chain((out) => fc.tuple(fc.constant(out), int(0, out.length),
      fc.array(fc.boolean(), { minLength: out.length, maxLength: out.length })));
    fc.assert(fc.property(arb, seedArb, ([out, rank, ones], seed) => clean(() => {
      const rng = new sg.Rng(seed);
      const small = out.slice(out.length - rank).map((d, i) => (ones[i] ? 1 : d));
      const x = randn(rng, small);
      const y = randn(rng, out);
      expectAdjoint(`broadcastTo ${JSON.stringify(small)} -> ${JSON.stringify(out)}`, dot(sg.broadcastTo(x, out), y), dot(x, sg.sumTo(y, small)));
    })), { numRuns: 40 });
  });

  it('<concat([a, b, ...], axis), y> = sum of <part, slice of y>', () => {
    const arb = shapeArb(1, 4, 5).chain((shape) => fc.tuple(fc.constant(shape), int(0, shape.length - 1), fc.array(int(1, 4), { minLength: 1, maxLength: 4 })));
    fc.assert(fc.property(arb, seedArb, ([shape, axis, extents], seed) => clean(() => {
      const rng = new sg.Rng(seed);
      const parts = extents.map((e) => randn(rng, shape.map((d, i) => (i === axis ? e : d))));
      const c = sg.concat(parts, axis);
      const y = randn(rng, c.shape);
      let offset = 0, value = 0, scale = 0;
      for (const part of parts) {
        const d = dot(part, sg.slice(y, shape.map((_, i) => (i === axis ? offset : 0)), part.shape));
        value += d.value;
        scale += d.scale;
        offset += part.shape[axis];
      }
      expectAdjoint(`concat ${JSON.stringify(parts.map((t) => t.shape))} axis ${axis}`, dot(c, y), { value, scale });
    })), { numRuns: 40 });
  });

  it('<A B, C> = <A, C B^T> = <B, A^T C>, 2-D and batched (matmulT)', () => {
    const arb = fc.record({ batch: fc.option(int(1, 4), { nil: undefined }), m: int(1, 40), k: int(1, 40), n: int(1, 40) });
    fc.assert(fc.property(arb, seedArb, ({ batch, m, k, n }, seed) => clean(() => {
      const rng = new sg.Rng(seed);
      const pre = batch === undefined ? [] : [batch];
      const a = randn(rng, [...pre, m, k]);
      const b = randn(rng, [...pre, k, n]);
      const c = randn(rng, [...pre, m, n]);
      const label = `matmul ${JSON.stringify(a.shape)} @ ${JSON.stringify(b.shape)}`;
      const lhs = dot(sg.matmul(a, b), c);
      expectAdjoint(`${label} (A)`, lhs, dot(a, sg.matmulT(c, b, false, true)));
      expectAdjoint(`${label} (B)`, lhs, dot(b, sg.matmulT(a, c, true, false)));
    })), { numRuns: 40 });
  });
});

// ---------------------------------------------------------------------------------------------
describe('backend contract: kernels fully overwrite their outputs', () => {
  // backend.ts: "Every kernel fully overwrites its outputs (outputs are never assumed zero)". A kernel that
  // accumulates into its output passes every op-level test on the CPU (fresh storages are zero), so run each
  // kernel on outputs prefilled with NaN and with zeros and compare.
  type Storage = sg.Storage;
  const be = sg.getBackend('cpu');

  function store(values: ArrayLike<number>): Storage {
    const s = be.alloc('float64', values.length);
    be.write(s, values);
    return s;
  }

  /** Runs `kernel` twice, on zero- and NaN-filled outputs, and expects identical, finite results. */
  function overwrites(label: string, outSizes: number[], kernel: (outs: Storage[]) => void): void {
    const results = [0, NaN].map((fill) => {
      const outs = outSizes.map((n) => be.alloc('float64', n));
      for (const o of outs) be.fill(o, fill);
      kernel(outs);
      const r = outs.map((o) => Array.from(be.readSync(o)));
      for (const o of outs) be.free(o);
      return r;
    });
    results[1].forEach((out, i) => {
      expect(out.every(Number.isFinite), `${label}: output ${i} kept NaN from its previous contents`).toBe(true);
      expect(out, `${label}: output ${i}`).toEqual(results[0][i]);
    });
  }

  it('conv2d, conv2dGradInput, conv2dGradWeight (random geometries) and matmul', () => {
    fc.assert(fc.property(convArb, fc.boolean(), seedArb, (p, bias, seed) => {
      const rng = new sg.Rng(seed);
      const g = p.g;
      const rand = (n: number): number[] => Array.from({ length: n }, () => rng.normal());
      const xSize = p.n * p.c * p.h * p.w, wSize = p.o * p.c * p.kh * p.kw, ySize = p.n * p.o * g.outHeight * g.outWidth;
      const [x, w, b, dy] = [store(rand(xSize)), store(rand(wSize)), store(rand(p.o)), store(rand(ySize))];
      overwrites(`conv2d ${convLabel(p)}`, [ySize], ([o]) => be.conv2d(x, w, bias ? b : null, o, g));
      overwrites(`conv2dGradInput ${convLabel(p)}`, [xSize], ([o]) => be.conv2dGradInput(dy, w, o, g));
      overwrites(`conv2dGradWeight ${convLabel(p)}`, [wSize], ([o]) => be.conv2dGradWeight(x, dy, o, g));
      for (const s of [x, w, b, dy]) be.free(s);
    }), { numRuns: 30 });
    fc.assert(fc.property(int(1, 3), int(1, 40), int(1, 40), int(1, 40), fc.boolean(), fc.boolean(), seedArb, (batch, m, k, n, ta, tb, seed) => {
      const rng = new sg.Rng(seed);
      const a = store(Array.from({ length: batch * m * k }, () => rng.normal()));
      const b = store(Array.from({ length: batch * k * n }, () => rng.normal()));
      overwrites(`matmul batch ${batch} ${m}x${k}x${n} transA ${ta} transB ${tb}`, [batch * m * n], ([o]) => be.matmul(a, b, o, batch, m, k, n, ta, tb));
      be.free(a);
      be.free(b);
    }), { numRuns: 30 });
  });

  it('elementwise, reduction, upsample, batch norm and mse kernels', () => {
    const rng = new sg.Rng(5);
    const rand = (n: number, lo = -1, hi = 1): number[] => Array.from({ length: n }, () => rng.uniform(lo, hi));
    const [n, c, h, w] = [2, 3, 4, 5];
    const size = n * c * h * w;
    const x = store(rand(size)), y = store(rand(size)), pos = store(rand(size, 0.5, 2));
    for (const op of ['neg', 'exp', 'log', 'sqrt', 'square', 'relu', 'sigmoid', 'tanh', 'leakyRelu', 'addScalar', 'mulScalar', 'rsubScalar', 'rdivScalar', 'powScalar', 'divScalar'] as const) {
      overwrites(`unary ${op}`, [size], ([o]) => be.unary(op, op === 'log' || op === 'sqrt' || op === 'powScalar' ? pos : x, o, 0.3));
    }
    const strides = [c * h * w, h * w, w, 1];
    for (const op of ['add', 'sub', 'mul', 'div', 'reluGrad', 'leakyReluGrad', 'sigmoidGrad', 'tanhGrad'] as const) {
      overwrites(`binary ${op}`, [size], ([o]) => be.binary(op, x, strides, pos, strides, o, [n, c, h, w], 0.3));
    }
    overwrites('reduceSum', [c * w], ([o]) => be.reduceSum(x, [n, c, h, w], [0, 2], o, 0.5));
    overwrites('upsampleNearest2d', [size * 6], ([o]) => be.upsampleNearest2d(x, o, n, c, h, w, 2, 3));
    const big = store(rand(size * 6));
    overwrites('upsampleNearest2dGrad', [size], ([o]) => be.upsampleNearest2dGrad(big, o, n, c, h, w, 2, 3));
    const gamma = store(rand(c, 0.5, 2)), beta = store(rand(c)), rm = store(rand(c)), rv = store(rand(c, 0.5, 2));
    for (const training of [true, false]) {
      const p = { batch: n, channels: c, height: h, width: w, eps: 1e-5, momentum: 0.1, training };
      overwrites(`batchNorm2d training ${training}`, [size, c, c], ([o, m, s]) => be.batchNorm2d(x, gamma, beta, training ? null : rm, training ? null : rv, o, m, s, p));
      const mean = store(rand(c)), invStd = store(rand(c, 0.5, 2));
      overwrites(`batchNorm2dGrad training ${training}`, [size, c, c], ([dx, dg, db]) => be.batchNorm2dGrad(y, x, gamma, mean, invStd, dx, dg, db, p));
      be.free(mean);
      be.free(invStd);
    }
    overwrites('mseLoss', [1], ([o]) => be.mseLoss(x, y, o, size));
    for (const s of [x, y, pos, big, gamma, beta, rm, rv]) be.free(s);
  });
});
