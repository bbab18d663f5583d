/**
 * WebGPU kernels for nearest-neighbour upsampling and BatchNorm2d (NCHW, f32), with the semantics of
 * src/engine/cpu/upsample.ts and src/engine/cpu/batchnorm.ts (see the Backend interface).
 *
 * upsampleNearest2d / upsampleNearest2dGrad: one elementwise dispatch each (shaders/upsample_nearest*.wgsl).
 *
 * batchNorm2d, training (3 dispatches):
 *   batchnorm_stats        per (channel, chunk of `reduceChunk` values): Welford (count, mean, m2) per thread,
 *                          Chan-merged in a tree in workgroup memory -> partial [C*S] vec4
 *   batchnorm_stats_merge  one workgroup per channel merges the S partials -> saveMean, saveInvStd,
 *                          and updates the running statistics in place (momentum, unbiased variance)
 *   batchnorm_forward      y = (x - mean) * gamma * invStd + beta, one thread per element
 * eval: batchnorm_stats_merge (saveMean = runningMean, saveInvStd = 1/sqrt(runningVar + eps)), batchnorm_forward.
 *
 * batchNorm2dGrad (3 dispatches):
 *   batchnorm_grad_sums    per (channel, chunk): (sum dy, sum dy*(x - mean)) -> partial [C*S] vec2
 *   batchnorm_grad_merge   one workgroup per channel: dbeta, dgamma, and dx coefficients coef [C] vec4
 *   batchnorm_backward     dx from coef, one thread per element
 *
 * The two-level reductions keep a channel's N*H*W values (e.g. 8*256*256 = 524288) spread over
 * ceil(N*H*W / reduceChunk) workgroups of 256 threads, so few channels still fill the GPU.
 */
import type { BatchNorm2dParams } from '../../backend.js';
import { grid1d, type GpuRuntime } from '../runtime.js';

/** Threads per workgroup of every kernel here (a power of two: the reductions are binary trees). */
const WG = 256;

/** Tuning of the per-channel reductions. reduceChunk: values of one channel per first-level workgroup
 *  (16 per thread by default); any positive integer works (tests lower it to exercise many chunks). */
export const normTuning = { reduceChunk: WG * 16 };

const F32 = 4;

export function upsampleNearest2d(rt: GpuRuntime, x: GPUBuffer, out: GPUBuffer, n: number, c: number, h: number, w: number,
  scaleH: number, scaleW: number): void {
  const total = n * c * h * scaleH * w * scaleW;
  if (total === 0) return;
  rt.dispatch({
    shader: 'upsample_nearest', constants: { WG },
    params: [['u32', total], ['u32', h], ['u32', w], ['u32', scaleH], ['u32', scaleW]],
    buffers: [x, out], workgroups: grid1d(total, WG),
  });
}

export function upsampleNearest2dGrad(rt: GpuRuntime, dy: GPUBuffer, dx: GPUBuffer, n: number, c: number, h: number, w: number,
  scaleH: number, scaleW: number): void {
  const total = n * c * h * w;
  if (total === 0) return;
  rt.dispatch({
    shader: 'upsample_nearest_grad', constants: { WG },
    params: [['u32', total], ['u32', h], ['u32', w], ['u32', scaleH], ['u32', scaleW]],
    buffers: [dy, dx], workgroups: grid1d(total, WG),
  });
}

/** Chunks per channel for the first-level reductions over m values. */
function chunking(m: number): { chunks: number; chunkLen: number } {
  const chunkLen = Math.max(1, Math.floor(normTuning.reduceChunk));
  return { chunks: Math.max(1, Math.ceil(m / chunkLen)), chunkLen };
}

