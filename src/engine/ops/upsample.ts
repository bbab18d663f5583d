/**
 * Nearest-neighbour upsampling by integer factors: x [N,C,H,W] -> [N,C,H*sh,W*sw], out[y,x] = in[floor(y/sh), floor(x/sw)].
 * backward: upsampleNearest2dGrad, which sums each sh x sw block of gy (its adjoint).
 */
import { runOp1 } from '../dispatch.js';
import { shapeStr } from '../dtype.js';
import type { Tensor } from '../tensor.js';
import { expectRank } from './util.js';

function scales(op: string, scale: number | readonly [number, number]): [number, number] {
  const s = typeof scale === 'number' ? [scale, scale] : scale;
  if (s.length !== 2 || s.some((v) => !Number.isInteger(v) || v < 1)) {
    throw new Error(`${op}: scale must be a positive integer or a pair of them, got ${JSON.stringify(scale)}`);
  }
  return [s[0], s[1]];
}

export function upsampleNearest2d(x: Tensor, scale: number | readonly [number, number] = 2): Tensor {
  expectRank('upsampleNearest2d', 'input', x, 4, '[batch, channels, height, width]');
  const [sh, sw] = scales('upsampleNearest2d', scale);
  const [n, c, h, w] = x.shape;
  return runOp1({
    op: 'upsampleNearest2d', inputs: [x], outputs: [[n, c, h * sh, w * sw]], flops: 0, attrs: { scale: [sh, sw] },
    readsInputs: false, // its backward needs only shapes
    kernel: (be, [o], [xs]) => be.upsampleNearest2d(xs, o, n, c, h, w, sh, sw),
    backward: (gy) => [upsampleNearest2dGrad(gy, [sh, sw])],
  });
}

/** The adjoint of upsampleNearest2d: dy [N,C,H*sh,W*sw] -> [N,C,H,W], summing each block. */
export function upsampleNearest2dGrad(dy: Tensor, scale: number | readonly [number, number] = 2): Tensor {
  expectRank('upsampleNearest2dGrad', 'dy', dy, 4, '[batch, channels, height, width]');
  const [sh, sw] = scales('upsampleNearest2dGrad', scale);
  const [n, c, H, W] = dy.shape;
  if (H % sh !== 0 || W % sw !== 0) throw new Error(`upsampleNearest2dGrad: dy ${shapeStr(dy.shape)} is not divisible by scale [${sh},${sw}]`);
  const h = H / sh, w = W / sw;
  return runOp1({
    op: 'upsampleNearest2dGrad', inputs: [dy], outputs: [[n, c, h, w]], flops: dy.size, attrs: { scale: [sh, sw] },
    readsInputs: false, // its backward needs only shapes
    kernel: (be, [o], [dys]) => be.upsampleNearest2dGrad(dys, o, n, c, h, w, sh, sw),
    backward: (gz) => [upsampleNearest2d(gz, [sh, sw])],
  });
}
