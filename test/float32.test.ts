/**
 * float32 agrees with float64. For each op family, the same inputs (drawn once and rounded to float32, so both
 * dtypes see identical values) go through the op in float32 and in float64; the forward outputs and the
 * gradients of every input (backward with the same random output gradient, also float32-exact) are compared:
 *
 *     max|f32 - f64| <= BOUND * (1 + max|f64|),   BOUND = 1e-5
 *
 * (about 100 float32 ulps of the largest value). Every kernel either accumulates in float64 or sums few terms,
 * so no op needs a looser bound; a relaxation would have to say why next to it.
 *
 * The float64 results themselves are anchored to direct-summation references for conv and matmul at sizes that
 * reach the kernels' large-size paths (several im2col row chunks; worker threads), which the tiny shapes of the
 * gradient checks never do.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import * as sg from '../src/engine/index.js';
import { sizeOf } from '../src/engine/dtype.js';
import { convCaseArb, convLabel } from './helpers/conv-cases.js';
import { getThreadCount, parallelRunCount } from '../src/engine/cpu/threads.js';

const BOUND = 1e-5;

const int = (min: number, max: number): fc.Arbitrary<number> => fc.integer({ min, max });
const seedArb = fc.nat();

/** any: [-1, 1]; pos: [0.5, 2]; pm: |x| in [0.1, 1], random sign (away from the kinks of relu & co). */
type Kind = 'any' | 'pos' | 'pm';
interface Spec {
  shape: readonly number[];
  kind?: Kind;
}

/** float32-exact values, so both dtypes get the very same inputs. */
function draw(rng: sg.Rng, n: number, kind: Kind = 'any'): number[] {
  return Array.from({ length: n }, () => {
    if (kind === 'pos') return Math.fround(rng.uniform(0.5, 2));
    if (kind === 'any') return Math.fround(rng.uniform(-1, 1));
    const v = Math.fround(rng.uniform(0.1, 1));
    return rng.next() < 0.5 ? -v : v;
  });
}

interface Run {
  out: Float64Array;
  grads: Array<Float64Array | null>;
}

/** f on `values` in `dtype`: forward output and, with `backward`, the gradient of every input for output gradient r. */
/** Inputs whose checkGrad is false are constants (batch norm's running statistics may not require gradients). */
function run(dtype: sg.DType, f: (xs: sg.Tensor[]) => sg.Tensor, specs: Spec[], values: number[][], rSeed: number, backward: boolean, checkGrad?: boolean[]): Run {
  return sg.scope(() => {
    const xs = specs.map((s, i) => sg.fromArray(values[i], s.shape, { dtype, requiresGrad: backward && (checkGrad?.[i] ?? true) }));
    const y = f(xs);
    const out = Float64Array.from(y.dataSync());
    let grads: Array<Float64Array | null> = xs.map(() => null);
    if (backward) {
      const r = sg.fromArray(draw(new sg.Rng(rSeed), y.size), y.shape, { dtype });
      y.backward(r);
      grads = xs.map((x) => (x.grad ? Float64Array.from(x.grad.dataSync()) : null));
      sg.zeroGrad(xs);
    }
    return { out, grads };
  });
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Expects max|got - want| <= bound * (1 + max|want|). */
function expectClose(label: string, got: ArrayLike<number>, want: ArrayLike<number>, bound = BOUND): void {
  expect(got.length, `${label}: length`).toBe(want.length);
  let err = 0, at = -1;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    if (!(e <= err)) {
      err = e;
      at = i;
    }
  }
  const limit = bound * (1 + maxAbs(want));
  expect(err, `${label}: max |diff| ${err} at element ${at} (got ${got[at]}, want ${want[at]}) > ${limit}`).toBeLessThanOrEqual(limit);
}

/**
 * Runs f in float32 and float64 on the same inputs and compares outputs and (with backward) the gradients of the
 * inputs where `checkGrad` is not false. Also checks that nothing leaks.
 */
