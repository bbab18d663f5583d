/**
 * Known answers from an independent implementation: TensorFlow.js's CPU kernels.
 *
 * Every case draws seeded random inputs, runs skipgrad (float32, NCHW, PyTorch weight layouts) and
 * tfjs (float32, NHWC, TensorFlow filter layouts) on the same values, and compares forward outputs
 * and gradients within 1e-4 of the largest magnitude of the tfjs result.
 *
 * Layout maps used throughout:
 *   activations   skipgrad [N,C,H,W]            tfjs [N,H,W,C]            perm (0,2,3,1), back (0,3,1,2)
 *   conv2d w      skipgrad [O,C,kH,kW]          tfjs [kH,kW,C,O]          perm (2,3,1,0), back (3,2,0,1)
 *   convT w       skipgrad [Cin,Cout,kH,kW]     tfjs [kH,kW,Cout,Cin]     perm (2,3,1,0), back (3,2,0,1)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
// tfjs-core's Node entry registers no gradients; the union package @tensorflow/tfjs imports this file for them.
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import * as sg from '../src/engine/index.js';
import { sizeOf } from '../src/engine/dtype.js';
import { NCHW_TO_NHWC, NHWC_TO_NCHW, permute, WEIGHT_FROM_TF, WEIGHT_TO_TF } from '../bench/model-tfjs.js';
import { getThreadCount, parallelRunCount, setThreadCount } from '../src/engine/cpu/threads.js';

const TOL = 1e-4;

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

// ---------------------------------------------------------------- helpers

type Shape = number[];

function permShape(shape: readonly number[], perm: readonly number[]): Shape {
  return perm.map((p) => shape[p]);
}

function randn(rng: sg.Rng, n: number, sd = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal(0, sd);
  return a;
}

function randu(rng: sg.Rng, n: number, lo: number, hi: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform(lo, hi);
  return a;
}

/** Values of magnitude in [lo, hi] with random signs (for divisors). */
function randAwayFromZero(rng: sg.Rng, n: number, lo: number, hi: number): Float32Array {
  const a = randu(rng, n, lo, hi);
  for (let i = 0; i < n; i++) if (rng.next() < 0.5) a[i] = -a[i];
  return a;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** max |actual - expected| <= tol * max|expected| (NaN counts as a failure). */
function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, tol = TOL): void {
  expect(actual.length, `${what}: number of values`).toBe(expected.length);
  const scale = Math.max(maxAbs(expected), 1e-6);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= worst)) {
      worst = Number.isNaN(d) ? Infinity : d;
      at = i;
    }
  }
  const detail = at >= 0 ? ` at flat index ${at} (skipgrad ${actual[at]}, tfjs ${expected[at]}), scale ${scale}` : '';
  expect(worst, `${what}: max |diff| ${worst}${detail}`).toBeLessThanOrEqual(tol * scale);
}

function expectShape(t: sg.Tensor, shape: readonly number[], what: string): void {
  expect([...t.shape], `${what}: shape`).toEqual([...shape]);
}

/** skipgrad tensor from float32 values. */
function sgT(data: Float32Array, shape: readonly number[], requiresGrad = false): sg.Tensor {
  return sg.fromArray(data, shape, { requiresGrad });
}

/** tfjs NHWC tensor from NCHW values. */
function tfNHWC(data: Float32Array, nchw: readonly number[]): tf.Tensor4D {
  return tf.tensor4d(permute(data, nchw, NCHW_TO_NHWC), permShape(nchw, NCHW_TO_NHWC) as [number, number, number, number]);
}

/** NCHW values from a tfjs NHWC tensor. */
function fromNHWC(t: tf.Tensor): Float32Array {
  return permute(t.dataSync(), t.shape, NHWC_TO_NCHW);
}

/** tfjs filter [kH,kW,a,b] from a skipgrad weight [b,a,kH,kW]. */
function tfFilter(data: Float32Array, w: readonly number[]): tf.Tensor4D {
  return tf.tensor4d(permute(data, w, WEIGHT_TO_TF), permShape(w, WEIGHT_TO_TF) as [number, number, number, number]);
}

/** skipgrad-layout weight values from a tfjs filter. */
function fromFilter(t: tf.Tensor): Float32Array {
  return permute(t.dataSync(), t.shape, WEIGHT_FROM_TF);
}

function grad(t: sg.Tensor, what: string): Float32Array | Float64Array {
  expect(t.grad, `${what}: gradient was not computed`).not.toBeNull();
  return t.grad!.dataSync();
}

// ---------------------------------------------------------------- conv2d

type SgPadding = 'same' | 'valid' | number | readonly [number, number] | readonly [number, number, number, number];
type TfPadding = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

function tfPadding(p: SgPadding): TfPadding {
  if (p === 'same' || p === 'valid') return p;
  const [t, b, l, r] = typeof p === 'number' ? [p, p, p, p] : p.length === 2 ? [p[0], p[0], p[1], p[1]] : p;
  return [[0, 0], [t, b], [l, r], [0, 0]];
}

interface ConvCase {
  x: Shape;
  w: Shape;
  stride: number | [number, number];
  padding: SgPadding;
  bias?: boolean;
}

