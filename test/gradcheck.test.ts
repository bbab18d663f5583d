/**
 * Gradient checks of every op by central finite differences in float64 (audit/gradcheck.ts), on shapes,
 * options and values drawn by fast-check. Values come from an sg.Rng seeded by a fast-check integer,
 * so a failure replays from the seed and path fast-check prints.
 *
 * Tensors are kept tiny (about 150 input elements per case at most): each element costs two forward passes.
 * Every case also checks that it leaves no live tensor behind.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import * as sg from '../src/engine/index.js';
import { sizeOf } from '../src/engine/dtype.js';
import { gradcheck, gradcheckTensors, type GradcheckOptions } from '../src/engine/audit/gradcheck.js';
import { OP_CASES, caseInputs } from '../src/engine/audit/op-cases.js';
import { buildAutoencoder } from '../src/models/autoencoder.js';

const F64 = { dtype: 'float64' as const };
const RUNS = 30;

/** pm: |x| in [0.1, 1] with a random sign (away from 0, for relu & co); pos: [0.5, 2]; any: [-1, 1]. */
type Kind = 'pm' | 'pos' | 'any';
interface Spec {
  shape: readonly number[];
  kind?: Kind;
}


function draw(rng: sg.Rng, n: number, kind: Kind): number[] {
  return Array.from({ length: n }, () => {
    if (kind === 'pos') return rng.uniform(0.5, 2);
    if (kind === 'any') return rng.uniform(-1, 1);
    const v = rng.uniform(0.1, 1);
    return rng.next() < 0.5 ? -v : v;
  });
}

/** Draws the inputs from `seed`, gradchecks f, and expects ok and no leaked tensor. */
function check(label: string, f: (xs: sg.Tensor[]) => sg.Tensor, specs: Spec[], seed: number, opts: GradcheckOptions = {}): void {
  const before = sg.memory().tensors;
  const rng = new sg.Rng(seed);
  const r = sg.scope(() => {
    const xs = specs.map((s) => sg.fromArray(draw(rng, sizeOf(s.shape), s.kind ?? 'pm'), s.shape, F64));
    // The output projection gets its own seed: reusing `seed` would make it equal to the first input's values.
    return gradcheck(f, xs, { seed: rng.nextUint32(), ...opts });
  });
  expect(r.checked, label).toBeGreaterThan(0);
  expect(r.ok, `${label}: max rel error ${r.maxRelError} (abs ${r.maxAbsError}) at ${r.worst}`).toBe(true);
  expect(sg.memory().tensors, `${label}: live tensors after the check`).toBe(before);
}

const int = (min: number, max: number): fc.Arbitrary<number> => fc.integer({ min, max });
const seedArb = fc.nat();

/** A shape of rank minRank..maxRank, dims 1..maxDim, at most maxSize elements. */
const shapeArb = (minRank: number, maxRank: number, maxDim: number, maxSize: number): fc.Arbitrary<number[]> =>
  fc.array(int(1, maxDim), { minLength: minRank, maxLength: maxRank }).filter((s) => sizeOf(s) <= maxSize);