function compare(label: string, f: (xs: sg.Tensor[]) => sg.Tensor, specs: Spec[], seed: number,
  opts: { backward?: boolean; checkGrad?: boolean[]; bound?: number } = {}): void {
  const before = sg.memory().tensors;
  const rng = new sg.Rng(seed);
  const values = specs.map((s) => draw(rng, sizeOf(s.shape), s.kind));
  const rSeed = rng.nextUint32();
  const backward = opts.backward ?? true;
  const r64 = run('float64', f, specs, values, rSeed, backward, opts.checkGrad);
  const r32 = run('float32', f, specs, values, rSeed, backward, opts.checkGrad);
  expectClose(`${label} forward`, r32.out, r64.out, opts.bound);
  if (backward) {
    specs.forEach((_, i) => {
      if (opts.checkGrad && !opts.checkGrad[i]) return;
      const [g32, g64] = [r32.grads[i], r64.grads[i]];
      expect(g64, `${label}: input ${i} got no float64 gradient`).not.toBeNull();
      expect(g32, `${label}: input ${i} got no float32 gradient`).not.toBeNull();
      expectClose(`${label} gradient of input ${i}`, g32!, g64!, opts.bound);
    });
  }
  expect(sg.memory().tensors, `${label}: live tensors`).toBe(before);
}

const shapeArb = (minRank: number, maxRank: number, maxDim: number, maxSize: number): fc.Arbitrary<number[]> =>
  fc.array(int(1, maxDim), { minLength: minRank, maxLength: maxRank }).filter((s) => sizeOf(s) <= maxSize);

// ---------------------------------------------------------------------------------------------
describe('float32 vs float64: elementwise', () => {
  const UNARY: Array<{ name: string; kind: Kind; fn: (x: sg.Tensor) => sg.Tensor }> = [
    { name: 'neg', kind: 'any', fn: (x) => sg.neg(x) },
    { name: 'exp', kind: 'any', fn: (x) => sg.exp(x) },
    { name: 'log', kind: 'pos', fn: (x) => sg.log(x) },
    { name: 'sqrt', kind: 'pos', fn: (x) => sg.sqrt(x) },
    { name: 'square', kind: 'any', fn: (x) => sg.square(x) },
    { name: 'pow 2.5', kind: 'pos', fn: (x) => sg.pow(x, 2.5) },
    { name: 'pow -1.5', kind: 'pos', fn: (x) => sg.pow(x, -1.5) },
    { name: 'relu', kind: 'pm', fn: (x) => sg.relu(x) },
    { name: 'leakyRelu', kind: 'pm', fn: (x) => sg.leakyRelu(x, 0.2) },
    { name: 'sigmoid', kind: 'any', fn: (x) => sg.sigmoid(x) },
    { name: 'tanh', kind: 'any', fn: (x) => sg.tanh(x) },
    { name: 'add scalar', kind: 'any', fn: (x) => sg.add(x, 0.3) },
    { name: 'mul scalar', kind: 'any', fn: (x) => sg.mul(x, -1.7) },
    { name: 'rsub scalar', kind: 'any', fn: (x) => sg.sub(2, x) },
    { name: 'rdiv scalar', kind: 'pos', fn: (x) => sg.div(3, x) },
    { name: 'div by scalar', kind: 'any', fn: (x) => sg.div(x, 0.7) },
  ];

  it('unary and scalar ops', () => {
    fc.assert(fc.property(fc.constantFrom(...UNARY), shapeArb(1, 4, 8, 600), seedArb, (op, shape, seed) => {
      compare(`${op.name} ${JSON.stringify(shape)}`, ([x]) => op.fn(x), [{ shape, kind: op.kind }], seed);
    }), { numRuns: 60 });
  });

  it('add / sub / mul / div with broadcasting', () => {
    const arb = shapeArb(1, 4, 6, 400).chain((out) => {
      const side = fc.tuple(int(0, out.length), fc.array(fc.boolean(), { minLength: out.length, maxLength: out.length }))
        .map(([rank, ones]) => out.slice(out.length - rank).map((d, i) => (ones[out.length - rank + i] ? 1 : d)));
      return fc.tuple(side, side);
    });
    const ops = [['add', sg.add], ['sub', sg.sub], ['mul', sg.mul], ['div', sg.div]] as const;
    fc.assert(fc.property(fc.constantFrom(...ops), arb, seedArb, ([name, fn], [a, b], seed) => {
      compare(`${name} ${JSON.stringify(a)} ${JSON.stringify(b)}`, ([x, y]) => fn(x, y),
        [{ shape: a }, { shape: b, kind: name === 'div' ? 'pos' : 'any' }], seed);
    }), { numRuns: 40 });
  });

  it('mseLoss', () => {
    fc.assert(fc.property(shapeArb(1, 4, 10, 3000), seedArb, (shape, seed) => {
      compare(`mseLoss ${JSON.stringify(shape)}`, ([a, b]) => sg.mseLoss(a, b), [{ shape }, { shape }], seed);
    }), { numRuns: 20 });
  });
});