export function batchNorm2d(rt: GpuRuntime, x: GPUBuffer, gamma: GPUBuffer, beta: GPUBuffer, runningMean: GPUBuffer | null,
  runningVar: GPUBuffer | null, y: GPUBuffer, saveMean: GPUBuffer, saveInvStd: GPUBuffer, p: BatchNorm2dParams): void {
  const { batch, channels, height, width, eps, momentum, training } = p;
  if (!training && (!runningMean || !runningVar)) throw new Error('batchNorm2d: eval mode needs running mean and variance');
  if (channels === 0) return;
  const hw = height * width;
  const m = batch * hw;
  const hasRunning = runningMean !== null && runningVar !== null;

  let partial: GPUBuffer | null = null;
  let chunks = 1;
  if (training) {
    const ch = chunking(m);
    chunks = ch.chunks;
    partial = rt.acquire(channels * chunks * 4 * F32);
    rt.dispatch({
      shader: 'batchnorm_stats', constants: { WG },
      params: [['u32', channels], ['u32', hw], ['u32', m], ['u32', chunks], ['u32', ch.chunkLen]],
      buffers: [x, partial], workgroups: grid1d(channels * chunks * WG, WG),
    });
  }

  // Absent running statistics: two distinct placeholder buffers (two read_write bindings may not alias).
  let spare: GPUBuffer | null = null;
  let rm: GPUBuffer;
  let rv: GPUBuffer;
  if (hasRunning) {
    rm = runningMean;
    rv = runningVar;
  } else {
    rm = rt.dummy();
    spare = rt.acquire(16);
    rv = spare;
  }
  rt.dispatch({
    shader: 'batchnorm_stats_merge', constants: { WG },
    params: [['u32', channels], ['u32', chunks], ['u32', m], ['u32', training ? 1 : 0], ['u32', hasRunning ? 1 : 0],
      ['f32', eps], ['f32', momentum]],
    buffers: [partial ?? rt.dummy(), rm, rv, saveMean, saveInvStd], workgroups: grid1d(channels * WG, WG),
  });

  const total = channels * m;
  if (total > 0) {
    rt.dispatch({
      shader: 'batchnorm_forward', constants: { WG },
      params: [['u32', total], ['u32', channels], ['u32', hw]],
      buffers: [x, gamma, beta, saveMean, saveInvStd, y], workgroups: grid1d(total, WG),
    });
  }
  if (partial) rt.release(partial);
  if (spare) rt.release(spare);
}

export function batchNorm2dGrad(rt: GpuRuntime, dy: GPUBuffer, x: GPUBuffer, gamma: GPUBuffer, saveMean: GPUBuffer, saveInvStd: GPUBuffer,
  dx: GPUBuffer, dgamma: GPUBuffer, dbeta: GPUBuffer, p: BatchNorm2dParams): void {
  const { batch, channels, height, width, training } = p;
  if (channels === 0) return;
  const hw = height * width;
  const m = batch * hw;
  const { chunks, chunkLen } = chunking(m);
  const partial = rt.acquire(channels * chunks * 2 * F32);
  const coef = rt.acquire(channels * 4 * F32);
  rt.dispatch({
    shader: 'batchnorm_grad_sums', constants: { WG },
    params: [['u32', channels], ['u32', hw], ['u32', m], ['u32', chunks], ['u32', chunkLen]],
    buffers: [dy, x, saveMean, partial], workgroups: grid1d(channels * chunks * WG, WG),
  });
  rt.dispatch({
    shader: 'batchnorm_grad_merge', constants: { WG },
    params: [['u32', channels], ['u32', chunks], ['u32', m], ['u32', training ? 1 : 0]],
    buffers: [partial, gamma, saveMean, saveInvStd, dgamma, dbeta, coef], workgroups: grid1d(channels * WG, WG),
  });
  const total = channels * m;
  if (total > 0) {
    rt.dispatch({
      shader: 'batchnorm_backward', constants: { WG },
      params: [['u32', total], ['u32', channels], ['u32', hw], ['u32', training ? 1 : 0]],
      buffers: [dy, x, coef, dx], workgroups: grid1d(total, WG),
    });
  }
  rt.release(partial);
  rt.release(coef);
}
