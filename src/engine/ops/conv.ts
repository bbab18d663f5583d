/**
 * Convolutions, NCHW, weight [outChannels, inChannels, kernelH, kernelW] (PyTorch layout).
 *
 * Three kernels, each the gradient of the others (candle's habit: conv gradients are convs):
 *   conv2d(x, w)               y  = x (*) w                    backward: dx = conv2dGradInput(gy, w), dw = conv2dGradWeight(x, gy), db = sum(gy)
 *   conv2dGradInput(dy, w)     dx = transposed convolution     backward: d dy = conv2d(g, w),          dw = conv2dGradWeight(g, dy)
 *   conv2dGradWeight(x, dy)    dw = correlation of x and dy    backward: dx = conv2dGradInput(dy, g),   d dy = conv2d(x, g)
 * convTranspose2d IS conv2dGradInput (weight [inChannels, outChannels, kH, kW] as in PyTorch's ConvTranspose2d),
 * with the geometry of the convolution it transposes.
 *
 * Padding: 'valid' (none), 'same' (TensorFlow's rule: out = ceil(in/stride), the odd pixel of padding
 * at the bottom/right), a number (all sides), [padH, padW], or [top, bottom, left, right].
 */
import type { Conv2dGeometry } from '../backend.js';
import { runOp1 } from '../dispatch.js';
import { type Shape, shapeStr } from '../dtype.js';
import type { Tensor } from '../tensor.js';
import { add } from './elementwise.js';
import { sum } from './reduce.js';
import { reshape } from './shape.js';
import { expectOptions, expectRank } from './util.js';

export type Padding = 'same' | 'valid' | number | readonly [number, number] | readonly [number, number, number, number];

export interface Conv2dOptions {
  stride?: number | readonly [number, number];
  padding?: Padding;
}

function pair(op: string, name: string, v: number | readonly number[] | undefined, dflt: number, min: number): [number, number] {
  const p = v === undefined ? [dflt, dflt] : typeof v === 'number' ? [v, v] : v;
  if (p.length !== 2 || p.some((x) => !Number.isInteger(x) || x < min)) {
    throw new Error(`${op}: ${name} must be an integer >= ${min} or a pair of them, got ${JSON.stringify(v)}`);
  }
  return [p[0], p[1]];
}

/** The geometry of conv2d for an input shape, a kernel and options; throws naming the op and the shapes. */
export function conv2dGeometry(op: string, inputShape: Shape, weightShape: Shape, opts: Conv2dOptions): Conv2dGeometry {
  const [n, c, h, w] = inputShape;
  const [o, cw, kh, kw] = weightShape;
  const shapes = `(input ${shapeStr(inputShape)}, weight ${shapeStr(weightShape)})`;
  if (c !== cw) throw new Error(`${op}: input has ${c} channels, weight expects ${cw} ${shapes}`);
  if (!(kh >= 1 && kw >= 1)) throw new Error(`${op}: kernel must be at least 1x1, got ${kh}x${kw} ${shapes}`);
  const [sh, sw] = pair(op, 'stride', opts.stride, 1, 1);
  const padding = opts.padding ?? 'valid';
  let top: number, bottom: number, left: number, right: number;
  if (padding === 'valid') {
    [top, bottom, left, right] = [0, 0, 0, 0];
  } else if (padding === 'same') {
    const totalH = Math.max((Math.ceil(h / sh) - 1) * sh + kh - h, 0);
    const totalW = Math.max((Math.ceil(w / sw) - 1) * sw + kw - w, 0);
    [top, bottom, left, right] = [Math.floor(totalH / 2), totalH - Math.floor(totalH / 2), Math.floor(totalW / 2), totalW - Math.floor(totalW / 2)];
  } else if (typeof padding === 'string') {
    throw new Error(`${op}: padding must be 'same', 'valid', a number, [padH, padW] or [top, bottom, left, right], got '${padding as string}'`);
  } else if (typeof padding === 'number' || padding.length === 2) {
    const [ph, pw] = pair(op, 'padding', padding as number | readonly number[], 0, 0);
    [top, bottom, left, right] = [ph, ph, pw, pw];
  } else if (padding.length === 4 && padding.every((p) => Number.isInteger(p) && p >= 0)) {
    [top, bottom, left, right] = padding;
  } else {
    throw new Error(`${op}: padding must be 'same', 'valid', a number, [padH, padW] or [top, bottom, left, right] of integers >= 0, got ${JSON.stringify(padding)}`);
  }
  const oh = Math.floor((h + top + bottom - kh) / sh) + 1;
  const ow = Math.floor((w + left + right - kw) / sw) + 1;
  if (oh < 1 || ow < 1) {
    throw new Error(`${op}: output would be empty: ${h}x${w} input with padding [${top},${bottom},${left},${right}] is smaller than the ${kh}x${kw} kernel ${shapes}`);
  }
  return {
    batch: n, inChannels: c, inHeight: h, inWidth: w, outChannels: o, kernelH: kh, kernelW: kw,
    outHeight: oh, outWidth: ow, strideH: sh, strideW: sw, padTop: top, padLeft: left,
  };
}