// ---------------------------------------------------------------------------------------------
describe('float32 vs float64: reductions and shape ops', () => {
  it('sum / mean over random axes (up to ~4000 terms per output)', () => {
    const arb = shapeArb(1, 4, 16, 4096).chain((shape) => fc.tuple(fc.constant(shape),
      fc.option(fc.subarray(shape.map((_, i) => i)), { nil: undefined }), fc.boolean()));
    fc.assert(fc.property(fc.constantFrom('sum', 'mean'), arb, seedArb, (op, [shape, axes, keepdims], seed) => {
      const f = op === 'sum' ? sg.sum : sg.mean;
      compare(`${op} ${JSON.stringify(shape)} axes ${JSON.stringify(axes)} keepdims ${keepdims}`, ([x]) => f(x, axes, keepdims), [{ shape }], seed);
    }), { numRuns: 40 });
  });

  it('permute, slice, concat, broadcastTo (exact copies: f32 equals f64 rounded)', () => {
    fc.assert(fc.property(shapeArb(2, 4, 6, 500), seedArb, (shape, seed) => {
      const perm = shape.map((_, i) => i).reverse();
      compare(`permute ${JSON.stringify(shape)}`, ([x]) => sg.permute(x, perm), [{ shape }], seed, { bound: 0 });
      const size = shape.map((d) => Math.max(1, d - 1));
      compare(`slice ${JSON.stringify(shape)}`, ([x]) => sg.slice(x, shape.map((d, i) => d - size[i]), size), [{ shape }], seed, { bound: 0 });
      compare(`concat ${JSON.stringify(shape)}`, ([a, b]) => sg.concat([a, b], 0), [{ shape }, { shape }], seed, { bound: 0 });
      // broadcastTo's gradient is a sum over the broadcast axis (accumulated in float64, then rounded): not exact.
      compare(`broadcastTo ${JSON.stringify(shape)}`, ([x]) => sg.broadcastTo(x, [3, ...shape]), [{ shape }], seed);
    }), { numRuns: 15 });
  });
});

// ---------------------------------------------------------------------------------------------
describe('float32 vs float64: matmul', () => {
  it('2-D and batched, all transpose flags, inner sizes up to 96', () => {
    const arb = fc.record({ batch: fc.option(int(1, 3), { nil: undefined }), m: int(1, 48), k: int(1, 96), n: int(1, 48), ta: fc.boolean(), tb: fc.boolean() });
    fc.assert(fc.property(arb, seedArb, ({ batch, m, k, n, ta, tb }, seed) => {
      const pre = batch === undefined ? [] : [batch];
      const sa = [...pre, ...(ta ? [k, m] : [m, k])], sb = [...pre, ...(tb ? [n, k] : [k, n])];
      compare(`matmulT ${JSON.stringify(sa)}${ta ? '^T' : ''} @ ${JSON.stringify(sb)}${tb ? '^T' : ''}`, ([a, b]) => sg.matmulT(a, b, ta, tb),
        [{ shape: sa }, { shape: sb }], seed);
    }), { numRuns: 30 });
  });
});

// ---------------------------------------------------------------------------------------------
const convArb = convCaseArb({ maxChannels: 8, maxPad: 2 });

