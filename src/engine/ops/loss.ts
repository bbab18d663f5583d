/**
 * mseLoss(pred, target) = mean((pred - target)^2), a scalar, computed by one kernel.
 * backward: d pred = 2 (pred - target) / n * gy, d target = -(that).
 */
import { runOp1 } from '../dispatch.js';
import { shapeStr } from '../dtype.js';
import type { Tensor } from '../tensor.js';
import { mul, mulScalar, neg, sub } from './elementwise.js';
import { expectTensor, sameShape } from './util.js';

export function mseLoss(pred: Tensor, target: Tensor): Tensor {
  expectTensor('mseLoss', 'prediction', pred);
  expectTensor('mseLoss', 'target', target);
  if (!sameShape(pred.shape, target.shape)) {
    throw new Error(`mseLoss: prediction ${shapeStr(pred.shape)} and target ${shapeStr(target.shape)} must have the same shape`);
  }
  if (pred.size === 0) throw new Error('mseLoss: inputs are empty');
  return runOp1({
    op: 'mseLoss', inputs: [pred, target], inputNames: ['prediction', 'target'], outputs: [[]], flops: 3 * pred.size,
    kernel: (be, [o], [ps, ts]) => be.mseLoss(ps, ts, o, pred.size),
    backward: (gy) => {
      const d = sub(pred, target);
      const s = mul(d, gy);
      d.dispose();
      const gp = mulScalar(s, 2 / pred.size);
      s.dispose();
      return [gp, target.requiresGrad ? neg(gp) : null];
    },
  });
}
