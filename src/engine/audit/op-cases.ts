/**
 * One representative gradient-check case per op (and per important variant), used by `skipgrad gradcheck`
 * and by the tests. Shapes are small and odd so finite differences stay fast and edge cases show.
 */
import { Rng } from '../random.js';
import { fromArray, type Tensor } from '../tensor.js';
import * as ops from '../index.js';

export interface InputSpec {
  shape: number[];
  /** Values are drawn uniform in [lo, hi]; a sign is flipped at random when `signed` (keeps |x| away from 0). */
  lo?: number;
  hi?: number;
  signed?: boolean;
}

export interface OpCase {
  name: string;
  inputs: InputSpec[];
  fn: (xs: Tensor[]) => Tensor;
  /** Inputs whose gradient is checked (default all); running statistics have none. */
  check?: boolean[];
}

const pm = (shape: number[]): InputSpec => ({ shape, lo: 0.1, hi: 1, signed: true });
const pos = (shape: number[]): InputSpec => ({ shape, lo: 0.5, hi: 2 });

export const OP_CASES: OpCase[] = [
  { name: 'add (broadcast)', inputs: [pm([2, 3, 4]), pm([3, 1])], fn: ([a, b]) => ops.add(a, b) },
  { name: 'sub (broadcast)', inputs: [pm([2, 3]), pm([2, 1])], fn: ([a, b]) => ops.sub(a, b) },
  { name: 'mul (broadcast)', inputs: [pm([3, 1, 5]), pm([4, 5])], fn: ([a, b]) => ops.mul(a, b) },
  { name: 'div (broadcast)', inputs: [pm([2, 3, 4]), pos([4])], fn: ([a, b]) => ops.div(a, b) },
  { name: 'neg', inputs: [pm([3, 5])], fn: ([a]) => ops.neg(a) },
  { name: 'addScalar', inputs: [pm([3, 5])], fn: ([a]) => ops.add(a, 1.5) },
  { name: 'mulScalar', inputs: [pm([3, 5])], fn: ([a]) => ops.mul(a, -2.5) },
  { name: 'rsubScalar', inputs: [pm([3, 5])], fn: ([a]) => ops.sub(2, a) },
  { name: 'rdivScalar', inputs: [pos([3, 5])], fn: ([a]) => ops.div(3, a) },
  { name: 'divScalar', inputs: [pos([3, 5])], fn: ([a]) => ops.div(a, 7) },
  { name: 'exp', inputs: [pm([3, 5])], fn: ([a]) => ops.exp(a) },
  { name: 'log', inputs: [pos([3, 5])], fn: ([a]) => ops.log(a) },
  { name: 'sqrt', inputs: [pos([3, 5])], fn: ([a]) => ops.sqrt(a) },
  { name: 'square', inputs: [pm([3, 5])], fn: ([a]) => ops.square(a) },
  { name: 'pow', inputs: [pos([3, 5])], fn: ([a]) => ops.pow(a, 2.5) },
  { name: 'relu', inputs: [pm([3, 5])], fn: ([a]) => ops.relu(a) },
  { name: 'leakyRelu', inputs: [pm([3, 5])], fn: ([a]) => ops.leakyRelu(a, 0.2) },
  { name: 'sigmoid', inputs: [pm([3, 5])], fn: ([a]) => ops.sigmoid(a) },
  { name: 'tanh', inputs: [pm([3, 5])], fn: ([a]) => ops.tanh(a) },
  { name: 'sum (axes, keepdims)', inputs: [pm([2, 3, 4])], fn: ([a]) => ops.sum(a, [0, 2], true) },
  { name: 'mean', inputs: [pm([2, 3, 4])], fn: ([a]) => ops.mean(a, 1) },
  { name: 'reshape', inputs: [pm([2, 3, 4])], fn: ([a]) => ops.reshape(a, [4, -1]) },
  { name: 'broadcastTo', inputs: [pm([3, 1])], fn: ([a]) => ops.broadcastTo(a, [2, 3, 4]) },
  { name: 'permute', inputs: [pm([2, 3, 4])], fn: ([a]) => ops.permute(a, [2, 0, 1]) },
  { name: 'transpose', inputs: [pm([3, 5])], fn: ([a]) => ops.transpose(a) },
  { name: 'concat (channels)', inputs: [pm([2, 2, 3, 3]), pm([2, 3, 3, 3])], fn: ([a, b]) => ops.concat([a, b], 1) },
  { name: 'slice', inputs: [pm([3, 4, 5])], fn: ([a]) => ops.slice(a, [1, 0, 2], [2, 3, 3]) },
  { name: 'pad', inputs: [pm([2, 3, 3])], fn: ([a]) => ops.pad(a, [3, 5, 4], [1, 2, 0]) },
  { name: 'matmul', inputs: [pm([3, 4]), pm([4, 5])], fn: ([a, b]) => ops.matmul(a, b) },
  { name: 'matmul (batched)', inputs: [pm([2, 3, 4]), pm([2, 4, 5])], fn: ([a, b]) => ops.matmul(a, b) },
  {
    name: 'conv2d (stride 2, same, bias)', inputs: [pm([2, 3, 7, 6]), pm([4, 3, 3, 3]), pm([4])],
    fn: ([x, w, b]) => ops.conv2d(x, w, { stride: 2, padding: 'same', bias: b }),
  },
  {
    name: 'conv2d (stride [1,2], pads [2,0,1,1])', inputs: [pm([1, 2, 6, 7]), pm([3, 2, 5, 3])],
    fn: ([x, w]) => ops.conv2d(x, w, { stride: [1, 2], padding: [2, 0, 1, 1] }),
  },
  {
    name: 'conv2dGradInput', inputs: [pm([2, 4, 4, 3]), pm([4, 3, 3, 3])],
    fn: ([dy, w]) => ops.conv2dGradInput(dy, w, [2, 3, 7, 6], { stride: 2, padding: 'same' }),
  },
  {
    name: 'conv2dGradWeight', inputs: [pm([2, 3, 7, 6]), pm([2, 4, 3, 2])],
    fn: ([x, dy]) => ops.conv2dGradWeight(x, dy, [3, 3], { stride: 2, padding: 'valid' }),
  },
  {
    name: 'convTranspose2d (stride 2, pad 1, outPad 1, bias)', inputs: [pm([2, 3, 4, 3]), pm([3, 2, 3, 3]), pm([2])],
    fn: ([x, w, b]) => ops.convTranspose2d(x, w, { stride: 2, padding: 1, outputPadding: 1, bias: b }),
  },
  { name: 'upsampleNearest2d', inputs: [pm([2, 2, 3, 4])], fn: ([x]) => ops.upsampleNearest2d(x, [2, 3]) },
  { name: 'upsampleNearest2dGrad', inputs: [pm([2, 2, 6, 6])], fn: ([x]) => ops.upsampleNearest2dGrad(x, 2) },
  {
    name: 'batchNorm2d (training)', inputs: [pm([3, 2, 3, 4]), pos([2]), pm([2])],
    fn: ([x, g, b]) => ops.batchNorm2d(x, g, b, null, null, { training: true }),
  },
  {
    name: 'batchNorm2d (eval)', inputs: [pm([3, 2, 3, 4]), pos([2]), pm([2]), pm([2]), pos([2])],
    fn: ([x, g, b, m, v]) => ops.batchNorm2d(x, g, b, m, v, { training: false }), check: [true, true, true, false, false],
  },
  { name: 'mseLoss', inputs: [pm([2, 3, 4]), pm([2, 3, 4])], fn: ([a, b]) => ops.mseLoss(a, b) },
];

/** Draws a case's inputs in float64 from a seeded generator. */
export function caseInputs(c: OpCase, rng: Rng): Tensor[] {
  return c.inputs.map((spec) => {
    const lo = spec.lo ?? -1, hi = spec.hi ?? 1;
    const n = spec.shape.reduce((p, d) => p * d, 1);
    const v = Array.from({ length: n }, () => {
      const x = rng.uniform(lo, hi);
      return spec.signed && rng.next() < 0.5 ? -x : x;
    });
    return fromArray(v, spec.shape, { dtype: 'float64' });
  });
}
