/**
 * Shape ops.
 *   reshape(x, shape)        a view (no copy); one dimension may be -1     backward: reshape gy back
 *   broadcastTo(x, shape)    numpy broadcasting, materialised              backward: sumTo(gy, x.shape)
 *   permute(x, perm)         out axis i = x axis perm[i] (strided copy)    backward: permute by the inverse
 *   transpose(x, a, b)       swaps two axes (default: the last two)
 *   concat(xs, axis)         joins along an axis                           backward: slice each part out
 *   slice(x, begin, size)    a box of x (strided copy)                     backward: zeros with gy copied in
 *   pad(x, shape, begin)     zeros of shape with x copied in at begin      backward: slice gy's box back out
 */
import { runOp1 } from '../dispatch.js';
import { type Shape, shapeStr, sizeOf } from '../dtype.js';
import type { Tensor } from '../tensor.js';
import { sumTo } from './reduce.js';
import { broadcastShapes, broadcastStrides, contiguousStrides, describeValue, expectIndexList, expectTensor, normalizeAxes } from './util.js';

export function reshape(x: Tensor, shape: Shape): Tensor {
  expectTensor('reshape', 'input', x);
  if (!Array.isArray(shape as unknown)) throw new Error(`reshape: the shape must be a list of integers (one may be -1), got ${describeValue(shape)}`);
  const target = shape.slice();
  const infer = target.indexOf(-1);
  if (target.some((d, i) => (!Number.isInteger(d) || d < -1) || (d === -1 && i !== infer))) {
    throw new Error(`reshape: target shape ${shapeStr(shape)} must be non-negative integers with at most one -1`);
  }
  if (infer >= 0) {
    const known = target.reduce((p, d, i) => (i === infer ? p : p * d), 1);
    if (known === 0 || x.size % known !== 0) throw new Error(`reshape: cannot infer -1 in ${shapeStr(shape)} for ${x.size} elements (input ${shapeStr(x.shape)})`);
    target[infer] = x.size / known;
  }
  if (sizeOf(target) !== x.size) {
    throw new Error(`reshape: input ${shapeStr(x.shape)} has ${x.size} elements, target ${shapeStr(shape)} has ${sizeOf(target)}`);
  }
  return runOp1({
    op: 'reshape', inputs: [x], outputs: [target], flops: 0, view: true,
    readsInputs: false, // its backward needs only shapes
    backward: (gy) => [reshape(gy, x.shape)],
  });
}

export function broadcastTo(x: Tensor, shape: Shape): Tensor {
  expectTensor('broadcastTo', 'input', x);
  expectIndexList('broadcastTo', 'shape', shape);
  const out = broadcastShapes('broadcastTo', x.shape, shape);
  if (out.length !== shape.length || out.some((d, i) => d !== shape[i])) {
    throw new Error(`broadcastTo: ${shapeStr(x.shape)} cannot be broadcast to ${shapeStr(shape)}`);
  }
  return runOp1({
    op: 'broadcastTo', inputs: [x], outputs: [out], flops: 0,
    readsInputs: false, // its backward needs only shapes
    kernel: (be, [o], [xs]) => be.copy(xs, broadcastStrides(x.shape, out), 0, o, contiguousStrides(out), 0, out),
    backward: (gy) => [sumTo(gy, x.shape)],
  });
}

export function permute(x: Tensor, perm: readonly number[]): Tensor {
  expectTensor('permute', 'input', x);
  expectIndexList('permute', 'perm', perm, x.shape);
  const rank = x.rank;
  if (perm.length !== rank || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
    throw new Error(`permute: ${JSON.stringify(perm)} is not a permutation of the ${rank} axes of ${shapeStr(x.shape)}`);
  }
  const outShape = perm.map((p) => x.shape[p]);
  const xStrides = contiguousStrides(x.shape);
  const inverse = new Array<number>(rank);
  perm.forEach((p, i) => (inverse[p] = i));
  return runOp1({
    op: 'permute', inputs: [x], outputs: [outShape], flops: 0, attrs: { perm },
    readsInputs: false, // its backward needs only shapes
    kernel: (be, [o], [xs]) => be.copy(xs, perm.map((p) => xStrides[p]), 0, o, contiguousStrides(outShape), 0, outShape),
    backward: (gy) => [permute(gy, inverse)],
  });
}