const convCases: ConvCase[] = [
  { x: [2, 3, 7, 7], w: [4, 3, 3, 3], stride: 1, padding: 'valid' },
  { x: [2, 3, 7, 7], w: [4, 3, 3, 3], stride: 1, padding: 'same', bias: true },
  { x: [1, 2, 9, 8], w: [3, 2, 3, 3], stride: 2, padding: 'same' },
  { x: [2, 3, 8, 8], w: [5, 3, 4, 4], stride: 2, padding: 'same' },
  { x: [1, 2, 9, 9], w: [3, 2, 4, 4], stride: 2, padding: 'same', bias: true },
  { x: [1, 2, 6, 7], w: [2, 2, 2, 3], stride: 1, padding: 'same' },
  { x: [1, 4, 11, 6], w: [2, 4, 5, 3], stride: [2, 1], padding: 'valid' },
  { x: [2, 2, 6, 7], w: [3, 2, 3, 2], stride: 1, padding: 1 },
  { x: [1, 3, 9, 9], w: [2, 3, 3, 3], stride: 2, padding: [2, 1], bias: true },
  { x: [2, 2, 7, 5], w: [3, 2, 3, 3], stride: 2, padding: [0, 2, 1, 0] },
  { x: [1, 2, 5, 6], w: [2, 2, 3, 3], stride: [1, 2], padding: [3, 1, 0, 2] },
  { x: [2, 5, 4, 4], w: [3, 5, 1, 1], stride: 2, padding: 'same' },
  { x: [1, 2, 5, 5], w: [3, 2, 5, 5], stride: 1, padding: 'valid' },
  { x: [3, 1, 13, 13], w: [1, 1, 3, 3], stride: 2, padding: 'valid' },
  // larger shapes (still on the calling thread: the weights are too small to be SharedArrayBuffer-backed)
  { x: [4, 8, 24, 24], w: [16, 8, 3, 3], stride: 1, padding: 'same', bias: true },
  { x: [2, 16, 17, 17], w: [8, 16, 3, 3], stride: 2, padding: 'same' },
];

function convName(c: ConvCase): string {
  return `x ${JSON.stringify(c.x)} w ${JSON.stringify(c.w)} stride ${JSON.stringify(c.stride)} padding ${JSON.stringify(c.padding)}${c.bias ? ' +bias' : ''}`;
}

function checkConv(c: ConvCase, seed: number): void {
  const rng = new sg.Rng(seed);
  const xd = randn(rng, sizeOf(c.x));
  const wd = randn(rng, sizeOf(c.w), 0.5);
  const o = c.w[0];
  const bd = c.bias ? randn(rng, o) : null;
  const strides: [number, number] = typeof c.stride === 'number' ? [c.stride, c.stride] : c.stride;

  // tfjs: forward and gradients of sum(conv2d(x, w) + b) * r)
  const tx = tfNHWC(xd, c.x);
  const tw = tfFilter(wd, c.w);
  const tb = bd ? tf.tensor1d(bd) : null;
  const f = (a: tf.Tensor, b: tf.Tensor, bias?: tf.Tensor): tf.Tensor => {
    const y = tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, strides, tfPadding(c.padding));
    return bias ? tf.add(y, bias) : y;
  };
  const ty = f(tx, tw, tb ?? undefined);
  const outNCHW = permShape(ty.shape, NHWC_TO_NCHW);
  const rd = randn(rng, sizeOf(outNCHW));
  const tr = tfNHWC(rd, outNCHW);
  const tgrads = tf.grads((a: tf.Tensor, b: tf.Tensor, bias?: tf.Tensor) => f(a, b, bias))(tb ? [tx, tw, tb] : [tx, tw], tr);

  // skipgrad
  const x = sgT(xd, c.x, true);
  const w = sgT(wd, c.w, true);
  const b = bd ? sgT(bd, [o], true) : null;
  const y = sg.conv2d(x, w, { stride: c.stride, padding: c.padding, bias: b });
  expectShape(y, outNCHW, 'conv2d output');
  expectClose(y.dataSync(), fromNHWC(ty), 'conv2d forward');

  const r = sgT(rd, outNCHW);
  y.backward(r);
  expectClose(grad(x, 'dx'), fromNHWC(tgrads[0]), 'conv2d dx');
  expectClose(grad(w, 'dw'), fromFilter(tgrads[1]), 'conv2d dw');
  if (b) expectClose(grad(b, 'dbias'), tgrads[2].dataSync(), 'conv2d dbias');

  // the public gradient ops give the same answers
  const opts = { stride: c.stride, padding: c.padding };
  const gx = sg.conv2dGradInput(r, sgT(wd, c.w), c.x, opts);
  expectShape(gx, c.x, 'conv2dGradInput');
  expectClose(gx.dataSync(), fromNHWC(tgrads[0]), 'conv2dGradInput');
  const gw = sg.conv2dGradWeight(sgT(xd, c.x), r, [c.w[2], c.w[3]], opts);
  expectShape(gw, c.w, 'conv2dGradWeight');
  expectClose(gw.dataSync(), fromFilter(tgrads[1]), 'conv2dGradWeight');

  tf.dispose([tx, tw, ty, tr, ...tgrads, ...(tb ? [tb] : [])]);
}

describe('conv2d vs tf.conv2d', () => {
  convCases.forEach((c, caseIndex) => {
    it(`forward and gradients: ${convName(c)}`, () => checkConv(c, 1000 + caseIndex));
  });

  it('is a cross-correlation (not a flipped convolution): an off-centre one-hot kernel shifts the image', () => {
    // w[0,0,0,2] = 1 (top-right tap): y[i,j] = x[i, j+2] with 'valid' padding
    const rng = new sg.Rng(7);
    const xd = randn(rng, 25);
    const wd = new Float32Array(9);
    wd[2] = 1;
    const y = sg.conv2d(sgT(xd, [1, 1, 5, 5]), sgT(wd, [1, 1, 3, 3])).dataSync();
    const t = tf.conv2d(tfNHWC(xd, [1, 1, 5, 5]), tfFilter(wd, [1, 1, 3, 3]), 1, 'valid');
    expectClose(y, fromNHWC(t), 'one-hot kernel');
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) expect(y[i * 3 + j]).toBe(xd[i * 5 + j + 2]);
    t.dispose();
  });
});

