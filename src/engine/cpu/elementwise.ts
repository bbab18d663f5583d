/**
 * Elementwise, copy and reduction kernels of the CPU backend, over strided N-d index spaces.
 *
 * Every kernel here walks the output (or input) in row-major order one innermost row at a time:
 * `forEachRow` yields the starting offsets of each row in every operand and the kernel runs a tight
 * loop along the row with that operand's innermost stride (0 = broadcast). The op is chosen by a
 * switch outside the loop, so each loop body is a single expression.
 */
import type { BinaryOp, UnaryOp } from '../backend.js';
import type { FloatArray } from '../dtype.js';

/** Calls `row(offsets)` for every innermost row of `shape`, with the row's start offset in each strided operand. */
export function forEachRow(shape: readonly number[], strides: readonly (readonly number[])[], bases: readonly number[], row: (offsets: number[]) => void): void {
  const rank = shape.length;
  const offsets = bases.slice();
  if (rank <= 1) {
    row(offsets);
    return;
  }
  for (const d of shape) if (d === 0) return;
  const idx = new Array<number>(rank - 1).fill(0);
  for (;;) {
    row(offsets.slice());
    // Advance the odometer over the outer rank-1 dimensions.
    let d = rank - 2;
    for (; d >= 0; d--) {
      idx[d]++;
      for (let k = 0; k < strides.length; k++) offsets[k] += strides[k][d];
      if (idx[d] < shape[d]) break;
      for (let k = 0; k < strides.length; k++) offsets[k] -= strides[k][d] * shape[d];
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

export function unaryKernel(op: UnaryOp, x: FloatArray, out: FloatArray, p: number): void {
  const n = out.length;
  switch (op) {
    case 'neg': for (let i = 0; i < n; i++) out[i] = -x[i]; break;
    case 'exp': for (let i = 0; i < n; i++) out[i] = Math.exp(x[i]); break;
    case 'log': for (let i = 0; i < n; i++) out[i] = Math.log(x[i]); break;
    case 'sqrt': for (let i = 0; i < n; i++) out[i] = Math.sqrt(x[i]); break;
    case 'square': for (let i = 0; i < n; i++) out[i] = x[i] * x[i]; break;
    case 'relu': for (let i = 0; i < n; i++) out[i] = x[i] > 0 ? x[i] : 0; break;
    case 'leakyRelu': for (let i = 0; i < n; i++) out[i] = x[i] > 0 ? x[i] : p * x[i]; break;
    case 'sigmoid': for (let i = 0; i < n; i++) out[i] = 1 / (1 + Math.exp(-x[i])); break;
    case 'tanh': for (let i = 0; i < n; i++) out[i] = Math.tanh(x[i]); break;
    case 'addScalar': for (let i = 0; i < n; i++) out[i] = x[i] + p; break;
    case 'mulScalar': for (let i = 0; i < n; i++) out[i] = x[i] * p; break;
    case 'rsubScalar': for (let i = 0; i < n; i++) out[i] = p - x[i]; break;
    case 'rdivScalar': for (let i = 0; i < n; i++) out[i] = p / x[i]; break;
    case 'powScalar': for (let i = 0; i < n; i++) out[i] = Math.pow(x[i], p); break;
    default: throw new Error(`cpu: unknown unary op '${op as string}'`);
  }
}

/** One row of a binary op: out[o + i] = a[ia + i*sa] (op) b[ib + i*sb] for i < len. */
function binaryRow(op: BinaryOp, a: FloatArray, ia: number, sa: number, b: FloatArray, ib: number, sb: number,
  out: FloatArray, o: number, len: number, p: number): void {
  switch (op) {
    case 'add': for (let i = 0; i < len; i++, ia += sa, ib += sb) out[o + i] = a[ia] + b[ib]; break;
    case 'sub': for (let i = 0; i < len; i++, ia += sa, ib += sb) out[o + i] = a[ia] - b[ib]; break;
    case 'mul': for (let i = 0; i < len; i++, ia += sa, ib += sb) out[o + i] = a[ia] * b[ib]; break;
    case 'div': for (let i = 0; i < len; i++, ia += sa, ib += sb) out[o + i] = a[ia] / b[ib]; break;
    case 'reluGrad': for (let i = 0; i < len; i++, ia += sa, ib += sb) out[o + i] = b[ib] > 0 ? a[ia] : 0; break;
    case 'leakyReluGrad': for (let i = 0; i < len; i++, ia += sa, ib += sb) out[o + i] = b[ib] > 0 ? a[ia] : p * a[ia]; break;
    case 'sigmoidGrad': for (let i = 0; i < len; i++, ia += sa, ib += sb) out[o + i] = a[ia] * b[ib] * (1 - b[ib]); break;
    case 'tanhGrad': for (let i = 0; i < len; i++, ia += sa, ib += sb) out[o + i] = a[ia] * (1 - b[ib] * b[ib]); break;
    default: throw new Error(`cpu: unknown binary op '${op as string}'`);
  }
}

export function binaryKernel(op: BinaryOp, a: FloatArray, aStrides: readonly number[], b: FloatArray, bStrides: readonly number[],
  out: FloatArray, outShape: readonly number[], p: number): void {
  const rank = outShape.length;
  const len = rank === 0 ? 1 : outShape[rank - 1];
  const sa = rank === 0 ? 0 : aStrides[rank - 1];
  const sb = rank === 0 ? 0 : bStrides[rank - 1];
  let o = 0;
  forEachRow(outShape, [aStrides, bStrides], [0, 0], ([ia, ib]) => {
    binaryRow(op, a, ia, sa, b, ib, sb, out, o, len, p);
    o += len;
  });
}

export function copyKernel(x: FloatArray, xStrides: readonly number[], xOffset: number,
  out: FloatArray, outStrides: readonly number[], outOffset: number, shape: readonly number[]): void {
  const rank = shape.length;
  const len = rank === 0 ? 1 : shape[rank - 1];
  const sx = rank === 0 ? 0 : xStrides[rank - 1];
  const so = rank === 0 ? 0 : outStrides[rank - 1];
  forEachRow(shape, [xStrides, outStrides], [xOffset, outOffset], ([ix, io]) => {
    for (let i = 0; i < len; i++, ix += sx, io += so) out[io] = x[ix];
  });
}

/** out = scale * (x summed over `axes`); accumulates in float64 whatever the dtype. */
export function reduceSumKernel(x: FloatArray, shape: readonly number[], axes: readonly number[], out: FloatArray, scale: number): void {
  const rank = shape.length;
  // Stride of each input axis in the output: 0 for reduced axes, row-major over the kept ones.
  const outStrides = new Array<number>(rank).fill(0);
  let s = 1;
  for (let d = rank - 1; d >= 0; d--) {
    if (!axes.includes(d)) {
      outStrides[d] = s;
      s *= shape[d];
    }
  }
  const xStrides = new Array<number>(rank);
  s = 1;
  for (let d = rank - 1; d >= 0; d--) {
    xStrides[d] = s;
    s *= shape[d];
  }
  const acc = new Float64Array(out.length);
  const len = rank === 0 ? 1 : shape[rank - 1];
  const so = rank === 0 ? 0 : outStrides[rank - 1];
  forEachRow(shape, [xStrides, outStrides], [0, 0], ([ix, io]) => {
    if (so === 0) {
      let t = 0;
      for (let i = 0; i < len; i++) t += x[ix + i];
      acc[io] += t;
    } else {
      for (let i = 0; i < len; i++) acc[io + i] += x[ix + i];
    }
  });
  for (let i = 0; i < out.length; i++) out[i] = acc[i] * scale;
}