// ---------------------------------------------------------------------------------------------
describe('gradcheck: elementwise', () => {
  type Unary = { name: string; kind: Kind; fn: (x: sg.Tensor, p: number) => sg.Tensor };
  const UNARY: Unary[] = [
    { name: 'neg', kind: 'any', fn: (x) => sg.neg(x) },
    { name: 'exp', kind: 'any', fn: (x) => sg.exp(x) },
    { name: 'log', kind: 'pos', fn: (x) => sg.log(x) },
    { name: 'sqrt', kind: 'pos', fn: (x) => sg.sqrt(x) },
    { name: 'square', kind: 'any', fn: (x) => sg.square(x) },
    { name: 'pow', kind: 'pos', fn: (x, p) => sg.pow(x, p) },
    { name: 'relu', kind: 'pm', fn: (x) => sg.relu(x) },
    { name: 'leakyRelu', kind: 'pm', fn: (x, p) => sg.leakyRelu(x, p) },
    { name: 'sigmoid', kind: 'any', fn: (x) => sg.sigmoid(x) },
    { name: 'tanh', kind: 'any', fn: (x) => sg.tanh(x) },
    { name: 'add(x, p)', kind: 'any', fn: (x, p) => sg.add(x, p) },
    { name: 'add(p, x)', kind: 'any', fn: (x, p) => sg.add(p, x) },
    { name: 'sub(x, p)', kind: 'any', fn: (x, p) => sg.sub(x, p) },
    { name: 'sub(p, x) (rsubScalar)', kind: 'any', fn: (x, p) => sg.sub(p, x) },
    { name: 'mul(x, p)', kind: 'any', fn: (x, p) => sg.mul(x, p) },
    { name: 'mul(p, x)', kind: 'any', fn: (x, p) => sg.mul(p, x) },
    { name: 'div(x, p) (divScalar)', kind: 'any', fn: (x, p) => sg.div(x, p) },
    { name: 'div(p, x) (rdivScalar)', kind: 'pos', fn: (x, p) => sg.div(p, x) },
  ];
  // Parameters (exponent, slope, scalar) away from 0 so div(x, p) stays tame; negative and fractional ones included.
  const paramArb = fc.constantFrom(-2.5, -1, -0.3, 0.2, 0.5, 1.5, 2, 3);

  it('unary and scalar ops on random shapes (rank 0-4) and parameters', () => {
    fc.assert(fc.property(fc.constantFrom(...UNARY), shapeArb(0, 4, 5, 120), paramArb, seedArb, (op, shape, p, seed) => {
      check(`${op.name} p=${p} ${JSON.stringify(shape)}`, ([x]) => op.fn(x, p), [{ shape, kind: op.kind }], seed);
    }), { numRuns: 120 });
  });

  /** Two shapes that broadcast to `out`: each a suffix of out (rank 0..rank(out)) with random dims set to 1. */
  const broadcastPairArb = shapeArb(1, 4, 4, 60).chain((out) => {
    const side = fc.tuple(int(0, out.length), fc.array(fc.boolean(), { minLength: out.length, maxLength: out.length }))
      .map(([rank, ones]) => out.slice(out.length - rank).map((d, i) => (ones[out.length - rank + i] ? 1 : d)));
    return fc.tuple(fc.constant(out), side, side);
  });

  it('add / sub / mul / div with numpy broadcasting (ranks 0-4, dims of 1 on either side)', () => {
    const ops = [
      { name: 'add', fn: sg.add, kindB: 'any' as Kind },
      { name: 'sub', fn: sg.sub, kindB: 'any' as Kind },
      { name: 'mul', fn: sg.mul, kindB: 'any' as Kind },
      { name: 'div', fn: sg.div, kindB: 'pos' as Kind },
    ];
    fc.assert(fc.property(fc.constantFrom(...ops), broadcastPairArb, fc.boolean(), seedArb, (op, [, a, b], swap, seed) => {
      // swap: which side has the (possibly) smaller shape; div keeps its positive operand as the divisor.
      const [sa, sb] = swap ? [b, a] : [a, b];
      check(`${op.name} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`, ([x, y]) => op.fn(x, y),
        [{ shape: sa, kind: 'any' }, { shape: sb, kind: op.kindB }], seed);
    }), { numRuns: 120 });
  });

  it('one tensor feeding both sides of a binary op (gradients summed over the two paths)', () => {
    // Not div(x, x) or sub(x, x): their gradient is exactly 0 and the relative error of a rounding residue is meaningless.
    fc.assert(fc.property(shapeArb(1, 3, 4, 40), seedArb, (shape, seed) => {
      check('mul(x,x)', ([x]) => sg.mul(x, x), [{ shape }], seed);
      check('add(x,x)', ([x]) => sg.add(x, x), [{ shape }], seed);
      check('div(x,exp(x))', ([x]) => sg.div(x, sg.exp(x)), [{ shape }], seed);
      check('sub(x,square(x))', ([x]) => sg.sub(x, sg.square(x)), [{ shape }], seed);
    }), { numRuns: 5 });
  });

  it('mseLoss on random shapes', () => {
    fc.assert(fc.property(shapeArb(0, 4, 5, 70), seedArb, (shape, seed) => {
      check(`mseLoss ${JSON.stringify(shape)}`, ([a, b]) => sg.mseLoss(a, b), [{ shape, kind: 'any' }, { shape, kind: 'any' }], seed);
    }), { numRuns: RUNS });
  });
});