const inShape = (g: Conv2dGeometry): number[] => [g.batch, g.inChannels, g.inHeight, g.inWidth];
const outShape = (g: Conv2dGeometry): number[] => [g.batch, g.outChannels, g.outHeight, g.outWidth];
const wShape = (g: Conv2dGeometry): number[] => [g.outChannels, g.inChannels, g.kernelH, g.kernelW];
const convFlops = (g: Conv2dGeometry): number => 2 * g.batch * g.outChannels * g.outHeight * g.outWidth * g.inChannels * g.kernelH * g.kernelW;
const attrs = (g: Conv2dGeometry): Record<string, unknown> => ({
  kernel: [g.kernelH, g.kernelW], stride: [g.strideH, g.strideW], padTopLeft: [g.padTop, g.padLeft],
});

function checkShape(op: string, name: string, t: Tensor, expected: Shape): void {
  if (t.rank !== expected.length || t.shape.some((d, i) => d !== expected[i])) {
    throw new Error(`${op}: ${name} has shape ${shapeStr(t.shape)}, expected ${shapeStr(expected)}`);
  }
}

/** conv2d on a given geometry (x, w, bias already checked). */
function conv2dOp(x: Tensor, w: Tensor, bias: Tensor | null, g: Conv2dGeometry, op = 'conv2d'): Tensor {
  return runOp1({
    op, inputs: bias ? [x, w, bias] : [x, w], inputNames: ['input', 'weight', 'bias'], outputs: [outShape(g)], flops: convFlops(g), attrs: attrs(g),
    kernel: (be, [out], [xs, ws, bs]) => be.conv2d(xs, ws, bs ?? null, out, g),
    // Only the gradients some input needs are computed (the network's input image never needs one).
    backward: (gy) => [
      x.requiresGrad ? conv2dGradInputOp(gy, w, g) : null,
      w.requiresGrad ? conv2dGradWeightOp(x, gy, g) : null,
      ...(bias ? [bias.requiresGrad ? sum(gy, [0, 2, 3]) : null] : []),
    ],
  });
}

/** The transposed convolution of dy with w for geometry g: the gradient of conv2d with respect to its input. */
function conv2dGradInputOp(dy: Tensor, w: Tensor, g: Conv2dGeometry, op = 'conv2dGradInput'): Tensor {
  return runOp1({
    op, inputs: [dy, w], inputNames: [op === 'conv2dGradInput' ? 'output gradient' : 'input', 'weight'], outputs: [inShape(g)], flops: convFlops(g), attrs: attrs(g),
    kernel: (be, [dx], [dys, ws]) => be.conv2dGradInput(dys, ws, dx, g),
    backward: (gz) => [dy.requiresGrad ? conv2dOp(gz, w, null, g) : null, w.requiresGrad ? conv2dGradWeightOp(gz, dy, g) : null],
  });
}

/** The gradient of conv2d with respect to its weight. */
function conv2dGradWeightOp(x: Tensor, dy: Tensor, g: Conv2dGeometry): Tensor {
  return runOp1({
    op: 'conv2dGradWeight', inputs: [x, dy], inputNames: ['input', 'output gradient'], outputs: [wShape(g)], flops: convFlops(g), attrs: attrs(g),
    kernel: (be, [dw], [xs, dys]) => be.conv2dGradWeight(xs, dys, dw, g),
    backward: (gw) => [x.requiresGrad ? conv2dGradInputOp(dy, gw, g) : null, dy.requiresGrad ? conv2dOp(x, gw, null, g) : null],
  });
}

export interface Conv2dArgs extends Conv2dOptions {
  bias?: Tensor | null;
}

const CONV2D_OPTIONS: Record<keyof Conv2dArgs, true> = { stride: true, padding: true, bias: true };
const CONV2D_GRAD_OPTIONS: Record<keyof Conv2dOptions, true> = { stride: true, padding: true };
const CONV_TRANSPOSE2D_OPTIONS: Record<keyof ConvTranspose2dOptions, true> = { stride: true, padding: true, outputPadding: true, bias: true };

/** 2-D convolution (cross-correlation, as in every DL framework): x [N,C,H,W], w [O,C,kH,kW], bias [O]. */
export function conv2d(x: Tensor, w: Tensor, opts: Conv2dArgs = {}): Tensor {
  expectOptions('conv2d', opts, CONV2D_OPTIONS);
  expectRank('conv2d', 'input', x, 4, '[batch, channels, height, width]');
  expectRank('conv2d', 'weight', w, 4, '[outChannels, inChannels, kernelH, kernelW]');
  const g = conv2dGeometry('conv2d', x.shape, w.shape, opts);
  const bias = opts.bias ?? null;
  if (bias) checkShape('conv2d', 'bias', bias, [g.outChannels]);
  return conv2dOp(x, w, bias, g);
}

