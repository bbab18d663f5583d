/**
 * Elementwise, copy and reduction kernels of the CPU backend, over strided N-d index spaces.
 *
 * Every kernel here walks the output (or input) in row-major order one innermost row at a time:
 * `forEachRowIn` yields the starting offsets of each row in every operand and the kernel runs a tight
 * loop along the row with that operand's innermost stride (0 = broadcast). The op is chosen by a
 * switch outside the loop, so each loop body is a single expression. Dimensions that every operand
 * walks as one are merged first (`coalesce`), so rows are as long as the layouts allow: contiguous
 * operands are one row, not one per (N, C, H) index (which cost a callback per 1-30 elements on the
 * small maps of the paper's networks).
 *
 * The unary, binary and copy kernels take a range [start, end) of the output's row-major elements, so
 * backend.ts can split a large one across worker threads (`forEachRowIn` starts mid-row where a part does).
 */
import type { BinaryOp, UnaryOp } from '../backend.js';
import { type FloatArray, sizeOf } from '../dtype.js';

/**
 * The same index space with adjacent dimensions merged where every operand walks them as one
 * (stride[d] = stride[d+1] * shape[d+1] for all operands, e.g. all of a contiguous tensor, or H and W
 * of a per-channel bias with strides 0 and 0), and size-1 dimensions dropped. Rank 0 stays rank 0.
 */
export function coalesce(shape: readonly number[], strides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1 && shape.length > 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && strides.every((st, k) => outStrides[k][last] === st[d] * shape[d])) {
      outShape[last] *= shape[d];
      strides.forEach((st, k) => (outStrides[k][last] = st[d]));
    } else {
      outShape.push(shape[d]);
      strides.forEach((st, k) => outStrides[k].push(st[d]));
    }
  }
  if (outShape.length === 0 && shape.length > 0) return { shape: [1], strides: strides.map(() => [0]) };
  return { shape: outShape, strides: outStrides };
}

/**
 * Calls `row(offsets, len)` for the rows of `shape` that cover its row-major elements [start, end): the first and
 * the last may be partial, and `offsets` are the operands' offsets of the row's first element in the range.
 */
export function forEachRowIn(shape: readonly number[], strides: readonly (readonly number[])[], bases: readonly number[],
  start: number, end: number, row: (offsets: number[], len: number) => void): void {
  if (start >= end) return;
  const rank = shape.length;
  if (rank === 0) {
    row(bases.slice(), 1);
    return;
  }
  // The multi-index of `start`, and the operands' offsets there.
  const idx = new Array<number>(rank);
  const offsets = bases.slice();
  for (let d = rank - 1, rest = start; d >= 0; d--) {
    idx[d] = rest % shape[d];
    rest = Math.floor(rest / shape[d]);
    for (let k = 0; k < strides.length; k++) offsets[k] += idx[d] * strides[k][d];
  }
  const inner = shape[rank - 1];
  for (let pos = start; pos < end;) {
    const len = Math.min(inner - idx[rank - 1], end - pos);
    row(offsets.slice(), len);
    pos += len;
    if (pos >= end) return;
    // Back to the start of the row, then one step of the odometer over the outer dimensions.
    for (let k = 0; k < strides.length; k++) offsets[k] -= idx[rank - 1] * strides[k][rank - 1];
    idx[rank - 1] = 0;
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]++;
      for (let k = 0; k < strides.length; k++) offsets[k] += strides[k][d];
      if (idx[d] < shape[d]) break;
      for (let k = 0; k < strides.length; k++) offsets[k] -= strides[k][d] * shape[d];
      idx[d] = 0;
    }
  }
}

/**
 * [p, 1]: leaky ReLU and its gradient scale by f[+(x > 0)] instead of branching on the sign, which a CPU mispredicts
 * about half the time on activations: on this project's 2-core Xeon, [8,8,64,64] float32 of random signs, leakyRelu
 * took 11.3 ns per element with the branch and 4.8 without, leakyReluGrad 15.3 and 7.4 (with rows merged too).
 * x * 1 and x * p are exactly the branch's two results, for NaN, infinities and -0 too.
 */
function leakyFactors(p: number): Float64Array {
  leaky[0] = p;
  return leaky;
}
const leaky = new Float64Array([0, 1]);