describe('float32 vs float64: convolutions', () => {
  it('conv2d forward and its gradients (x, w, bias)', () => {
    fc.assert(fc.property(convArb, seedArb, (p, seed) => {
      compare(`conv2d ${convLabel(p)}`, ([x, w, b]) => sg.conv2d(x, w, { stride: p.stride, padding: p.padding, bias: b }),
        [{ shape: [p.n, p.c, p.h, p.w] }, { shape: [p.o, p.c, p.kh, p.kw] }, { shape: [p.o] }], seed);
    }), { numRuns: 30 });
  });

  it('conv2dGradInput and conv2dGradWeight as ops (forward and their own backward)', () => {
    fc.assert(fc.property(convArb, seedArb, (p, seed) => {
      const opts = { stride: p.stride, padding: p.padding };
      const dy = [p.n, p.o, p.g.outHeight, p.g.outWidth];
      compare(`conv2dGradInput ${convLabel(p)}`, ([d, w]) => sg.conv2dGradInput(d, w, [p.n, p.c, p.h, p.w], opts),
        [{ shape: dy }, { shape: [p.o, p.c, p.kh, p.kw] }], seed);
      compare(`conv2dGradWeight ${convLabel(p)}`, ([x, d]) => sg.conv2dGradWeight(x, d, [p.kh, p.kw], opts),
        [{ shape: [p.n, p.c, p.h, p.w] }, { shape: dy }], seed);
    }), { numRuns: 25 });
  });

  it('convTranspose2d forward and gradients (x, w, bias)', () => {
    const arb = fc.record({
      n: int(1, 3), cin: int(1, 6), cout: int(1, 6), h: int(1, 10), w: int(1, 10), kh: int(1, 5), kw: int(1, 5),
      sh: int(1, 3), sw: int(1, 3), ph: int(0, 2), pw: int(0, 2), opFrac: fc.tuple(fc.nat(), fc.nat()),
    }).map((p) => ({ ...p, oph: p.opFrac[0] % p.sh, opw: p.opFrac[1] % p.sw }))
      .filter((p) => (p.h - 1) * p.sh - 2 * p.ph + p.kh + p.oph >= 1 && (p.w - 1) * p.sw - 2 * p.pw + p.kw + p.opw >= 1);
    fc.assert(fc.property(arb, seedArb, (p, seed) => {
      const opts = { stride: [p.sh, p.sw] as const, padding: [p.ph, p.pw] as const, outputPadding: [p.oph, p.opw] as const };
      compare(`convTranspose2d x [${p.n},${p.cin},${p.h},${p.w}] w [${p.cin},${p.cout},${p.kh},${p.kw}] ${JSON.stringify(opts)}`,
        ([x, w, b]) => sg.convTranspose2d(x, w, { ...opts, bias: b }),
        [{ shape: [p.n, p.cin, p.h, p.w] }, { shape: [p.cin, p.cout, p.kh, p.kw] }, { shape: [p.cout] }], seed);
    }), { numRuns: 30 });
  });
});