// ---------------------------------------------------------------------------------------------
describe('gradcheck: reductions and shape ops', () => {
  /** A shape and a random axis list (some given negative), or undefined (= all axes). */
  const axesCaseArb = shapeArb(1, 4, 5, 120).chain((shape) => fc.tuple(
    fc.constant(shape),
    fc.option(fc.subarray(shape.map((_, i) => i)).chain((axes) =>
      fc.array(fc.boolean(), { minLength: axes.length, maxLength: axes.length })
        .map((neg) => axes.map((a, i) => (neg[i] ? a - shape.length : a)).reverse())), { nil: undefined }),
    fc.boolean(),
  ));

  it('sum / mean over random axes, with and without keepdims', () => {
    fc.assert(fc.property(fc.constantFrom('sum', 'mean'), axesCaseArb, seedArb, (op, [shape, axes, keepdims], seed) => {
      const f = op === 'sum' ? sg.sum : sg.mean;
      check(`${op} ${JSON.stringify(shape)} axes ${JSON.stringify(axes)} keepdims ${keepdims}`, ([x]) => f(x, axes, keepdims), [{ shape, kind: 'any' }], seed);
    }), { numRuns: 80 });
  });

  it('sumTo from a broadcast shape', () => {
    const arb = shapeArb(1, 4, 4, 100).chain((big) => fc.tuple(fc.constant(big), int(0, big.length),
      fc.array(fc.boolean(), { minLength: big.length, maxLength: big.length })));
    fc.assert(fc.property(arb, seedArb, ([big, rank, ones], seed) => {
      const small = big.slice(big.length - rank).map((d, i) => (ones[i] ? 1 : d));
      check(`sumTo ${JSON.stringify(big)} -> ${JSON.stringify(small)}`, ([g]) => sg.sumTo(g, small), [{ shape: big, kind: 'any' }], seed);
    }), { numRuns: RUNS });
  });

  it('permute with random permutations, and transpose of two random axes', () => {
    const arb = shapeArb(1, 4, 5, 120).chain((shape) => fc.tuple(
      fc.constant(shape),
      fc.shuffledSubarray(shape.map((_, i) => i), { minLength: shape.length, maxLength: shape.length }),
      int(-shape.length, shape.length - 1), int(-shape.length, shape.length - 1),
    ));
    fc.assert(fc.property(arb, seedArb, ([shape, perm, a0, a1], seed) => {
      check(`permute ${JSON.stringify(shape)} by ${JSON.stringify(perm)}`, ([x]) => sg.permute(x, perm), [{ shape, kind: 'any' }], seed);
      if (shape.length >= 2) {
        check(`transpose ${JSON.stringify(shape)} ${a0} ${a1}`, ([x]) => sg.transpose(x, a0, a1), [{ shape, kind: 'any' }], seed);
      }
    }), { numRuns: 50 });
  });

  it('reshape (with -1) and broadcastTo', () => {
    const arb = shapeArb(1, 4, 4, 60).chain((out) => fc.tuple(fc.constant(out), int(0, out.length),
      fc.array(fc.boolean(), { minLength: out.length, maxLength: out.length }), int(0, out.length - 1)));
    fc.assert(fc.property(arb, seedArb, ([out, rank, ones, inferAt], seed) => {
      const src = out.slice(out.length - rank).map((d, i) => (ones[i] ? 1 : d));
      check(`broadcastTo ${JSON.stringify(src)} -> ${JSON.stringify(out)}`, ([x]) => sg.broadcastTo(x, out), [{ shape: src, kind: 'any' }], seed);
      const target = [...out].reverse();
      target[inferAt] = -1;
      check(`reshape ${JSON.stringify(out)} -> ${JSON.stringify(target)}`, ([x]) => sg.reshape(x, target), [{ shape: out, kind: 'any' }], seed);
    }), { numRuns: RUNS });
  });

  it('concat of 1-3 tensors along a random axis (negative axes too)', () => {
    const arb = shapeArb(1, 4, 4, 40).chain((shape) => fc.tuple(
      fc.constant(shape),
      int(0, shape.length - 1),
      fc.array(int(1, 3), { minLength: 1, maxLength: 3 }),
      fc.boolean(),
    ));
    fc.assert(fc.property(arb, seedArb, ([shape, axis, extents, negative], seed) => {
      const specs = extents.map((e) => ({ shape: shape.map((d, i) => (i === axis ? e : d)), kind: 'any' as Kind }));
      const ax = negative ? axis - shape.length : axis;
      check(`concat ${JSON.stringify(specs.map((s) => s.shape))} axis ${ax}`, (xs) => sg.concat(xs, ax), specs, seed);
    }), { numRuns: 50 });
  });

  /** A shape and a box inside it. */
  const boxArb = shapeArb(1, 4, 5, 120).chain((shape) => fc.tuple(
    fc.constant(shape),
    fc.tuple(...shape.map((d) => int(0, d - 1).chain((b) => fc.tuple(fc.constant(b), int(1, d - b))))),
  ));

  it('slice (and its adjoint pad) of a random box', () => {
    fc.assert(fc.property(boxArb, seedArb, ([shape, box], seed) => {
      const begin = box.map(([b]) => b), size = box.map(([, s]) => s);
      check(`slice ${JSON.stringify(shape)} at ${JSON.stringify(begin)} size ${JSON.stringify(size)}`, ([x]) => sg.slice(x, begin, size), [{ shape, kind: 'any' }], seed);
      check(`pad ${JSON.stringify(size)} into ${JSON.stringify(shape)} at ${JSON.stringify(begin)}`, ([x]) => sg.pad(x, shape, begin), [{ shape: size, kind: 'any' }], seed);
    }), { numRuns: 50 });
  });
});

