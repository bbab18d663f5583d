/** skipgrad's engine: the public API. */
export type { Backend, Conv2dGeometry, Storage, ValueStats } from './backend.js';
export type { DType, FloatArray, Shape } from './dtype.js';
export { Rng, defaultRng, seed } from './random.js';
export { getBackend, setBackend, registerBackend } from './registry.js';
export { Tensor, full, zeros, ones, scalar, fromArray, uniform, normal, scope, memory } from './tensor.js';
export { backward, zeroGrad } from './autograd.js';
export { noGrad, isGradEnabled } from './mode.js';
export { runOp } from './dispatch.js';
export { startTrace, stopTrace, traced, Trace, type TraceEntry } from './audit/trace.js';
export { setNanGuard, withNanGuard, NonFiniteError } from './audit/guard.js';
export * from './ops/elementwise.js';
export * from './ops/reduce.js';
export * from './ops/shape.js';
export * from './ops/matmul.js';
export * from './ops/conv.js';
export * from './ops/upsample.js';
export * from './ops/batchnorm.js';
export * from './ops/loss.js';