// ---------------------------------------------------------------- convTranspose2d

interface ConvTCase {
  x: Shape;
  /** skipgrad layout [Cin, Cout, kH, kW] */
  w: Shape;
  stride: number | [number, number];
  padding: number | [number, number];
  outputPadding: number | [number, number];
  bias?: boolean;
}

const convTCases: ConvTCase[] = [
  { x: [2, 3, 4, 4], w: [3, 2, 3, 3], stride: 1, padding: 0, outputPadding: 0 },
  { x: [2, 3, 4, 5], w: [3, 2, 3, 3], stride: 2, padding: 1, outputPadding: 1 },
  { x: [1, 2, 5, 3], w: [2, 4, 4, 4], stride: 2, padding: 1, outputPadding: 0, bias: true },
  { x: [1, 2, 3, 3], w: [2, 3, 3, 3], stride: 3, padding: 0, outputPadding: 2 },
  { x: [2, 4, 5, 5], w: [4, 3, 5, 5], stride: 2, padding: 2, outputPadding: 1 },
  { x: [1, 3, 4, 5], w: [3, 2, 3, 2], stride: [2, 1], padding: [1, 0], outputPadding: [1, 0], bias: true },
  { x: [2, 2, 4, 4], w: [2, 2, 2, 2], stride: 2, padding: 1, outputPadding: 0 },
  { x: [1, 1, 6, 7], w: [1, 1, 1, 1], stride: 2, padding: 0, outputPadding: 1 },
  { x: [2, 3, 3, 4], w: [3, 2, 3, 3], stride: 1, padding: 2, outputPadding: 0 },
  // the decoder shape of the experiments: 4x4 kernel, stride 2, padding 1 doubles the size
  { x: [2, 8, 8, 8], w: [8, 4, 4, 4], stride: 2, padding: 1, outputPadding: 0, bias: true },
];

function convTName(c: ConvTCase): string {
  return `x ${JSON.stringify(c.x)} w ${JSON.stringify(c.w)} stride ${JSON.stringify(c.stride)} padding ${JSON.stringify(c.padding)} outputPadding ${JSON.stringify(c.outputPadding)}${c.bias ? ' +bias' : ''}`;
}