// ---------------------------------------------------------------------------------------------
describe('gradcheck: matmul', () => {
  it('2-D and batched, with every transpose flag combination (matmulT)', () => {
    const arb = fc.record({
      batch: fc.option(int(1, 3), { nil: undefined }), m: int(1, 6), k: int(1, 6), n: int(1, 6),
      transA: fc.boolean(), transB: fc.boolean(),
    }).filter(({ batch, m, k, n }) => (batch ?? 1) * (m * k + k * n) <= 150);
    fc.assert(fc.property(arb, seedArb, ({ batch, m, k, n, transA, transB }, seed) => {
      const pre = batch === undefined ? [] : [batch];
      const sa = [...pre, ...(transA ? [k, m] : [m, k])];
      const sb = [...pre, ...(transB ? [n, k] : [k, n])];
      check(`matmulT ${JSON.stringify(sa)}${transA ? '^T' : ''} @ ${JSON.stringify(sb)}${transB ? '^T' : ''}`,
        ([a, b]) => sg.matmulT(a, b, transA, transB), [{ shape: sa, kind: 'any' }, { shape: sb, kind: 'any' }], seed);
      if (!transA && !transB) check('matmul', ([a, b]) => sg.matmul(a, b), [{ shape: sa, kind: 'any' }, { shape: sb, kind: 'any' }], seed);
    }), { numRuns: 60 });
  });
});

// ---------------------------------------------------------------------------------------------
const strideArb: fc.Arbitrary<number | [number, number]> = fc.oneof(int(1, 3), fc.tuple(int(1, 3), int(1, 3)));
const paddingArb: fc.Arbitrary<sg.Padding> = fc.oneof(
  fc.constant('same' as const),
  fc.constant('valid' as const),
  int(0, 2),
  fc.tuple(int(0, 2), int(0, 2)),
  fc.tuple(int(0, 2), int(0, 2), int(0, 2), int(0, 2)),
);

interface ConvCase {
  n: number; c: number; o: number; h: number; w: number; kh: number; kw: number;
  stride: number | [number, number]; padding: sg.Padding; bias: boolean;
}

function geometry(p: ConvCase): sg.Conv2dGeometry | null {
  try {
    return sg.conv2dGeometry('test', [p.n, p.c, p.h, p.w], [p.o, p.c, p.kh, p.kw], { stride: p.stride, padding: p.padding });
  } catch {
    return null;
  }
}

/** Conv cases whose geometry is valid and whose inputs (x, w, bias, dy) stay within ~160 elements. */
const convArb: fc.Arbitrary<ConvCase & { g: sg.Conv2dGeometry }> = fc.record({
  n: int(1, 2), c: int(1, 2), o: int(1, 3), h: int(1, 7), w: int(1, 7), kh: int(1, 4), kw: int(1, 4),
  stride: strideArb, padding: paddingArb, bias: fc.boolean(),
}).map((p) => ({ ...p, g: geometry(p) }))
  .filter((p): p is ConvCase & { g: sg.Conv2dGeometry } => p.g !== null)
  .filter((p) => p.n * p.c * p.h * p.w + p.o * p.c * p.kh * p.kw + p.n * p.o * p.g.outHeight * p.g.outWidth <= 160);

const convLabel = (name: string, p: ConvCase): string =>
  `${name} x [${p.n},${p.c},${p.h},${p.w}] w [${p.o},${p.c},${p.kh},${p.kw}] stride ${JSON.stringify(p.stride)} padding ${JSON.stringify(p.padding)}${p.bias ? ' bias' : ''}`;