// ---------------------------------------------------------------------------------------------
describe('float32 vs float64: upsampling and batch norm', () => {
  it('upsampleNearest2d and upsampleNearest2dGrad', () => {
    const arb = fc.tuple(int(1, 3), int(1, 4), int(1, 9), int(1, 9), fc.oneof(int(1, 4), fc.tuple(int(1, 4), int(1, 4))));
    fc.assert(fc.property(arb, seedArb, ([n, c, h, w, s], seed) => {
      const [sh, sw] = typeof s === 'number' ? [s, s] : s;
      compare(`upsampleNearest2d [${n},${c},${h},${w}] ${JSON.stringify(s)}`, ([x]) => sg.upsampleNearest2d(x, s), [{ shape: [n, c, h, w] }], seed);
      compare(`upsampleNearest2dGrad [${n},${c},${h * sh},${w * sw}] ${JSON.stringify(s)}`, ([d]) => sg.upsampleNearest2dGrad(d, s),
        [{ shape: [n, c, h * sh, w * sw] }], seed);
    }), { numRuns: 25 });
  });

  it('batchNorm2d training and eval, forward and backward', () => {
    const arb = fc.tuple(int(1, 4), int(1, 6), int(1, 12), int(1, 12)).filter(([n, , h, w]) => n * h * w >= 4);
    fc.assert(fc.property(arb, fc.boolean(), seedArb, ([n, c, h, w], training, seed) => {
      // Inputs with an offset (mean ~ 2) so the centring in float32 is exercised, not just the scaling.
      compare(`batchNorm2d training ${training} [${n},${c},${h},${w}]`,
        ([x, g, b, m, v]) => sg.batchNorm2d(sg.add(x, 2), g, b, m, v, { training, momentum: 0.1 }),
        [{ shape: [n, c, h, w] }, { shape: [c], kind: 'pos' }, { shape: [c] }, { shape: [c] }, { shape: [c], kind: 'pos' }],
        seed, { checkGrad: [true, true, true, false, false] });
    }), { numRuns: 30 });
  });

  it('batchNorm2d updates the running statistics alike in both dtypes', () => {
    fc.assert(fc.property(fc.tuple(int(1, 4), int(1, 5), int(1, 10), int(1, 10)).filter(([n, , h, w]) => n * h * w >= 2), seedArb, ([n, c, h, w], seed) => {
      const rng = new sg.Rng(seed);
      const xv = draw(rng, n * c * h * w), mv = draw(rng, c), vv = draw(rng, c, 'pos'), gv = draw(rng, c, 'pos'), bv = draw(rng, c);
      const stats = (dtype: sg.DType): [Float64Array, Float64Array] => sg.scope(() => {
        const t = (v: number[], s: number[]): sg.Tensor => sg.fromArray(v, s, { dtype });
        const [m, v] = [t(mv, [c]), t(vv, [c])];
        sg.batchNorm2d(t(xv, [n, c, h, w]), t(gv, [c]), t(bv, [c]), m, v, { training: true, momentum: 0.3 });
        return [Float64Array.from(m.dataSync()), Float64Array.from(v.dataSync())];
      });
      const [m64, v64] = stats('float64');
      const [m32, v32] = stats('float32');
      expectClose('running mean', m32, m64);
      expectClose('running var', v32, v64);
    }), { numRuns: 20 });
  });
});

// ---------------------------------------------------------------------------------------------
// Direct-summation references (float64), straight from the formulas in backend.ts.

function refConv2d(x: ArrayLike<number>, w: ArrayLike<number>, g: sg.Conv2dGeometry): Float64Array {
  const { batch: N, inChannels: C, inHeight: H, inWidth: W, outChannels: O, kernelH: KH, kernelW: KW, outHeight: OH, outWidth: OW } = g;
  const out = new Float64Array(N * O * OH * OW);
  for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) for (let oy = 0; oy < OH; oy++) for (let ox = 0; ox < OW; ox++) {
    let s = 0;
    for (let c = 0; c < C; c++) for (let ky = 0; ky < KH; ky++) {
      const iy = oy * g.strideH - g.padTop + ky;
      if (iy < 0 || iy >= H) continue;
      for (let kx = 0; kx < KW; kx++) {
        const ix = ox * g.strideW - g.padLeft + kx;
        if (ix < 0 || ix >= W) continue;
        s += x[((n * C + c) * H + iy) * W + ix] * w[((o * C + c) * KH + ky) * KW + kx];
      }
    }
    out[((n * O + o) * OH + oy) * OW + ox] = s;
  }
  return out;
}