export function transpose(x: Tensor, axis0 = -2, axis1 = -1): Tensor {
  expectTensor('transpose', 'input', x);
  if (x.rank < 2) throw new Error(`transpose: input has shape ${shapeStr(x.shape)}, expected rank >= 2`);
  const [a, b] = [axis0, axis1].map((ax) => normalizeAxes('transpose', x.shape, ax)[0]);
  const perm = x.shape.map((_, i) => i);
  perm[a] = b;
  perm[b] = a;
  return permute(x, perm);
}

export function concat(xs: readonly Tensor[], axis = 1): Tensor {
  if (!Array.isArray(xs as unknown) || xs.length === 0) throw new Error('concat: needs a non-empty array of tensors');
  xs.forEach((x, i) => expectTensor('concat', `tensor ${i}`, x));
  const ax = normalizeAxes('concat', xs[0].shape, axis)[0];
  for (let i = 1; i < xs.length; i++) {
    const s = xs[i].shape;
    if (s.length !== xs[0].rank || s.some((d, k) => k !== ax && d !== xs[0].shape[k])) {
      throw new Error(`concat: tensor ${i} has shape ${shapeStr(s)}, expected ${shapeStr(xs[0].shape)} except along axis ${ax}`);
    }
  }
  const outShape = xs[0].shape.slice();
  outShape[ax] = xs.reduce((p, t) => p + t.shape[ax], 0);
  const outStrides = contiguousStrides(outShape);
  return runOp1({
    op: 'concat', inputs: [...xs], outputs: [outShape], flops: 0, attrs: { axis: ax },
    readsInputs: false, // its backward needs only shapes
    kernel: (be, [o], ins) => {
      let offset = 0;
      ins.forEach((s, i) => {
        be.copy(s, contiguousStrides(xs[i].shape), 0, o, outStrides, offset * outStrides[ax], xs[i].shape);
        offset += xs[i].shape[ax];
      });
    },
    backward: (gy) => {
      let offset = 0;
      return xs.map((t) => {
        const begin = t.shape.map((_, k) => (k === ax ? offset : 0));
        offset += t.shape[ax];
        return slice(gy, begin, t.shape);
      });
    },
  });
}

export function slice(x: Tensor, begin: readonly number[], size: readonly number[]): Tensor {
  expectTensor('slice', 'input', x);
  expectIndexList('slice', 'begin', begin, x.shape);
  expectIndexList('slice', 'size', size, x.shape);
  if (begin.some((b, i) => b + size[i] > x.shape[i])) {
    throw new Error(`slice: begin ${JSON.stringify(begin)} and size ${JSON.stringify(size)} do not fit in ${shapeStr(x.shape)}`);
  }
  const xStrides = contiguousStrides(x.shape);
  const offset = begin.reduce((p, b, i) => p + b * xStrides[i], 0);
  return runOp1({
    op: 'slice', inputs: [x], outputs: [size], flops: 0, attrs: { begin, size },
    readsInputs: false, // its backward needs only shapes
    kernel: (be, [o], [xs]) => be.copy(xs, xStrides, offset, o, contiguousStrides(size), 0, size),
    backward: (gy) => [pad(gy, x.shape, begin)],
  });
}

/** zeros of `shape` with x copied in at `begin` (the adjoint of slice). */
export function pad(x: Tensor, shape: Shape, begin: readonly number[]): Tensor {
  expectTensor('pad', 'input', x);
  expectIndexList('pad', 'shape', shape, x.shape);
  expectIndexList('pad', 'begin', begin, x.shape);
  if (begin.some((b, i) => b + x.shape[i] > shape[i])) {
    throw new Error(`pad: ${shapeStr(x.shape)} at ${JSON.stringify(begin)} does not fit in ${shapeStr(shape)}`);
  }
  const outStrides = contiguousStrides(shape);
  const offset = begin.reduce((p, b, i) => p + b * outStrides[i], 0);
  return runOp1({
    op: 'pad', inputs: [x], outputs: [shape], flops: 0, attrs: { begin },
    readsInputs: false, // its backward needs only shapes
    kernel: (be, [o], [xs]) => {
      be.fill(o, 0);
      be.copy(xs, contiguousStrides(x.shape), 0, o, outStrides, offset, x.shape);
    },
    backward: (gy) => [slice(gy, begin, x.shape)],
  });
}