describe('gradcheck: convolutions', () => {
  it('conv2d: random strides (unequal too), paddings of every form, kernels 1-4, optional bias', () => {
    fc.assert(fc.property(convArb, seedArb, (p, seed) => {
      const opts = { stride: p.stride, padding: p.padding };
      const specs: Spec[] = [{ shape: [p.n, p.c, p.h, p.w] }, { shape: [p.o, p.c, p.kh, p.kw] }, ...(p.bias ? [{ shape: [p.o] }] : [])];
      check(convLabel('conv2d', p), ([x, w, b]) => sg.conv2d(x, w, { ...opts, bias: b ?? null }), specs, seed);
    }), { numRuns: 80 });
  });

  it('conv2dGradInput (its own backward: conv2d and conv2dGradWeight)', () => {
    fc.assert(fc.property(convArb, seedArb, (p, seed) => {
      const opts = { stride: p.stride, padding: p.padding };
      const dy = [p.n, p.o, p.g.outHeight, p.g.outWidth];
      check(convLabel('conv2dGradInput', p), ([d, w]) => sg.conv2dGradInput(d, w, [p.n, p.c, p.h, p.w], opts),
        [{ shape: dy }, { shape: [p.o, p.c, p.kh, p.kw] }], seed);
    }), { numRuns: 60 });
  });

  it('conv2dGradWeight (its own backward: conv2dGradInput and conv2d)', () => {
    fc.assert(fc.property(convArb, seedArb, (p, seed) => {
      const opts = { stride: p.stride, padding: p.padding };
      const dy = [p.n, p.o, p.g.outHeight, p.g.outWidth];
      check(convLabel('conv2dGradWeight', p), ([x, d]) => sg.conv2dGradWeight(x, d, [p.kh, p.kw], opts),
        [{ shape: [p.n, p.c, p.h, p.w] }, { shape: dy }], seed);
    }), { numRuns: 60 });
  });

  it('convTranspose2d: random stride, padding, outputPadding < stride, optional bias', () => {
    const arb = fc.record({
      n: int(1, 2), cin: int(1, 3), cout: int(1, 3), h: int(1, 4), w: int(1, 4), kh: int(1, 4), kw: int(1, 4),
      sh: int(1, 3), sw: int(1, 3), ph: int(0, 2), pw: int(0, 2), opFrac: fc.tuple(fc.nat(), fc.nat()),
      pairs: fc.boolean(), bias: fc.boolean(),
    }).map((p) => {
      const oph = p.opFrac[0] % p.sh, opw = p.opFrac[1] % p.sw;
      const hOut = (p.h - 1) * p.sh - 2 * p.ph + p.kh + oph;
      const wOut = (p.w - 1) * p.sw - 2 * p.pw + p.kw + opw;
      return { ...p, oph, opw, hOut, wOut };
    }).filter((p) => p.hOut >= 1 && p.wOut >= 1
      && p.n * p.cin * p.h * p.w + p.cin * p.cout * p.kh * p.kw + p.n * p.cout * p.hOut * p.wOut <= 170);
    fc.assert(fc.property(arb, seedArb, (p, seed) => {
      // Pairs when asked (or when the two axes differ), plain numbers otherwise.
      const two = (a: number, b: number): number | [number, number] => (p.pairs || a !== b ? [a, b] : a);
      const opts = { stride: two(p.sh, p.sw), padding: two(p.ph, p.pw), outputPadding: two(p.oph, p.opw) };
      const specs: Spec[] = [{ shape: [p.n, p.cin, p.h, p.w] }, { shape: [p.cin, p.cout, p.kh, p.kw] }, ...(p.bias ? [{ shape: [p.cout] }] : [])];
      check(`convTranspose2d x [${p.n},${p.cin},${p.h},${p.w}] w [${p.cin},${p.cout},${p.kh},${p.kw}] ${JSON.stringify(opts)}${p.bias ? ' bias' : ''}`,
        ([x, w, b]) => {
          const y = sg.convTranspose2d(x, w, { ...opts, bias: b ?? null });
          expect(y.shape).toEqual([p.n, p.cout, p.hOut, p.wOut]);
          return y;
        }, specs, seed);
    }), { numRuns: 80 });
  });
});

