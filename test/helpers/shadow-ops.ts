/** Ops for the shadow audit's tests (test/shadow.test.ts, test/webgpu-training.test.ts). */
import * as sg from '../../src/engine/index.js';

/** -x, by a kernel that has no float64 version: the shadow's reference of it fails, the op itself does not. */
export function float32OnlyNeg(x: sg.Tensor): sg.Tensor {
  return sg.runOp({
    op: 'float32Only', inputs: [x], outputs: [x.shape], flops: 0,
    kernel: (be, [o], [xs]) => {
      if (o.dtype === 'float64') throw new Error('float32Only: no float64 kernel');
      be.unary('neg', xs, o, 0);
    },
  })[0];
}