/** The gradient of conv2d(x, w, opts) with respect to x, for an x of shape inputShape, given dy. */
export function conv2dGradInput(dy: Tensor, w: Tensor, inputShape: Shape, opts: Conv2dOptions = {}): Tensor {
  expectOptions('conv2dGradInput', opts, CONV2D_GRAD_OPTIONS);
  expectRank('conv2dGradInput', 'dy', dy, 4, '[batch, outChannels, outHeight, outWidth]');
  expectRank('conv2dGradInput', 'weight', w, 4, '[outChannels, inChannels, kernelH, kernelW]');
  if (inputShape.length !== 4 || inputShape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`conv2dGradInput: inputShape ${JSON.stringify(inputShape)} must be four non-negative integers [batch, channels, height, width]`);
  }
  const g = conv2dGeometry('conv2dGradInput', inputShape, w.shape, opts);
  checkShape('conv2dGradInput', 'dy', dy, outShape(g));
  return conv2dGradInputOp(dy, w, g);
}

/** The gradient of conv2d(x, w, opts) with respect to a weight of spatial size kernel = [kH, kW], given dy. */
export function conv2dGradWeight(x: Tensor, dy: Tensor, kernel: readonly [number, number], opts: Conv2dOptions = {}): Tensor {
  expectOptions('conv2dGradWeight', opts, CONV2D_GRAD_OPTIONS);
  expectRank('conv2dGradWeight', 'input', x, 4, '[batch, channels, height, width]');
  expectRank('conv2dGradWeight', 'dy', dy, 4, '[batch, outChannels, outHeight, outWidth]');
  const [kh, kw] = pair('conv2dGradWeight', 'kernel', kernel, 1, 1);
  const g = conv2dGeometry('conv2dGradWeight', x.shape, [dy.shape[1], x.shape[1], kh, kw], opts);
  checkShape('conv2dGradWeight', 'dy', dy, outShape(g));
  return conv2dGradWeightOp(x, dy, g);
}

export interface ConvTranspose2dOptions {
  stride?: number | readonly [number, number];
  /** Rows/columns removed from each side of the full transposed output (PyTorch's padding). */
  padding?: number | readonly [number, number];
  /** Extra rows/columns added at the bottom/right (PyTorch's output_padding); must be < stride. */
  outputPadding?: number | readonly [number, number];
  bias?: Tensor | null;
}

/**
 * Transposed convolution: x [N,Cin,H,W], w [Cin,Cout,kH,kW] -> [N,Cout,Hout,Wout],
 * Hout = (H-1)*stride - 2*padding + kH + outputPadding. Computed by the conv2dGradInput kernel.
 */
export function convTranspose2d(x: Tensor, w: Tensor, opts: ConvTranspose2dOptions = {}): Tensor {
  expectOptions('convTranspose2d', opts, CONV_TRANSPOSE2D_OPTIONS);
  const op = 'convTranspose2d';
  expectRank(op, 'input', x, 4, '[batch, channels, height, width]');
  expectRank(op, 'weight', w, 4, '[inChannels, outChannels, kernelH, kernelW]');
  const [n, cin, h, wd] = x.shape;
  const [cw, cout, kh, kw] = w.shape;
  if (cin !== cw) throw new Error(`${op}: input has ${cin} channels, weight expects ${cw} (input ${shapeStr(x.shape)}, weight ${shapeStr(w.shape)})`);
  const [sh, sw] = pair(op, 'stride', opts.stride, 1, 1);
  const [ph, pw] = pair(op, 'padding', opts.padding, 0, 0);
  const [oph, opw] = pair(op, 'outputPadding', opts.outputPadding, 0, 0);
  if (oph >= sh || opw >= sw) throw new Error(`${op}: outputPadding [${oph},${opw}] must be smaller than stride [${sh},${sw}]`);
  const hOut = (h - 1) * sh - 2 * ph + kh + oph;
  const wOut = (wd - 1) * sw - 2 * pw + kw + opw;
  if (hOut < 1 || wOut < 1) throw new Error(`${op}: output would be empty (${hOut}x${wOut}) for input ${shapeStr(x.shape)}, weight ${shapeStr(w.shape)}, padding [${ph},${pw}]`);
  const g: Conv2dGeometry = {
    batch: n, inChannels: cout, inHeight: hOut, inWidth: wOut, outChannels: cin, kernelH: kh, kernelW: kw,
    outHeight: h, outWidth: wd, strideH: sh, strideW: sw, padTop: ph, padLeft: pw,
  };
  const bias = opts.bias ?? null;
  if (bias) {
    checkShape(op, 'bias', bias, [cout]);
    if (bias.dtype !== x.dtype) throw new Error(`${op}: bias is ${bias.dtype} but input is ${x.dtype} (all inputs must share one dtype)`);
  }
  const y = conv2dGradInputOp(x, w, g, op);
  if (!bias) return y;
  const b = reshape(bias, [1, cout, 1, 1]);
  const out = add(y, b);
  y.dispose();
  b.dispose();
  return out;
}