// ---------------------------------------------------------------------------------------------
describe('gradcheck: upsampling and batch norm', () => {
  const scaleArb: fc.Arbitrary<number | [number, number]> = fc.oneof(int(1, 3), fc.tuple(int(1, 3), int(1, 3)));
  const pair = (s: number | [number, number]): [number, number] => (typeof s === 'number' ? [s, s] : s);

  it('upsampleNearest2d with random integer scales', () => {
    const arb = fc.tuple(int(1, 2), int(1, 3), int(1, 4), int(1, 4), scaleArb);
    fc.assert(fc.property(arb, seedArb, ([n, c, h, w, s], seed) => {
      check(`upsampleNearest2d [${n},${c},${h},${w}] scale ${JSON.stringify(s)}`, ([x]) => sg.upsampleNearest2d(x, s), [{ shape: [n, c, h, w], kind: 'any' }], seed);
    }), { numRuns: RUNS });
  });

  it('upsampleNearest2dGrad with random integer scales', () => {
    const arb = fc.tuple(int(1, 2), int(1, 2), int(1, 3), int(1, 3), scaleArb)
      .filter(([n, c, h, w, s]) => n * c * h * w * pair(s)[0] * pair(s)[1] <= 150);
    fc.assert(fc.property(arb, seedArb, ([n, c, h, w, s], seed) => {
      const [sh, sw] = pair(s);
      check(`upsampleNearest2dGrad [${n},${c},${h * sh},${w * sw}] scale ${JSON.stringify(s)}`, ([d]) => sg.upsampleNearest2dGrad(d, s),
        [{ shape: [n, c, h * sh, w * sw], kind: 'any' }], seed);
    }), { numRuns: RUNS });
  });

  // At least 4 values per channel: with 2 or 3 the normalised output is nearly constant and its gradient is ~eps-sized.
  const bnArb = fc.tuple(int(1, 3), int(1, 3), int(1, 4), int(1, 4))
    .filter(([n, c, h, w]) => n * h * w >= 4 && n * c * h * w <= 110);
  const momentumArb = fc.constantFrom(0.1, 0.5, 1);
  const epsArb = fc.constantFrom(1e-5, 1e-3, 0.1);

  it('batchNorm2d training (batch statistics), with and without running statistics', () => {
    fc.assert(fc.property(bnArb, fc.boolean(), momentumArb, epsArb, seedArb, ([n, c, h, w], running, momentum, eps, seed) => {
      const specs: Spec[] = [{ shape: [n, c, h, w], kind: 'any' }, { shape: [c], kind: 'pos' }, { shape: [c], kind: 'any' }];
      if (running) specs.push({ shape: [c], kind: 'any' }, { shape: [c], kind: 'pos' });
      check(`batchNorm2d training [${n},${c},${h},${w}] running ${running} momentum ${momentum} eps ${eps}`,
        ([x, g, b, m, v]) => sg.batchNorm2d(x, g, b, m ?? null, v ?? null, { training: true, momentum, eps }),
        specs, seed, running ? { check: [true, true, true, false, false] } : {});
    }), { numRuns: 50 });
  });

  it('batchNorm2d eval (running statistics; only x, gamma and beta checked)', () => {
    fc.assert(fc.property(bnArb, epsArb, seedArb, ([n, c, h, w], eps, seed) => {
      check(`batchNorm2d eval [${n},${c},${h},${w}] eps ${eps}`,
        ([x, g, b, m, v]) => sg.batchNorm2d(x, g, b, m, v, { training: false, eps }),
        [{ shape: [n, c, h, w], kind: 'any' }, { shape: [c], kind: 'pm' }, { shape: [c], kind: 'any' }, { shape: [c], kind: 'any' }, { shape: [c], kind: 'pos' }],
        seed, { check: [true, true, true, false, false] });
    }), { numRuns: 40 });
  });
});

// ---------------------------------------------------------------------------------------------
describe('gradcheck: composition', () => {
  it('a small U-Net-like block with a skip (conv, batch norm, leakyRelu, upsample, concat, convTranspose, mse)', () => {
    fc.assert(fc.property(seedArb, (seed) => {
      check('block', ([x, w1, g, b, w2, t]) => {
        const h = sg.conv2d(x, w1, { stride: 2, padding: 'same' });               // [1,2,3,3]
        const a = sg.leakyRelu(sg.batchNorm2d(h, g, b, null, null, { training: true }), 0.2);
        const u = sg.upsampleNearest2d(a, 2);                                        // [1,2,6,6]
        const s = sg.concat([sg.slice(u, [0, 0, 0, 0], [1, 2, 5, 5]), x], 1);        // [1,3,5,5]: the skip
        const y = sg.convTranspose2d(s, w2, { stride: 1, padding: 1 });             // [1,1,5,5]
        return sg.mseLoss(sg.tanh(y), t);
      }, [
        { shape: [1, 1, 5, 5], kind: 'any' }, { shape: [2, 1, 3, 3], kind: 'any' }, { shape: [2], kind: 'pos' }, { shape: [2], kind: 'any' },
        { shape: [3, 1, 3, 3], kind: 'any' }, { shape: [1, 1, 5, 5], kind: 'any' },
      ], seed);
    }), { numRuns: 3 });
  });
});