/** dx (transposed conv) and dw of conv2d for output gradient dy. */
function refConvGrads(x: ArrayLike<number>, w: ArrayLike<number>, dy: ArrayLike<number>, g: sg.Conv2dGeometry): { dx: Float64Array; dw: Float64Array } {
  const { batch: N, inChannels: C, inHeight: H, inWidth: W, outChannels: O, kernelH: KH, kernelW: KW, outHeight: OH, outWidth: OW } = g;
  const dx = new Float64Array(N * C * H * W), dw = new Float64Array(O * C * KH * KW);
  for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) for (let oy = 0; oy < OH; oy++) for (let ox = 0; ox < OW; ox++) {
    const d = dy[((n * O + o) * OH + oy) * OW + ox];
    for (let c = 0; c < C; c++) for (let ky = 0; ky < KH; ky++) {
      const iy = oy * g.strideH - g.padTop + ky;
      if (iy < 0 || iy >= H) continue;
      for (let kx = 0; kx < KW; kx++) {
        const ix = ox * g.strideW - g.padLeft + kx;
        if (ix < 0 || ix >= W) continue;
        const xi = ((n * C + c) * H + iy) * W + ix, wi = ((o * C + c) * KH + ky) * KW + kx;
        dx[xi] += d * w[wi];
        dw[wi] += d * x[xi];
      }
    }
  }
  return { dx, dw };
}

