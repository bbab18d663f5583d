/**
 * batchNorm2d over NCHW, per channel, with kernels of its own for both directions (cpu/batchnorm.ts, shaders/).
 *   training: normalise with the batch's mean and (biased) variance; update the running stats in place
 *             (r = (1-momentum) r + momentum * stat, unbiased variance), as PyTorch does.
 *   eval:     normalise with the running stats.
 * backward: one batchNorm2dGrad kernel gives dx, dgamma and dbeta from the saved mean and 1/std.
 */
import type { BatchNorm2dParams } from '../backend.js';
import { runOp } from '../dispatch.js';
import { shapeStr } from '../dtype.js';
import type { Tensor } from '../tensor.js';
import { describeValue, expectOptions, expectRank, expectTensor } from './util.js';

export interface BatchNorm2dOptions {
  training: boolean;
  momentum?: number;
  eps?: number;
}

const BATCHNORM2D_OPTIONS: Record<keyof BatchNorm2dOptions, true> = { training: true, momentum: true, eps: true };

export function batchNorm2d(x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, opts: BatchNorm2dOptions): Tensor {
  const op = 'batchNorm2d';
  expectOptions(op, opts, BATCHNORM2D_OPTIONS);
  if (typeof opts?.training !== 'boolean') {
    throw new Error(`${op}: options must say training: true (batch statistics) or false (running statistics), got training ${describeValue(opts?.training)}`);
  }
  expectRank(op, 'input', x, 4, '[batch, channels, height, width]');
  const [n, c, h, w] = x.shape;
  const named: Array<[string, Tensor | null]> = [['gamma', gamma], ['beta', beta], ['runningMean', runningMean], ['runningVar', runningVar]];
  for (const [name, t] of named) {
    if (t !== null || name === 'gamma' || name === 'beta') expectTensor(op, name, t);
    if (t && (t.rank !== 1 || t.shape[0] !== c)) throw new Error(`${op}: ${name} has shape ${shapeStr(t.shape)}, expected [${c}] for input ${shapeStr(x.shape)}`);
  }
  if (!!runningMean !== !!runningVar) throw new Error(`${op}: give both runningMean and runningVar, or neither`);
  // The running statistics are written in place: one that shares its storage with another operand would be read
  // and written at once (WebGPU refuses such a binding; on the CPU the result would depend on the order of writes).
  const operands: Array<[string, Tensor | null]> = [['input', x], ...named];
  for (const [name, t] of named.slice(2)) {
    const other = t && operands.find(([n, u]) => n !== name && u?.handle === t.handle);
    if (other) throw new Error(`${op}: ${name} shares its storage with ${other[0]}; the running statistics need a storage of their own each (training updates them in place)`);
    // backward gives them no gradient. In training mode that is right (the output does not depend on them); in eval
    // mode it is not, so one that asks for a gradient is refused rather than silently given none.
    if (!opts.training && t?.requiresGrad) throw new Error(`${op}: ${name} requires gradients, which batchNorm2d in eval mode does not give (running statistics are buffers, as in PyTorch); make it without requiresGrad, or detach() it`);
  }
  if (!opts.training && !runningMean) throw new Error(`${op}: eval mode (training: false) needs runningMean and runningVar`);
  if (opts.training && n * h * w < 2) throw new Error(`${op}: training mode needs more than one value per channel, got input ${shapeStr(x.shape)}`);
  for (const [name, v, ok, want] of [['momentum', opts.momentum, (m: number) => m >= 0 && m <= 1, 'from 0 to 1'], ['eps', opts.eps, (e: number) => e > 0, '> 0']] as const) {
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || !ok(v))) throw new Error(`${op}: ${name} must be a number ${want}, got ${describeValue(v)}`);
  }
  const p: BatchNorm2dParams = {
    batch: n, channels: c, height: h, width: w, eps: opts.eps ?? 1e-5, momentum: opts.momentum ?? 0.1, training: opts.training,
  };
  const stats = runningMean && runningVar ? [runningMean, runningVar] : [];
  const [y, saveMean, saveInvStd] = runOp({
    op, inputs: [x, gamma, beta, ...stats], inputNames: ['input', 'gamma', 'beta', 'runningMean', 'runningVar'], outputs: [x.shape, [c], [c]], flops: 8 * x.size,
    attrs: { training: p.training, eps: p.eps, momentum: p.momentum },
    ...(stats.length > 0 ? { unread: [3, 4], ...(p.training ? { writes: [3, 4] } : {}) } : {}),
    kernel: (be, [ys, ms, is], [xs, gs, bs, rm, rv]) => be.batchNorm2d(xs, gs, bs, rm ?? null, rv ?? null, ys, ms, is, p),
    backward: (gy, [, mean, invStd]) => {
      const [dx, dgamma, dbeta] = runOp({
        op: 'batchNorm2dGrad', inputs: [gy, x, gamma, mean, invStd], outputs: [x.shape, [c], [c]], flops: 8 * x.size,
        attrs: { training: p.training },
        kernel: (be, [dxs, dgs, dbs], [gys, xs, gs, ms, is]) => be.batchNorm2dGrad(gys, xs, gs, ms, is, dxs, dgs, dbs, p),
      });
      return [dx, dgamma, dbeta, ...stats.map(() => null)];
    },
  });
  if (!y.node) {
    saveMean.dispose();
    saveInvStd.dispose();
  }
  return y;
}

