/**
 * Adam and AdamW. One fused kernel per parameter per step (backend.adam: parameter, first and second
 * moments updated in place in one pass), dispatched as the op 'adam' so the trace shows optimizer work too.
 *
 *   Adam  (decoupled = false): g' = g + weightDecay * p                       (L2 penalty in the gradient)
 *   AdamW (decoupled = true):  g' = g, and p *= 1 - lr * weightDecay first    (Loshchilov & Hutter; PyTorch's AdamW)
 *   m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2
 *   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 */
import type { AdamStep } from '../backend.js';
import { runOp } from '../dispatch.js';
import { shapeStr } from '../dtype.js';
import { noGrad, withPhase } from '../mode.js';
import { type Tensor, zeros } from '../tensor.js';
import { describeValue, expectOptions, expectTensor } from '../ops/util.js';

export interface AdamOptions {
  lr?: number;
  betas?: readonly [number, number];
  eps?: number;
  weightDecay?: number;
  /** AdamW's decoupled weight decay (default false: Adam with an L2 term). */
  decoupled?: boolean;
}

const ADAM_OPTIONS: Record<keyof AdamOptions, true> = { lr: true, betas: true, eps: true, weightDecay: true, decoupled: true };

export class Adam {
  private learningRate = 0;
  private firstBeta = 0.9;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly decoupled: boolean;
  /** Calls of step() so far. */
  stepCount = 0;
  /**
   * Updates each parameter has had (t in its bias corrections), as PyTorch keeps state['step'] per parameter: a
   * parameter without a gradient in a step is not updated and does not count it, so one that first gets a
   * gradient late starts with t = 1, not with the optimizer's count.
   */
  readonly paramSteps: number[];
  private readonly m: Tensor[];
  private readonly v: Tensor[];

  constructor(readonly params: readonly Tensor[], opts: AdamOptions = {}) {
    expectOptions('Adam', opts, ADAM_OPTIONS);
    if (!Array.isArray(params as unknown)) throw new Error(`Adam: params must be an array of tensors (e.g. model.parameters()), got ${describeValue(params)}`);
    params.forEach((p, i) => {
      expectTensor('Adam', `params[${i}]`, p);
      if (!p.requiresGrad) throw new Error(`Adam: params[${i}] (tensor #${p.id}${p.name ? ` '${p.name}'` : ''}) does not require grad, so it would never be updated; make it with requiresGrad: true or leave it out`);
      if (p.node || p.releasedOp !== null) throw new Error(`Adam: params[${i}] (tensor #${p.id}${p.name ? ` '${p.name}'` : ''}) is the output of an op ('${p.node?.op ?? p.releasedOp}'), not a leaf: it never receives a .grad, so it would never be updated; optimize the leaves it was computed from`);
    });
    this.lr = opts.lr ?? 1e-3;
    const [beta1, beta2] = opts.betas ?? [0.9, 0.999];
    this.beta2 = beta2;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    this.decoupled = opts.decoupled ?? false;
    for (const [name, v] of [['lr', this.lr], ['beta1', beta1], ['beta2', this.beta2], ['eps', this.eps], ['weightDecay', this.weightDecay]] as const) {
      if (!Number.isFinite(v) || v < 0) throw new Error(`Adam: ${name} must be a finite number >= 0, got ${v}`);
    }
    if (beta1 >= 1 || this.beta2 >= 1) throw new Error(`Adam: betas must be < 1, got [${beta1}, ${this.beta2}]`);
    this.beta1 = beta1;
    this.paramSteps = params.map(() => 0);
    this.m = params.map((p) => zeros(p.shape, { dtype: p.dtype, backend: p.backend }).keep());
    this.v = params.map((p) => zeros(p.shape, { dtype: p.dtype, backend: p.backend }).keep());
  }

  /** The learning rate of the next step (schedules set it each epoch); a finite number >= 0. */
  get lr(): number {
    return this.learningRate;
  }

  set lr(v: number) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`Adam: lr must be a finite number >= 0, got ${typeof v === 'number' ? v : describeValue(v)}`);
    this.learningRate = v;
  }

  /**
   * beta1 of the next step: one-cycle schedules cycle it each epoch, as PyTorch's OneCycleLR does. Each step uses the
   * current value, in the moment and in its bias correction 1 - beta1^t (as PyTorch's Adam does). In [0, 1).
   */
  get beta1(): number {
    return this.firstBeta;
  }

  set beta1(v: number) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v >= 1) throw new Error(`Adam: beta1 must be a number in [0, 1), got ${typeof v === 'number' ? v : describeValue(v)}`);
    this.firstBeta = v;
  }

  /** Updates every parameter that has a gradient, in place. */
  step(): void {
    this.stepCount++;
    withPhase('update', () => noGrad(() => {
      this.params.forEach((p, i) => {
        const g = p.grad;
        if (!g) return;
        if (g.shape.length !== p.shape.length || g.shape.some((d, k) => d !== p.shape[k])) {
          throw new Error(`adam: gradient ${shapeStr(g.shape)} does not match parameter ${shapeStr(p.shape)}${p.name ? ` '${p.name}'` : ''}`);
        }
        const o: AdamStep = {
          lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay, decoupled: this.decoupled, step: this.paramSteps[i] + 1,
        };
        runOp({
          op: 'adam', inputs: [p, g, this.m[i], this.v[i]], inputNames: [`parameter${p.name ? ` '${p.name}'` : ''}`, 'gradient', 'first moment', 'second moment'], outputs: [], flops: 12 * p.size,
          attrs: { lr: o.lr, beta1: o.beta1, step: o.step, weightDecay: o.weightDecay, decoupled: o.decoupled },
          writes: [0, 2, 3],
          kernel: (be, _outs, [ps, gs, ms, vs]) => {
            if (!be.adam) throw new Error(`adam: backend '${be.name}' has no fused Adam kernel`);
            be.adam(ps, gs, ms, vs, o);
          },
        });
        this.paramSteps[i] = o.step; // counted once the update ran (a refused one changes nothing)
      });
    }));
  }

  /** The moment tensors and the step counts (for checkpoints). */
  state(): { m: readonly Tensor[]; v: readonly Tensor[]; step: number; paramSteps: readonly number[] } {
    return { m: this.m, v: this.v, step: this.stepCount, paramSteps: this.paramSteps };
  }

  /** Restores the step counts of a checkpoint: the optimizer's, and each parameter's (default: all that count). */
  loadSteps(step: number, paramSteps: readonly number[] = this.params.map(() => step)): void {
    const whole = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v >= 0;
    if (!whole(step)) throw new Error(`Adam: the step count must be a whole number >= 0, got ${describeValue(step)}`);
    if (!Array.isArray(paramSteps) || paramSteps.length !== this.params.length || !paramSteps.every(whole)) {
      throw new Error(`Adam: paramSteps must list a whole number >= 0 for each of the ${this.params.length} parameters, got ${describeValue(paramSteps)}`);
    }
    this.stepCount = step;
    paramSteps.forEach((t, i) => { this.paramSteps[i] = t; });
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v]) t.dispose();
  }
}
