/**
 * Reductions.
 *   sum(x, axes, keepdims)    forward: sum over axes            backward: broadcast gy back to x's shape
 *   mean(x, axes, keepdims)   forward: sum / count              backward: broadcast gy / count
 *   sumTo(g, shape)           sums a broadcast gradient back to an input's shape (used by broadcasting ops)
 */
import { runOp1 } from '../dispatch.js';
import type { Shape } from '../dtype.js';
import { shapeStr } from '../dtype.js';
import type { Tensor } from '../tensor.js';
import { mulScalar } from './elementwise.js';
import { broadcastTo, reshape } from './shape.js';
import { describeValue, expectTensor, normalizeAxes } from './util.js';

function reduce(op: 'sum' | 'mean', x: Tensor, axes: number | readonly number[] | undefined, keepdims: boolean): Tensor {
  expectTensor(op, 'input', x);
  if (typeof keepdims !== 'boolean') throw new Error(`${op}: keepdims must be true or false, got ${describeValue(keepdims)} (it is the third argument, not an option)`);
  const ax = normalizeAxes(op, x.shape, axes);
  const keptShape = x.shape.map((d, i) => (ax.includes(i) ? 1 : d));
  const outShape = keepdims ? keptShape : x.shape.filter((_, i) => !ax.includes(i));
  const count = ax.reduce((p, a) => p * x.shape[a], 1);
  const scale = op === 'mean' ? 1 / count : 1;
  return runOp1({
    op, inputs: [x], outputs: [outShape], flops: x.size, attrs: { axes: ax, keepdims },
    readsInputs: false, // its backward needs only shapes
    kernel: (be, [out], [xs]) => be.reduceSum(xs, x.shape, ax, out, scale),
    backward: (gy) => {
      const g = reshape(gy, keptShape);
      const b = broadcastTo(g, x.shape);
      g.dispose();
      if (scale === 1) return [b];
      const r = mulScalar(b, scale);
      b.dispose();
      return [r];
    },
  });
}

export function sum(x: Tensor, axes?: number | readonly number[], keepdims = false): Tensor {
  return reduce('sum', x, axes, keepdims);
}

export function mean(x: Tensor, axes?: number | readonly number[], keepdims = false): Tensor {
  return reduce('mean', x, axes, keepdims);
}

/** Sums g (a gradient at a broadcast shape) over the axes that broadcasting added or stretched, giving `shape`. */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  const offset = g.rank - shape.length;
  if (offset < 0) throw new Error(`sumTo: cannot reduce ${shapeStr(g.shape)} to the larger rank of ${shapeStr(shape)}`);
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < offset) axes.push(i);
    else if (shape[i - offset] === 1 && g.shape[i] !== 1) axes.push(i);
    else if (shape[i - offset] !== g.shape[i]) throw new Error(`sumTo: ${shapeStr(g.shape)} does not broadcast from ${shapeStr(shape)}`);
  }
  const s = sum(g, axes, true);
  const r = reshape(s, shape);
  s.dispose();
  return r;
}