// ---------------------------------------------------------------------------------------------
describe('gradcheck: OP_CASES', () => {
  it('every case of OP_CASES passes', () => {
    const before = sg.memory().tensors;
    const failures: string[] = [];
    const rng = new sg.Rng(2024);
    for (const c of OP_CASES) {
      try {
        const r = sg.scope(() => gradcheck(c.fn, caseInputs(c, rng), c.check ? { check: c.check } : {}));
        if (!r.ok || r.checked === 0) failures.push(`${c.name}: max rel error ${r.maxRelError} at ${r.worst} (${r.checked} checked)`);
      } catch (e) {
        failures.push(`${c.name}: threw ${(e as Error).message}`);
      }
    }
    expect(failures).toEqual([]);
    expect(sg.memory().tensors).toBe(before);
  });
});

describe('gradcheck options', () => {
  it('an unknown option is an error naming it', () => {
    expect(() => gradcheck(([a]) => sg.sum(a), [sg.ones([2], { dtype: 'float64' })], { tol: 1e-3 } as never))
      .toThrow("gradcheck: unknown option 'tol' (expected eps, tolerance, check, seed)");
  });
});

describe('gradcheck: its own arguments', () => {
  const f64 = (shape: number[]): sg.Tensor => sg.uniform(shape, -1, 1, { dtype: 'float64', backend: 'cpu', rng: new sg.Rng(2) });
  it('refuses what would check nothing or crash later, naming it', () => {
    const [a, b] = [f64([3]), f64([3])];
    const mul = ([x, y]: sg.Tensor[]): sg.Tensor => sg.mul(x, y);
    expect(() => gradcheck(mul, [a, b], { check: [false] })).toThrow('gradcheck: check must list true or false for each of the 2 inputs, got [false]');
    expect(() => gradcheck(mul, a as never)).toThrow('gradcheck: inputs must be an array of tensors, got an object (Tensor)');
    expect(() => gradcheck(mul, [3] as never)).toThrow('gradcheck: input 0 must be a Tensor, got a number (3)');
    expect(() => gradcheck(() => 3 as never, [a])).toThrow('gradcheck: f must return a Tensor, got a number (3)');
    expect(() => gradcheck(mul, [a, b], { eps: 0 })).toThrow('gradcheck: eps must be a finite number > 0, got a number (0)');
    expect(() => gradcheck(mul, [a, b], { tolerance: -1 })).toThrow('gradcheck: tolerance must be a finite number > 0');
    expect(gradcheck(mul, [a, b], { check: [true, false] }).checked).toBe(3);
    a.dispose();
    b.dispose();
  });
});