/** out[i] = op(x[i]) for i in [start, end) (default: all of out). */
export function unaryKernel(op: UnaryOp, x: FloatArray, out: FloatArray, p: number, start = 0, end = out.length): void {
  switch (op) {
    case 'neg': for (let i = start; i < end; i++) out[i] = -x[i]; break;
    case 'exp': for (let i = start; i < end; i++) out[i] = Math.exp(x[i]); break;
    case 'log': for (let i = start; i < end; i++) out[i] = Math.log(x[i]); break;
    case 'sqrt': for (let i = start; i < end; i++) out[i] = Math.sqrt(x[i]); break;
    case 'square': for (let i = start; i < end; i++) out[i] = x[i] * x[i]; break;
    case 'relu': for (let i = start; i < end; i++) out[i] = x[i] <= 0 ? 0 : x[i]; break; // NaN stays NaN (as in PyTorch)
    case 'leakyRelu': {
      const f = leakyFactors(p);
      for (let i = start; i < end; i++) out[i] = x[i] * f[+(x[i] > 0)];
      break;
    }
    case 'sigmoid': for (let i = start; i < end; i++) out[i] = 1 / (1 + Math.exp(-x[i])); break;
    case 'tanh': for (let i = start; i < end; i++) out[i] = Math.tanh(x[i]); break;
    case 'addScalar': for (let i = start; i < end; i++) out[i] = x[i] + p; break;
    case 'mulScalar': for (let i = start; i < end; i++) out[i] = x[i] * p; break;
    case 'rsubScalar': for (let i = start; i < end; i++) out[i] = p - x[i]; break;
    case 'divScalar': for (let i = start; i < end; i++) out[i] = x[i] / p; break;
    case 'rdivScalar': for (let i = start; i < end; i++) out[i] = p / x[i]; break;
    case 'powScalar': for (let i = start; i < end; i++) out[i] = Math.pow(x[i], p); break;
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
    case 'reluGrad': for (let i = 0; i < len; i++, ia += sa, ib += sb) out[o + i] = b[ib] <= 0 ? 0 : a[ia]; break; // x NaN: passes gy (PyTorch's threshold_backward)
    case 'leakyReluGrad': {
      const f = leakyFactors(p);
      for (let i = 0; i < len; i++, ia += sa, ib += sb) out[o + i] = a[ia] * f[+(b[ib] > 0)];
      break;
    }
    case 'sigmoidGrad': for (let i = 0; i < len; i++, ia += sa, ib += sb) out[o + i] = a[ia] * b[ib] * (1 - b[ib]); break;
    case 'tanhGrad': for (let i = 0; i < len; i++, ia += sa, ib += sb) out[o + i] = a[ia] * (1 - b[ib] * b[ib]); break;
    default: throw new Error(`cpu: unknown binary op '${op as string}'`);
  }
}

/** out (row-major, outShape) = a (op) b for the output elements [start, end) (default: all). */
export function binaryKernel(op: BinaryOp, a: FloatArray, aStrides: readonly number[], b: FloatArray, bStrides: readonly number[],
  out: FloatArray, outShape: readonly number[], p: number, start = 0, end = out.length): void {
  const { shape, strides: [as, bs] } = coalesce(outShape, [aStrides, bStrides]);
  const rank = shape.length;
  const sa = rank === 0 ? 0 : as[rank - 1];
  const sb = rank === 0 ? 0 : bs[rank - 1];
  let o = start;
  forEachRowIn(shape, [as, bs], [0, 0], start, end, ([ia, ib], len) => {
    binaryRow(op, a, ia, sa, b, ib, sb, out, o, len, p);
    o += len;
  });
}

/** out[outOffset + idx . outStrides] = x[xOffset + idx . xStrides] for the row-major elements [start, end) of shape (default: all). */
export function copyKernel(x: FloatArray, xStrides: readonly number[], xOffset: number,
  out: FloatArray, outStrides: readonly number[], outOffset: number, shape: readonly number[], start = 0, end = sizeOf(shape)): void {
  const c = coalesce(shape, [xStrides, outStrides]);
  const [xs, os] = c.strides;
  const rank = c.shape.length;
  const sx = rank === 0 ? 0 : xs[rank - 1];
  const so = rank === 0 ? 0 : os[rank - 1];
  forEachRowIn(c.shape, [xs, os], [xOffset, outOffset], start, end, ([ix, io], len) => {
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
  // x is contiguous, so its rows keep stride 1; the output's is 1 (kept axis) or 0 (reduced).
  const c = coalesce(shape, [xStrides, outStrides]);
  const so = c.shape.length === 0 ? 0 : c.strides[1][c.shape.length - 1];
  forEachRowIn(c.shape, c.strides, [0, 0], 0, sizeOf(shape), ([ix, io], len) => {
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