const pairOf = (v: number | [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : v);

/**
 * PyTorch's ConvTranspose2d in tfjs: the full transposed convolution (tfjs padding 'valid', output
 * (H-1)s + k), then remove p rows/cols at the top-left and p - op at the bottom-right (a negative
 * crop is zero padding: those output rows receive no input).
 */
function tfConvTranspose(x: tf.Tensor, filter: tf.Tensor, c: ConvTCase, bias?: tf.Tensor): tf.Tensor {
  const [n, h, w] = x.shape;
  const [kh, kw, cout] = filter.shape;
  const [sh, sw] = pairOf(c.stride);
  const [ph, pw] = pairOf(c.padding);
  const [oph, opw] = pairOf(c.outputPadding);
  const fullH = (h! - 1) * sh + kh!;
  const fullW = (w! - 1) * sw + kw!;
  let y: tf.Tensor = tf.conv2dTranspose(x as tf.Tensor4D, filter as tf.Tensor4D, [n!, fullH, fullW, cout!], [sh, sw], 'valid');
  const padBottom = Math.max(oph - ph, 0);
  const padRight = Math.max(opw - pw, 0);
  if (padBottom > 0 || padRight > 0) y = tf.pad(y, [[0, 0], [0, padBottom], [0, padRight], [0, 0]]);
  const hOut = fullH - 2 * ph + oph;
  const wOut = fullW - 2 * pw + opw;
  y = tf.slice(y, [0, ph, pw, 0], [n!, hOut, wOut, cout!]);
  return bias ? tf.add(y, bias) : y;
}

describe('convTranspose2d vs tf.conv2dTranspose (PyTorch semantics)', () => {
  convTCases.forEach((c, caseIndex) => {
    it(`forward and gradients: ${convTName(c)}`, () => {
      const rng = new sg.Rng(2000 + caseIndex);
      const xd = randn(rng, sizeOf(c.x));
      const wd = randn(rng, sizeOf(c.w), 0.5);
      const cout = c.w[1];
      const bd = c.bias ? randn(rng, cout) : null;

      const [sh, sw] = pairOf(c.stride);
      const [ph, pw] = pairOf(c.padding);
      const [oph, opw] = pairOf(c.outputPadding);
      const outShape = [c.x[0], cout, (c.x[2] - 1) * sh - 2 * ph + c.w[2] + oph, (c.x[3] - 1) * sw - 2 * pw + c.w[3] + opw];

      const tx = tfNHWC(xd, c.x);
      const tw = tfFilter(wd, c.w); // [kH, kW, Cout, Cin]
      const tb = bd ? tf.tensor1d(bd) : null;
      const ty = tfConvTranspose(tx, tw, c, tb ?? undefined);
      expect(permShape(ty.shape, NHWC_TO_NCHW), 'oracle output shape').toEqual(outShape);
      const rd = randn(rng, sizeOf(outShape));
      const tr = tfNHWC(rd, outShape);
      const tgrads = tf.grads((a: tf.Tensor, b: tf.Tensor, bias?: tf.Tensor) => tfConvTranspose(a, b, c, bias))(tb ? [tx, tw, tb] : [tx, tw], tr);

      const x = sgT(xd, c.x, true);
      const w = sgT(wd, c.w, true);
      const b = bd ? sgT(bd, [cout], true) : null;
      const y = sg.convTranspose2d(x, w, { stride: c.stride, padding: c.padding, outputPadding: c.outputPadding, bias: b });
      expectShape(y, outShape, 'convTranspose2d output');
      expectClose(y.dataSync(), fromNHWC(ty), 'convTranspose2d forward');

      y.backward(sgT(rd, outShape));
      expectClose(grad(x, 'dx'), fromNHWC(tgrads[0]), 'convTranspose2d dx');
      expectClose(grad(w, 'dw'), fromFilter(tgrads[1]), 'convTranspose2d dw');
      if (b) expectClose(grad(b, 'dbias'), tgrads[2].dataSync(), 'convTranspose2d dbias');

      tf.dispose([tx, tw, ty, tr, ...tgrads, ...(tb ? [tb] : [])]);
    });
  });
});

// ---------------------------------------------------------------- second order through the conv gradient ops

describe('gradients of the conv gradient ops vs tfjs', () => {
  it('d/d(dy, w) of sum(conv2dGradInput(dy, w) * r) matches tf.grads of conv2dTranspose', () => {
    const rng = new sg.Rng(3001);
    const xShape: Shape = [2, 3, 9, 8];
    const wShape: Shape = [4, 3, 3, 3];
    const opts = { stride: 2, padding: 'same' as const };
    const dyShape: Shape = [2, 4, 5, 4];
    const dyd = randn(rng, sizeOf(dyShape));
    const wd = randn(rng, sizeOf(wShape), 0.5);
    const rd = randn(rng, sizeOf(xShape));

    const tdy = tfNHWC(dyd, dyShape);
    const tw = tfFilter(wd, wShape);
    const tr = tfNHWC(rd, xShape);
    const xNHWC = permShape(xShape, NCHW_TO_NHWC) as [number, number, number, number];
    const f = (a: tf.Tensor, b: tf.Tensor): tf.Tensor => tf.conv2dTranspose(a as tf.Tensor4D, b as tf.Tensor4D, xNHWC, 2, 'same');
    const ty = f(tdy, tw);
    const [gdy, gw] = tf.grads(f)([tdy, tw], tr);

    const dy = sgT(dyd, dyShape, true);
    const w = sgT(wd, wShape, true);
    const gx = sg.conv2dGradInput(dy, w, xShape, opts);
    expectClose(gx.dataSync(), fromNHWC(ty), 'conv2dGradInput forward');
    gx.backward(sgT(rd, xShape));
    expectClose(grad(dy, 'd dy'), fromNHWC(gdy), 'conv2dGradInput d dy');
    expectClose(grad(w, 'd w'), fromFilter(gw), 'conv2dGradInput d w');
    tf.dispose([tdy, tw, tr, ty, gdy, gw]);
  });

  it('d/dx of sum(conv2dGradWeight(x, dy) * r) is conv2dGradInput(dy, r), checked against tfjs', () => {
    // The weight gradient is linear in x: <conv2dGradWeight(x, dy), r> = <x, conv2dGradInput(dy, r)> = <conv2d(x, r), dy>.
    // So d/dx = tf.conv2dTranspose(dy, r) and d/d dy = tf.conv2d(x, r).
    const rng = new sg.Rng(3002);
    const xShape: Shape = [2, 3, 7, 6];
    const wShape: Shape = [4, 3, 3, 2];
    const opts = { stride: 1, padding: [1, 1, 0, 1] as const };
    const dyShape: Shape = [2, 4, 7, 6];
    const xd = randn(rng, sizeOf(xShape));
    const dyd = randn(rng, sizeOf(dyShape));
    const rd = randn(rng, sizeOf(wShape));

    const x = sgT(xd, xShape, true);
    const dy = sgT(dyd, dyShape, true);
    const gw = sg.conv2dGradWeight(x, dy, [3, 2], opts);
    gw.backward(sgT(rd, wShape));

    const pad = tfPadding(opts.padding);
    const xNHWC = permShape(xShape, NCHW_TO_NHWC) as [number, number, number, number];
    const tdx = tf.conv2dTranspose(tfNHWC(dyd, dyShape), tfFilter(rd, wShape), xNHWC, 1, pad);
    const tddy = tf.conv2d(tfNHWC(xd, xShape), tfFilter(rd, wShape), 1, pad);
    expectClose(grad(x, 'dx'), fromNHWC(tdx), 'conv2dGradWeight dx');
    expectClose(grad(dy, 'd dy'), fromNHWC(tddy), 'conv2dGradWeight d dy');
    tf.dispose([tdx, tddy]);
  });
});

// ---------------------------------------------------------------- batchNorm2d

describe('batchNorm2d vs tf.moments + tf.batchNorm', () => {
  const eps = 1e-5;
  const bnShapes: Shape[] = [[4, 3, 5, 5], [2, 5, 3, 7], [1, 2, 4, 1], [8, 4, 6, 6]];

  bnShapes.forEach((shape, caseIndex) => {
    it(`training mode: forward, dx/dgamma/dbeta and running stats, x ${JSON.stringify(shape)}`, () => {
      const rng = new sg.Rng(4000 + caseIndex);
      const c = shape[1];
      const m = shape[0] * shape[2] * shape[3];
      const xd = randn(rng, sizeOf(shape), 2);
      for (let i = 0; i < xd.length; i++) xd[i] += 0.5; // non-zero mean
      const gd = randu(rng, c, 0.5, 1.5);
      const bd = randn(rng, c);
      const rmd = randn(rng, c);
      const rvd = randu(rng, c, 0.5, 2);
      const rd = randn(rng, sizeOf(shape));

      const f = (a: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor => {
        const { mean, variance } = tf.moments(a, [0, 1, 2]);
        return tf.batchNorm(a, mean, variance, beta, gamma, eps);
      };
      const tx = tfNHWC(xd, shape);
      const tg = tf.tensor1d(gd);
      const tb = tf.tensor1d(bd);
      const ty = f(tx, tg, tb);
      const tgrads = tf.grads(f)([tx, tg, tb], tfNHWC(rd, shape));
      const moments = tf.moments(tx, [0, 1, 2]);
      const batchMean = moments.mean.dataSync();
      const batchVar = moments.variance.dataSync();

      const x = sgT(xd, shape, true);
      const gamma = sgT(gd, [c], true);
      const beta = sgT(bd, [c], true);
      const runningMean = sgT(rmd.slice(), [c]);
      const runningVar = sgT(rvd.slice(), [c]);
      const y = sg.batchNorm2d(x, gamma, beta, runningMean, runningVar, { training: true, eps });
      expectShape(y, shape, 'batchNorm2d output');
      expectClose(y.dataSync(), fromNHWC(ty), 'batchNorm2d training forward');

      // PyTorch's running-stat rule: r = 0.9 r + 0.1 stat, with the unbiased (M-1) batch variance
      const expMean = Array.from(batchMean, (v, i) => 0.9 * rmd[i] + 0.1 * v);
      const expVar = Array.from(batchVar, (v, i) => 0.9 * rvd[i] + 0.1 * v * m / (m - 1));
      expectClose(runningMean.dataSync(), expMean, 'running mean');
      expectClose(runningVar.dataSync(), expVar, 'running var (unbiased)');

      y.backward(sgT(rd, shape));
      expectClose(grad(x, 'dx'), fromNHWC(tgrads[0]), 'batchNorm2d training dx');
      expectClose(grad(gamma, 'dgamma'), tgrads[1].dataSync(), 'batchNorm2d dgamma');
      expectClose(grad(beta, 'dbeta'), tgrads[2].dataSync(), 'batchNorm2d dbeta');
      tf.dispose([tx, tg, tb, ty, ...tgrads, moments.mean, moments.variance]);
    });
  });

  it('training mode without running stats, and momentum 0.25 with running stats', () => {
    const rng = new sg.Rng(4100);
    const shape: Shape = [3, 2, 4, 5];
    const c = 2;
    const m = 3 * 4 * 5;
    const xd = randn(rng, sizeOf(shape));
    const gd = randu(rng, c, 0.5, 1.5);
    const bd = randn(rng, c);
    const tx = tfNHWC(xd, shape);
    const { mean, variance } = tf.moments(tx, [0, 1, 2]);
    const ty = tf.batchNorm(tx, mean, variance, tf.tensor1d(bd), tf.tensor1d(gd), 1e-3);

    const y = sg.batchNorm2d(sgT(xd, shape), sgT(gd, [c]), sgT(bd, [c]), null, null, { training: true, eps: 1e-3 });
    expectClose(y.dataSync(), fromNHWC(ty), 'batchNorm2d training forward, no running stats');

    const rm = sg.zeros([c]);
    const rv = sg.ones([c]);
    sg.batchNorm2d(sgT(xd, shape), sgT(gd, [c]), sgT(bd, [c]), rm, rv, { training: true, momentum: 0.25 });
    expectClose(rm.dataSync(), Array.from(mean.dataSync(), (v) => 0.25 * v), 'running mean, momentum 0.25');
    expectClose(rv.dataSync(), Array.from(variance.dataSync(), (v) => 0.75 + 0.25 * v * m / (m - 1)), 'running var, momentum 0.25');
    tf.dispose([tx, mean, variance, ty]);
  });

  [[4, 3, 5, 5], [1, 6, 2, 3]].forEach((shape, caseIndex) => {
    it(`eval mode: forward and gradients with the running stats, x ${JSON.stringify(shape)}`, () => {
      const rng = new sg.Rng(4200 + caseIndex);
      const c = shape[1];
      const xd = randn(rng, sizeOf(shape), 2);
      const gd = randu(rng, c, 0.5, 1.5);
      const bd = randn(rng, c);
      const rmd = randn(rng, c);
      const rvd = randu(rng, c, 0.5, 2);
      const rd = randn(rng, sizeOf(shape));
      const tm = tf.tensor1d(rmd);
      const tv = tf.tensor1d(rvd);
      const f = (a: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor => tf.batchNorm(a, tm, tv, beta, gamma, eps);
      const tx = tfNHWC(xd, shape);
      const tg = tf.tensor1d(gd);
      const tb = tf.tensor1d(bd);
      const ty = f(tx, tg, tb);
      const tgrads = tf.grads(f)([tx, tg, tb], tfNHWC(rd, shape));

      const x = sgT(xd, shape, true);
      const gamma = sgT(gd, [c], true);
      const beta = sgT(bd, [c], true);
      const runningMean = sgT(rmd.slice(), [c]);
      const runningVar = sgT(rvd.slice(), [c]);
      const y = sg.batchNorm2d(x, gamma, beta, runningMean, runningVar, { training: false, eps });
      expectClose(y.dataSync(), fromNHWC(ty), 'batchNorm2d eval forward');
      expect(Array.from(runningMean.dataSync()), 'eval leaves runningMean alone').toEqual(Array.from(rmd));
      expect(Array.from(runningVar.dataSync()), 'eval leaves runningVar alone').toEqual(Array.from(rvd));

      y.backward(sgT(rd, shape));
      expectClose(grad(x, 'dx'), fromNHWC(tgrads[0]), 'batchNorm2d eval dx');
      expectClose(grad(gamma, 'dgamma'), tgrads[1].dataSync(), 'batchNorm2d eval dgamma');
      expectClose(grad(beta, 'dbeta'), tgrads[2].dataSync(), 'batchNorm2d eval dbeta');
      tf.dispose([tm, tv, tx, tg, tb, ty, ...tgrads]);
    });
  });
});

// ---------------------------------------------------------------- upsampleNearest2d

describe('upsampleNearest2d vs tf.image.resizeNearestNeighbor (alignCorners false, halfPixelCenters false)', () => {
  const cases: Array<{ x: Shape; scale: number | [number, number] }> = [
    { x: [2, 3, 4, 5], scale: 2 },
    { x: [1, 2, 3, 3], scale: 3 },
    { x: [2, 1, 5, 3], scale: [2, 3] },
    { x: [1, 4, 7, 2], scale: [1, 2] },
    { x: [1, 2, 3, 4], scale: 1 },
    { x: [3, 2, 6, 6], scale: 4 },
  ];
  cases.forEach((c, caseIndex) => {
    it(`forward and gradient: x ${JSON.stringify(c.x)} scale ${JSON.stringify(c.scale)}`, () => {
      const rng = new sg.Rng(5000 + caseIndex);
      const [sh, sw] = pairOf(c.scale);
      const outShape = [c.x[0], c.x[1], c.x[2] * sh, c.x[3] * sw];
      const xd = randn(rng, sizeOf(c.x));
      const rd = randn(rng, sizeOf(outShape));
      const f = (a: tf.Tensor): tf.Tensor => tf.image.resizeNearestNeighbor(a as tf.Tensor4D, [outShape[2], outShape[3]], false, false);
      const tx = tfNHWC(xd, c.x);
      const ty = f(tx);
      // tfjs-backend-cpu 4.22's ResizeNearestNeighborGrad indexes dy with the batch stride of x
      // (dyROffset = batchOffset + ..., batchOffset = b * imagesStrides[0]), so it is wrong for batch > 1:
      // take the oracle's gradient one image at a time and stack.
      const tr = tfNHWC(rd, outShape);
      const perImage = Array.from({ length: c.x[0] }, (_, b) => {
        const xb = tf.slice(tx, [b, 0, 0, 0], [1, -1, -1, -1]);
        const rb = tf.slice(tr, [b, 0, 0, 0], [1, -1, -1, -1]);
        const [g] = tf.grads(f)([xb], rb);
        tf.dispose([xb, rb]);
        return g;
      });
      const tdx = tf.concat(perImage, 0);
      tf.dispose([tr, ...perImage]);

      const x = sgT(xd, c.x, true);
      const y = sg.upsampleNearest2d(x, c.scale);
      expectShape(y, outShape, 'upsampleNearest2d output');
      expectClose(y.dataSync(), fromNHWC(ty), 'upsampleNearest2d forward');
      y.backward(sgT(rd, outShape));
      expectClose(grad(x, 'dx'), fromNHWC(tdx), 'upsampleNearest2d dx');
      // and the adjoint directly: dx[n,c,i,j] = sum of the sh x sw block of dy
      const [n, ch, h, w] = c.x;
      const direct = new Float64Array(sizeOf(c.x));
      for (let p = 0; p < n * ch; p++) {
        for (let i = 0; i < h * sh; i++) {
          for (let j = 0; j < w * sw; j++) direct[p * h * w + Math.floor(i / sh) * w + Math.floor(j / sw)] += rd[p * h * sh * w * sw + i * w * sw + j];
        }
      }
      expectClose(grad(x, 'dx'), direct, 'upsampleNearest2d dx (block sums)');
      tf.dispose([tx, ty, tdx]);
    });
  });
});

// ---------------------------------------------------------------- matmul

interface MatmulCase {
  a: Shape;
  b: Shape;
  transA?: boolean;
  transB?: boolean;
}

const matmulName = (c: MatmulCase): string => `${JSON.stringify(c.a)}${c.transA ? '^T' : ''} @ ${JSON.stringify(c.b)}${c.transB ? '^T' : ''}`;

function checkMatmul(c: MatmulCase, seed: number): void {
  const rng = new sg.Rng(seed);
  const ad = randn(rng, sizeOf(c.a));
  const bd = randn(rng, sizeOf(c.b));
  const f = (x: tf.Tensor, y: tf.Tensor): tf.Tensor => tf.matMul(x, y, c.transA ?? false, c.transB ?? false);
  const ta = tf.tensor(ad, c.a);
  const tb = tf.tensor(bd, c.b);
  const ty = f(ta, tb);
  const rd = randn(rng, ty.size);
  const tgrads = tf.grads(f)([ta, tb], tf.tensor(rd, ty.shape));

  const a = sgT(ad, c.a, true);
  const b = sgT(bd, c.b, true);
  const y = c.transA || c.transB ? sg.matmulT(a, b, c.transA ?? false, c.transB ?? false) : sg.matmul(a, b);
  expectShape(y, ty.shape, 'matmul output');
  expectClose(y.dataSync(), ty.dataSync(), 'matmul forward');
  y.backward(sgT(rd, ty.shape));
  expectClose(grad(a, 'da'), tgrads[0].dataSync(), 'matmul da');
  expectClose(grad(b, 'db'), tgrads[1].dataSync(), 'matmul db');
  tf.dispose([ta, tb, ty, ...tgrads]);
}

describe('matmul vs tf.matMul', () => {
  const cases: MatmulCase[] = [
    { a: [5, 7], b: [7, 3] },
    { a: [1, 1], b: [1, 4] },
    { a: [6, 1], b: [1, 5] },
    { a: [3, 4, 6], b: [3, 6, 5] },
    { a: [130, 300], b: [300, 37] }, // crosses the GEMM's 128-row and 256-deep blocks
    { a: [7, 5], b: [7, 3], transA: true },
    { a: [5, 7], b: [3, 7], transB: true },
    { a: [2, 7, 5], b: [2, 3, 7], transA: true, transB: true },
  ];
  cases.forEach((c, caseIndex) => {
    it(`forward and gradients: ${matmulName(c)}`, () => checkMatmul(c, 6000 + caseIndex));
  });
});

// ---------------------------------------------------------------- elementwise

describe('unary elementwise ops vs tfjs', () => {
  const positive = (rng: sg.Rng, n: number): Float32Array => randu(rng, n, 0.2, 3);
  const cases: Array<{ name: string; sg: (x: sg.Tensor) => sg.Tensor; tf: (x: tf.Tensor) => tf.Tensor; data?: (rng: sg.Rng, n: number) => Float32Array }> = [
    { name: 'sigmoid', sg: sg.sigmoid, tf: tf.sigmoid },
    { name: 'tanh', sg: sg.tanh, tf: tf.tanh },
    { name: 'leakyRelu slope 0.2', sg: (x) => sg.leakyRelu(x, 0.2), tf: (x) => tf.leakyRelu(x, 0.2) },
    { name: 'leakyRelu default slope (0.01, as in PyTorch)', sg: (x) => sg.leakyRelu(x), tf: (x) => tf.leakyRelu(x, 0.01) },
    { name: 'relu', sg: sg.relu, tf: tf.relu },
    { name: 'exp', sg: sg.exp, tf: tf.exp },
    { name: 'log', sg: sg.log, tf: tf.log, data: positive },
    { name: 'sqrt', sg: sg.sqrt, tf: tf.sqrt, data: positive },
    { name: 'square', sg: sg.square, tf: tf.square },
    { name: 'neg', sg: sg.neg, tf: tf.neg },
    { name: 'pow 3', sg: (x) => sg.pow(x, 3), tf: (x) => tf.pow(x, 3) },
  ];
  cases.forEach((c, caseIndex) => {
    it(`${c.name}: forward and gradient`, () => {
      const rng = new sg.Rng(7000 + caseIndex);
      const shape: Shape = [3, 4, 5];
      const xd = (c.data ?? ((r: sg.Rng, n: number) => randn(r, n, 2)))(rng, sizeOf(shape));
      const rd = randn(rng, sizeOf(shape));
      const tx = tf.tensor(xd, shape);
      const ty = c.tf(tx);
      const [tdx] = tf.grads(c.tf)([tx], tf.tensor(rd, shape));
      const x = sgT(xd, shape, true);
      const y = c.sg(x);
      expectClose(y.dataSync(), ty.dataSync(), `${c.name} forward`);
      y.backward(sgT(rd, shape));
      expectClose(grad(x, 'dx'), tdx.dataSync(), `${c.name} dx`);
      tf.dispose([tx, ty, tdx]);
    });
  });
});

describe('broadcasting binary ops vs tfjs', () => {
  const ops: Array<{ name: string; sg: (a: sg.Tensor, b: sg.Tensor) => sg.Tensor; tf: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor }> = [
    { name: 'add', sg: sg.add, tf: tf.add },
    { name: 'sub', sg: sg.sub, tf: tf.sub },
    { name: 'mul', sg: sg.mul, tf: tf.mul },
    { name: 'div', sg: sg.div, tf: tf.div },
  ];
  const shapes: Array<[Shape, Shape]> = [[[2, 3, 4], [2, 3, 4]], [[2, 3, 4], [3, 1]], [[4], [2, 1, 4]], [[2, 1, 5], [3, 1]], [[3, 4], []]];
  ops.forEach((o, opIndex) => {
    shapes.forEach(([as, bs], shapeIndex) => {
      it(`${o.name} ${JSON.stringify(as)} with ${JSON.stringify(bs)}: forward and gradients`, () => {
        const rng = new sg.Rng(8000 + 10 * opIndex + shapeIndex);
        const ad = randn(rng, sizeOf(as));
        const bd = randAwayFromZero(rng, sizeOf(bs), 0.5, 2);
        const ta = tf.tensor(ad, as);
        const tb = tf.tensor(bd, bs);
        const ty = o.tf(ta, tb);
        const rd = randn(rng, ty.size);
        const tgrads = tf.grads(o.tf)([ta, tb], tf.tensor(rd, ty.shape));
        const a = sgT(ad, as, true);
        const b = sgT(bd, bs, true);
        const y = o.sg(a, b);
        expectShape(y, ty.shape, `${o.name} output`);
        expectClose(y.dataSync(), ty.dataSync(), `${o.name} forward`);
        y.backward(sgT(rd, ty.shape));
        expectShape(a.grad!, as, `${o.name} da`);
        expectShape(b.grad!, bs, `${o.name} db`);
        expectClose(grad(a, 'da'), tgrads[0].dataSync(), `${o.name} da`);
        expectClose(grad(b, 'db'), tgrads[1].dataSync(), `${o.name} db`);
        tf.dispose([ta, tb, ty, ...tgrads]);
      });
    });
  });
});

// ---------------------------------------------------------------- reductions and mseLoss

describe('sum and mean vs tf.sum / tf.mean', () => {
  const shape: Shape = [2, 3, 4, 5];
  const axesCases: Array<number[] | number | undefined> = [undefined, 0, [1, 2], -1, [0, 2, 3], [0, 1, 2, 3], [3, 0]];
  (['sum', 'mean'] as const).forEach((op) => {
    axesCases.forEach((axes, axesIndex) => {
      [false, true].forEach((keepdims) => {
        it(`${op} over ${JSON.stringify(axes) ?? 'all axes'}${keepdims ? ', keepdims' : ''}: forward and gradient`, () => {
          const rng = new sg.Rng(9000 + axesIndex * 2 + (keepdims ? 1 : 0) + (op === 'mean' ? 100 : 0));
          const xd = randn(rng, sizeOf(shape));
          const f = (t: tf.Tensor): tf.Tensor => (op === 'sum' ? tf.sum(t, axes, keepdims) : tf.mean(t, axes, keepdims));
          const tx = tf.tensor(xd, shape);
          const ty = f(tx);
          const rd = randn(rng, ty.size);
          const [tdx] = tf.grads(f)([tx], tf.tensor(rd, ty.shape));
          const x = sgT(xd, shape, true);
          const y = op === 'sum' ? sg.sum(x, axes, keepdims) : sg.mean(x, axes, keepdims);
          expectShape(y, ty.shape, `${op} output`);
          expectClose(y.dataSync(), ty.dataSync(), `${op} forward`);
          y.backward(sgT(rd, ty.shape));
          expectClose(grad(x, 'dx'), tdx.dataSync(), `${op} dx`);
          tf.dispose([tx, ty, tdx]);
        });
      });
    });
  });
});

describe('mseLoss vs tf.losses.meanSquaredError', () => {
  const shapes: Shape[] = [[7], [2, 3, 4, 5], [1, 1]];
  shapes.forEach((shape, caseIndex) => {
    it(`forward and gradients w.r.t. prediction and target, ${JSON.stringify(shape)}`, () => {
      const rng = new sg.Rng(9500 + caseIndex);
      const pd = randn(rng, sizeOf(shape));
      const td = randn(rng, sizeOf(shape));
      const tp = tf.tensor(pd, shape);
      const tt = tf.tensor(td, shape);
      const f = (p: tf.Tensor, t: tf.Tensor): tf.Tensor => tf.losses.meanSquaredError(t, p);
      const ty = f(tp, tt);
      const ty2 = tf.mean(tf.squaredDifference(tp, tt));
      const [gp, gt] = tf.grads(f)([tp, tt], tf.scalar(1.7));

      const p = sgT(pd, shape, true);
      const t = sgT(td, shape, true);
      const y = sg.mseLoss(p, t);
      expectShape(y, [], 'mseLoss output');
      expectClose(y.dataSync(), ty.dataSync(), 'mseLoss forward vs tf.losses.meanSquaredError');
      expectClose(y.dataSync(), ty2.dataSync(), 'mseLoss forward vs mean(squaredDifference)');
      y.backward(sg.scalar(1.7));
      expectClose(grad(p, 'd pred'), gp.dataSync(), 'mseLoss d pred');
      expectClose(grad(t, 'd target'), gt.dataSync(), 'mseLoss d target');
      tf.dispose([tp, tt, ty, ty2, gp, gt]);
    });
  });
});

// ---------------------------------------------------------------- threaded kernels

describe('conv2d and matmul vs tfjs on the multi-threaded kernels', () => {
  // Kernels fan out to worker threads only when every array is SharedArrayBuffer-backed (>= 16384
  // elements) and the work is >= 4 MFLOP; these shapes qualify. Three threads even on a small machine.
  // The first case is a canary: if the workers cannot start (each attempt blocks for threads.ts's
  // 30 s startup timeout), the other threaded cases are skipped instead of waiting 30 s each (the canary has failed
  // the run by then). Where a -t filter left the canary out (null), they run.
  let savedThreads = 1;
  let threadsStarted: boolean | null = null;
  beforeAll(() => {
    savedThreads = getThreadCount();
    setThreadCount(Math.max(3, savedThreads));
  });
  afterAll(() => setThreadCount(savedThreads));

  const canary: ConvCase = { x: [4, 64, 12, 12], w: [32, 64, 3, 3], stride: 1, padding: 'same' };
  it(`worker threads start and run conv2d forward and gradients: ${convName(canary)}`, () => {
    const before = parallelRunCount();
    try {
      checkConv(canary, 1500);
    } finally {
      threadsStarted = parallelRunCount() > before;
    }
    expect(parallelRunCount(), 'kernel calls that ran on worker threads').toBeGreaterThanOrEqual(before + 3);
  });

  const threadedConvs: ConvCase[] = [
    // batch 1: the input gradient splits by input channel instead of by image
    { x: [1, 32, 24, 24], w: [64, 32, 3, 3], stride: 1, padding: [1, 2, 0, 1] },
    { x: [3, 32, 25, 23], w: [48, 32, 4, 3], stride: 2, padding: 'same' },
  ];
  threadedConvs.forEach((c, caseIndex) => {
    it(`conv2d forward and gradients: ${convName(c)}`, (ctx) => {
      if (threadsStarted === false) ctx.skip('worker threads did not start (see the first threaded test)');
      const before = parallelRunCount();
      checkConv(c, 1501 + caseIndex);
      expect(parallelRunCount(), 'kernel calls that ran on worker threads').toBeGreaterThanOrEqual(before + 3);
    });
  });

  const threadedMatmuls: MatmulCase[] = [
    { a: [200, 300], b: [300, 100] },
    { a: [4, 120, 100], b: [4, 100, 80] },
    { a: [300, 200], b: [100, 300], transA: true, transB: true },
  ];
  threadedMatmuls.forEach((c, caseIndex) => {
    it(`matmul forward and gradients: ${matmulName(c)}`, (ctx) => {
      if (threadsStarted === false) ctx.skip('worker threads did not start (see the first threaded test)');
      const before = parallelRunCount();
      checkMatmul(c, 6500 + caseIndex);
      expect(parallelRunCount(), 'kernel calls that ran on worker threads').toBeGreaterThanOrEqual(before + 1);
    });
  });
});
