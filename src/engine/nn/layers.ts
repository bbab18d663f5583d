/**
 * Layers: Conv2d, ConvTranspose2d, BatchNorm2d, LeakyReLU, Sigmoid, Upsample.
 * Initialisation as PyTorch's defaults (from the project's seeded Rng):
 *   weights kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(fanIn), 1/sqrt(fanIn)); biases U(-1/sqrt(fanIn), 1/sqrt(fanIn));
 *   fanIn = inChannels*k*k for Conv2d, and weight.shape[1]*k*k = outChannels*k*k for ConvTranspose2d (PyTorch's rule);
 *   batch norm gamma 1, beta 0, running mean 0, running var 1.
 */
import type { Backend } from '../backend.js';
import type { DType } from '../dtype.js';
import { Rng, defaultRng } from '../random.js';
import { type Tensor, ones, uniform, zeros } from '../tensor.js';
import { batchNorm2d } from '../ops/batchnorm.js';
import { conv2d, convTranspose2d, type Padding } from '../ops/conv.js';
import { leakyRelu, sigmoid } from '../ops/elementwise.js';
import { upsampleNearest2d } from '../ops/upsample.js';
import { expectOptions } from '../ops/util.js';
import { Module } from './module.js';

export interface InitOptions {
  rng?: Rng;
  backend?: string | Backend;
  /** The parameters' dtype (default float32; float64 for gradient checks of whole layers, CPU only). */
  dtype?: DType;
}

export type Conv2dLayerOptions = { stride?: number; padding?: Padding; bias?: boolean } & InitOptions;
export type ConvTranspose2dLayerOptions = { stride?: number; padding?: number; outputPadding?: number; bias?: boolean } & InitOptions;
export interface BatchNorm2dLayerOptions { momentum?: number; eps?: number; backend?: string | Backend; dtype?: DType }
const INIT_OPTIONS: Record<keyof InitOptions, true> = { rng: true, backend: true, dtype: true };

export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernel: number,
    readonly opts: Conv2dLayerOptions = {}) {
    super();
    expectOptions('Conv2d', opts, { stride: true, padding: true, bias: true, ...INIT_OPTIONS });
    const rng = opts.rng ?? defaultRng();
    const bound = 1 / Math.sqrt(inChannels * kernel * kernel);
    this.weight = this.param('weight', uniform([outChannels, inChannels, kernel, kernel], -bound, bound, { rng, backend: opts.backend, dtype: opts.dtype }));
    this.bias = opts.bias === false ? null : this.param('bias', uniform([outChannels], -bound, bound, { rng, backend: opts.backend, dtype: opts.dtype }));
  }

  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, { stride: this.opts.stride ?? 1, padding: this.opts.padding ?? 'valid', bias: this.bias });
  }
}

export class ConvTranspose2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernel: number,
    readonly opts: ConvTranspose2dLayerOptions = {}) {
    super();
    expectOptions('ConvTranspose2d', opts, { stride: true, padding: true, outputPadding: true, bias: true, ...INIT_OPTIONS });
    const rng = opts.rng ?? defaultRng();
    const bound = 1 / Math.sqrt(outChannels * kernel * kernel);
    this.weight = this.param('weight', uniform([inChannels, outChannels, kernel, kernel], -bound, bound, { rng, backend: opts.backend, dtype: opts.dtype }));
    this.bias = opts.bias === false ? null : this.param('bias', uniform([outChannels], -bound, bound, { rng, backend: opts.backend, dtype: opts.dtype }));
  }

  forward(x: Tensor): Tensor {
    return convTranspose2d(x, this.weight, {
      stride: this.opts.stride ?? 1, padding: this.opts.padding ?? 0, outputPadding: this.opts.outputPadding ?? 0, bias: this.bias,
    });
  }
}

export class BatchNorm2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;

  constructor(readonly channels: number, readonly opts: BatchNorm2dLayerOptions = {}) {
    super();
    expectOptions('BatchNorm2d', opts, { momentum: true, eps: true, backend: true, dtype: true });
    const o = { backend: opts.backend, dtype: opts.dtype };
    this.weight = this.param('weight', ones([channels], o));
    this.bias = this.param('bias', zeros([channels], o));
    this.runningMean = this.buffer('running_mean', zeros([channels], o));
    this.runningVar = this.buffer('running_var', ones([channels], o));
  }

  forward(x: Tensor): Tensor {
    return batchNorm2d(x, this.weight, this.bias, this.runningMean, this.runningVar, {
      training: this.training, momentum: this.opts.momentum ?? 0.1, eps: this.opts.eps ?? 1e-5,
    });
  }
}

export class LeakyReLU extends Module {
  constructor(readonly slope = 0.01) {
    super();
  }

  forward(x: Tensor): Tensor {
    return leakyRelu(x, this.slope);
  }
}

export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return sigmoid(x);
  }
}

export class Upsample extends Module {
  constructor(readonly scale = 2) {
    super();
  }

  forward(x: Tensor): Tensor {
    return upsampleNearest2d(x, this.scale);
  }
}