describe('float64 anchored to direct definitions on random geometries (what gradcheck and adjoints cannot see)', () => {
  // A kernel that is wrong the same way forward and backward (say, skips the last input column) passes every
  // gradient check and adjoint identity. These compare the float64 forward to the definitions, with the padding
  // and output sizes worked out here independently (TensorFlow's 'same' rule; PyTorch's ConvTranspose2d sizes).

  /** [top, bottom, left, right] for a padding option. */
  function pads(padding: sg.Padding, h: number, w: number, kh: number, kw: number, sh: number, sw: number): [number, number, number, number] {
    if (padding === 'valid') return [0, 0, 0, 0];
    if (padding === 'same') {
      const th = Math.max((Math.ceil(h / sh) - 1) * sh + kh - h, 0), tw = Math.max((Math.ceil(w / sw) - 1) * sw + kw - w, 0);
      return [Math.floor(th / 2), th - Math.floor(th / 2), Math.floor(tw / 2), tw - Math.floor(tw / 2)];
    }
    if (typeof padding === 'number') return [padding, padding, padding, padding];
    if (padding.length === 2) return [padding[0], padding[0], padding[1], padding[1]];
    return [padding[0], padding[1], padding[2], padding[3]];
  }

  it('conv2d with bias, every padding form, unequal strides', () => {
    fc.assert(fc.property(convArb, seedArb, (p, seed) => sg.scope(() => {
      const rng = new sg.Rng(seed);
      const [sh, sw] = typeof p.stride === 'number' ? [p.stride, p.stride] : p.stride;
      const [t, b, l, r] = pads(p.padding, p.h, p.w, p.kh, p.kw, sh, sw);
      const oh = Math.floor((p.h + t + b - p.kh) / sh) + 1, ow = Math.floor((p.w + l + r - p.kw) / sw) + 1;
      const xv = draw(rng, p.n * p.c * p.h * p.w), wv = draw(rng, p.o * p.c * p.kh * p.kw), bv = draw(rng, p.o);
      const ref = new Float64Array(p.n * p.o * oh * ow);
      for (let n = 0; n < p.n; n++) for (let o = 0; o < p.o; o++) for (let oy = 0; oy < oh; oy++) for (let ox = 0; ox < ow; ox++) {
        let s = bv[o];
        for (let c = 0; c < p.c; c++) for (let ky = 0; ky < p.kh; ky++) for (let kx = 0; kx < p.kw; kx++) {
          const iy = oy * sh - t + ky, ix = ox * sw - l + kx;
          if (iy >= 0 && iy < p.h && ix >= 0 && ix < p.w) s += xv[((n * p.c + c) * p.h + iy) * p.w + ix] * wv[((o * p.c + c) * p.kh + ky) * p.kw + kx];
        }
        ref[((n * p.o + o) * oh + oy) * ow + ox] = s;
      }
      const t64 = (v: number[], s: number[]): sg.Tensor => sg.fromArray(v, s, { dtype: 'float64' });
      const y = sg.conv2d(t64(xv, [p.n, p.c, p.h, p.w]), t64(wv, [p.o, p.c, p.kh, p.kw]), { stride: p.stride, padding: p.padding, bias: t64(bv, [p.o]) });
      expect(y.shape, convLabel(p)).toEqual([p.n, p.o, oh, ow]);
      expectClose(`conv2d ${convLabel(p)}`, y.dataSync(), ref, 1e-12);
    })), { numRuns: 40 });
  });

  it('convTranspose2d with bias: y[oy*s - p + ky] += x[oy] w[ky], cropped, size (H-1)s - 2p + k + outputPadding', () => {
    const arb = fc.record({
      n: int(1, 2), cin: int(1, 4), cout: int(1, 4), h: int(1, 7), w: int(1, 7), kh: int(1, 5), kw: int(1, 5),
      sh: int(1, 3), sw: int(1, 3), ph: int(0, 2), pw: int(0, 2), opFrac: fc.tuple(fc.nat(), fc.nat()),
    }).map((p) => {
      const oph = p.opFrac[0] % p.sh, opw = p.opFrac[1] % p.sw;
      return { ...p, oph, opw, ho: (p.h - 1) * p.sh - 2 * p.ph + p.kh + oph, wo: (p.w - 1) * p.sw - 2 * p.pw + p.kw + opw };
    }).filter((p) => p.ho >= 1 && p.wo >= 1);
    fc.assert(fc.property(arb, seedArb, (p, seed) => sg.scope(() => {
      const rng = new sg.Rng(seed);
      const xv = draw(rng, p.n * p.cin * p.h * p.w), wv = draw(rng, p.cin * p.cout * p.kh * p.kw), bv = draw(rng, p.cout);
      const ref = new Float64Array(p.n * p.cout * p.ho * p.wo);
      for (let n = 0; n < p.n; n++) for (let co = 0; co < p.cout; co++) ref.fill(bv[co], (n * p.cout + co) * p.ho * p.wo, (n * p.cout + co + 1) * p.ho * p.wo);
      for (let n = 0; n < p.n; n++) for (let ci = 0; ci < p.cin; ci++) for (let iy = 0; iy < p.h; iy++) for (let ix = 0; ix < p.w; ix++) {
        const v = xv[((n * p.cin + ci) * p.h + iy) * p.w + ix];
        for (let co = 0; co < p.cout; co++) for (let ky = 0; ky < p.kh; ky++) for (let kx = 0; kx < p.kw; kx++) {
          const oy = iy * p.sh - p.ph + ky, ox = ix * p.sw - p.pw + kx;
          if (oy >= 0 && oy < p.ho && ox >= 0 && ox < p.wo) ref[((n * p.cout + co) * p.ho + oy) * p.wo + ox] += v * wv[((ci * p.cout + co) * p.kh + ky) * p.kw + kx];
        }
      }
      const t64 = (v: number[], s: number[]): sg.Tensor => sg.fromArray(v, s, { dtype: 'float64' });
      const label = `convTranspose2d x [${p.n},${p.cin},${p.h},${p.w}] w [${p.cin},${p.cout},${p.kh},${p.kw}] stride [${p.sh},${p.sw}] padding [${p.ph},${p.pw}] outputPadding [${p.oph},${p.opw}]`;
      const y = sg.convTranspose2d(t64(xv, [p.n, p.cin, p.h, p.w]), t64(wv, [p.cin, p.cout, p.kh, p.kw]),
        { stride: [p.sh, p.sw], padding: [p.ph, p.pw], outputPadding: [p.oph, p.opw], bias: t64(bv, [p.cout]) });
      expect(y.shape, label).toEqual([p.n, p.cout, p.ho, p.wo]);
      expectClose(label, y.dataSync(), ref, 1e-12);
    })), { numRuns: 40 });
  });
});