describe('gradcheck: layers', () => {
  it('whole layers in float64 (the layers\' dtype option): a conv -> batch norm -> leaky ReLU block', () => {
    const conv = new sg.Conv2d(2, 3, 3, { padding: 'same', dtype: 'float64', rng: new sg.Rng(3) });
    const bn = new sg.BatchNorm2d(3, { dtype: 'float64' });
    expect([conv.weight.dtype, conv.bias!.dtype, bn.weight.dtype, bn.runningVar.dtype]).toEqual(['float64', 'float64', 'float64', 'float64']);
    const x = sg.uniform([2, 2, 4, 4], -1, 1, { dtype: 'float64', rng: new sg.Rng(4) });
    const r = gradcheck(([t]) => sg.leakyRelu(bn.forward(conv.forward(t)), 0.2), [x]);
    expect(r.ok, r.worst).toBe(true);
    conv.dispose();
    bn.dispose();
    x.dispose();
  });

  it('whole autoencoders in float64 (buildAutoencoder\'s dtype option): esann AESc and icpr AE, batch norm training, every parameter and the input', () => {
    for (const [preset, o] of [['esann', { skips: true, depth: 3, inputSize: 15 }], ['icpr', { skips: false, depth: 2, inputSize: 8 }]] as const) {
      const net = buildAutoencoder(preset, { ...o, baseChannels: 2, seed: 5, dtype: 'float64' }).train();
      expect(new Set([...net.stateDict().values()].map((t) => t.dtype))).toEqual(new Set(['float64']));
      const x = sg.uniform([3, 1, o.inputSize, o.inputSize], 0, 1, { dtype: 'float64', rng: new sg.Rng(6) });
      const r = gradcheck(([t]) => net.forward(t).output, [x]);
      expect(r.ok, `${preset}, input: ${r.worst}`).toBe(true);
      const params = net.parameters();
      // gradcheck's backward through the input gave the parameters no .grad (backward's inputs: the input only).
      expect(params.every((t) => t.grad === null)).toBe(true);
      const before = params.map((p) => Array.from(p.dataSync()));
      const p = gradcheckTensors(() => net.forward(x).output, params);
      expect(p.checked).toBe(net.parameterCount());
      expect(p.ok, `${preset}, parameters: ${p.worst}`).toBe(true);
      // The parameters end as they began: the same values, no .grad.
      expect(params.map((t) => Array.from(t.dataSync()))).toEqual(before);
      expect(params.every((t) => t.grad === null)).toBe(true);
      net.dispose();
      x.dispose();
    }
  });

  it('gradcheckTensors finds a wrong gradient of a tensor the closure reads, and refuses what it cannot check', () => {
    const w = sg.uniform([3], -1, 1, { dtype: 'float64', rng: new sg.Rng(8), requiresGrad: true });
    w.name = 'w';
    const ok = gradcheckTensors(() => sg.mul(w, w), [w]);
    expect(ok).toMatchObject({ ok: true, checked: 3 });
    // An identity op whose backward doubles the gradient.
    const wrong = (): sg.Tensor => sg.runOp({
      op: 'identityTwiceTheGradient', inputs: [w], outputs: [w.shape], flops: 0,
      kernel: (be, [o], [ws]) => be.copy(ws, [1], 0, o, [1], 0, w.shape),
      backward: (gy) => [sg.add(gy, gy)],
    })[0];
    const bad = gradcheckTensors(wrong, [w]);
    expect(bad.ok).toBe(false);
    expect(bad.worst).toMatch(/^tensor 0 'w' \[3\] element \d: analytic/);
    // f throwing half-way leaves w as it was, with no .grad.
    let calls = 0;
    const w0 = Array.from(w.dataSync());
    expect(() => gradcheckTensors(() => { if (++calls === 3) throw new Error('boom'); return sg.mul(w, w); }, [w])).toThrow('boom');
    expect(Array.from(w.dataSync())).toEqual(w0);
    expect(w.grad).toBeNull();
    const notLeaf = sg.mul(w, 2);
    expect(() => gradcheckTensors(() => notLeaf, [notLeaf])).toThrow("gradcheckTensors: tensor 0 is the output of an op, not a leaf: perturbing its values would not reach f's result");
    notLeaf.dispose();
    // A .grad the tensor already holds is neither added to nor read as the analytic gradient: it is put back as it was.
    const held = sg.fromArray([7, 8, 9], [3], { dtype: 'float64' });
    w.grad = held;
    expect(gradcheckTensors(() => sg.mul(w, w), [w])).toMatchObject({ ok: true, checked: 3 });
    expect(w.grad).toBe(held);
    expect(Array.from(held.dataSync())).toEqual([7, 8, 9]);
    expect(() => gradcheckTensors(wrong, [w, w])).toThrow('gradcheckTensors: a tensor is listed twice');
    expect(w.grad).toBe(held);
    held.dispose();
    w.grad = null;
    const f32 = sg.ones([2], { requiresGrad: true });
    expect(() => gradcheckTensors(() => f32, [f32])).toThrow('gradcheckTensors: tensor 0 must be float64 on the cpu backend (got float32 on cpu)');
    const still = sg.ones([2], { dtype: 'float64' });
    expect(() => gradcheckTensors(() => still, [still])).toThrow('gradcheckTensors: tensor 0 does not require gradients');
    expect(() => gradcheckTensors(() => sg.mul(w, w), [w], { eps: 0 })).toThrow('gradcheckTensors: eps must be a finite number > 0');
    for (const t of [w, f32, still]) t.dispose();
  });
});