describe('float64 anchored to direct references at large sizes (row-chunked im2col, worker threads)', () => {
  const cases: Array<{ name: string; x: number[]; w: number[]; opts: sg.Conv2dOptions; threaded: boolean }> = [
    // C*KH*KW = 144 rows of im2col x 38*38 columns > 2^17 elements: more than one row chunk per image.
    { name: 'two im2col chunks', x: [2, 16, 40, 40], w: [4, 16, 3, 3], opts: { stride: 1, padding: 'valid' }, threaded: false },
    // Every storage >= 2^14 elements (SharedArrayBuffer-backed) and ~15 MFLOP: worker threads on a multi-core machine.
    { name: 'threaded', x: [2, 64, 16, 16], w: [64, 64, 2, 2], opts: { stride: 1, padding: 'valid' }, threaded: true },
    { name: 'threaded, one image, strided, asymmetric padding', x: [1, 64, 33, 17], w: [64, 64, 3, 2], opts: { stride: [2, 1], padding: [1, 0, 2, 1] }, threaded: true },
  ];

  for (const c of cases) {
    it(`conv2d, conv2dGradInput, conv2dGradWeight: ${c.name} (${JSON.stringify(c.x)} * ${JSON.stringify(c.w)})`, () => {
      const before = sg.memory().tensors;
      const rng = new sg.Rng(99);
      const g = sg.conv2dGeometry('test', c.x, c.w, c.opts);
      const xv = draw(rng, sizeOf(c.x)), wv = draw(rng, sizeOf(c.w));
      const dyShape = [g.batch, g.outChannels, g.outHeight, g.outWidth];
      const dyv = draw(rng, sizeOf(dyShape));
      const runsBefore = parallelRunCount();
      const refY = refConv2d(xv, wv, g);
      const { dx: refDx, dw: refDw } = refConvGrads(xv, wv, dyv, g);
      for (const dtype of ['float64', 'float32'] as const) {
        // float64 against the reference tightly (rounding only); float32 against it with the file's bound.
        const bound = dtype === 'float64' ? 1e-12 : BOUND;
        sg.scope(() => {
          const t = (v: number[], s: number[]): sg.Tensor => sg.fromArray(v, s, { dtype });
          const [x, w, dy] = [t(xv, c.x), t(wv, c.w), t(dyv, dyShape)];
          expectClose(`${dtype} conv2d`, sg.conv2d(x, w, c.opts).dataSync(), refY, bound);
          expectClose(`${dtype} conv2dGradInput`, sg.conv2dGradInput(dy, w, c.x, c.opts).dataSync(), refDx, bound);
          expectClose(`${dtype} conv2dGradWeight`, sg.conv2dGradWeight(x, dy, [c.w[2], c.w[3]], c.opts).dataSync(), refDw, bound);
        });
      }
      // The case is meant to reach the worker threads (on a machine with more than one core): check that it did.
      if (c.threaded && getThreadCount() > 1) expect(parallelRunCount(), 'parallel kernel runs').toBeGreaterThan(runsBefore);
      expect(sg.memory().tensors).toBe(before);
    });
  }

  it('matmul (batched, every transpose flag) at sizes that use the packed GEMM and worker threads', () => {
    const before = sg.memory().tensors;
    const rng = new sg.Rng(7);
    const [B, m, k, n] = [2, 150, 130, 140];
    const av = draw(rng, B * m * k), bv = draw(rng, B * k * n);
    const runsBefore = parallelRunCount();
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        const ref = new Float64Array(B * m * n);
        for (let q = 0; q < B; q++) for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
          let s = 0;
          for (let p = 0; p < k; p++) {
            s += av[q * m * k + (ta ? p * m + i : i * k + p)] * bv[q * k * n + (tb ? j * k + p : p * n + j)];
          }
          ref[(q * m + i) * n + j] = s;
        }
        for (const dtype of ['float64', 'float32'] as const) {
          sg.scope(() => {
            const a = sg.fromArray(av, [B, ...(ta ? [k, m] : [m, k])], { dtype });
            const b = sg.fromArray(bv, [B, ...(tb ? [n, k] : [k, n])], { dtype });
            expectClose(`${dtype} matmulT transA ${ta} transB ${tb}`, sg.matmulT(a, b, ta, tb).dataSync(), ref, dtype === 'float64' ? 1e-12 : BOUND);
          });
        }
      }
    }
    if (getThreadCount() > 1) expect(parallelRunCount(), 'parallel kernel runs').toBeGreaterThan(runsBefore);
    expect(sg.memory().tensors).toBe(before);
  });
});
