/**
 * Module: the base of layers and models. A module owns named parameters (trainable tensors),
 * named buffers (running statistics) and named child modules; names join with dots into
 * PyTorch-style state-dict keys ("encoder.1.bn.running_mean"). train()/eval() set the mode of the
 * whole tree (batch norm reads it).
 */
import { shapeStr } from '../dtype.js';
import type { Tensor } from '../tensor.js';

export abstract class Module {
  training = true;
  private readonly params = new Map<string, Tensor>();
  private readonly buffers = new Map<string, Tensor>();
  private readonly children = new Map<string, Module>();

  /** Registers a trainable parameter (kept out of scopes, requiresGrad on). */
  protected param(name: string, t: Tensor): Tensor {
    t.keep();
    t.requiresGrad = true;
    t.name = name;
    this.params.set(name, t);
    return t;
  }

  /** Registers a non-trainable state tensor (e.g. running mean). */
  protected buffer(name: string, t: Tensor): Tensor {
    t.keep();
    t.name = name;
    this.buffers.set(name, t);
    return t;
  }

  protected child<M extends Module>(name: string, m: M): M {
    this.children.set(name, m);
    return m;
  }

  /** [dotted name, parameter] for this module and every descendant, in registration order. */
  namedParameters(prefix = ''): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [...this.params].map(([n, t]) => [prefix + n, t]);
    for (const [n, m] of this.children) out.push(...m.namedParameters(`${prefix}${n}.`));
    return out;
  }

  namedBuffers(prefix = ''): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [...this.buffers].map(([n, t]) => [prefix + n, t]);
    for (const [n, m] of this.children) out.push(...m.namedBuffers(`${prefix}${n}.`));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Number of trainable scalars. */
  parameterCount(): number {
    return this.parameters().reduce((s, t) => s + t.size, 0);
  }

  train(on = true): this {
    this.training = on;
    for (const m of this.children.values()) m.train(on);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Parameters and buffers by dotted name (the tensors themselves, not copies). */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.namedParameters(), ...this.namedBuffers()]);
  }

  /** Copies values into this module's tensors; every key must exist with the same shape, and none may be missing. */
  async loadStateDict(values: Map<string, { shape: readonly number[]; data: ArrayLike<number> }>): Promise<void> {
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !values.has(k));
    const unexpected = [...values.keys()].filter((k) => !own.has(k));
    if (missing.length || unexpected.length) {
      throw new Error(`loadStateDict: ${missing.length ? `missing ${missing.join(', ')}` : ''}${missing.length && unexpected.length ? '; ' : ''}${unexpected.length ? `unexpected ${unexpected.join(', ')}` : ''}`);
    }
    for (const [k, t] of own) {
      const v = values.get(k)!;
      if (v.shape.length !== t.shape.length || v.shape.some((d, i) => d !== t.shape[i])) {
        throw new Error(`loadStateDict: '${k}' has shape ${shapeStr(v.shape)}, the module expects ${shapeStr(t.shape)}`);
      }
      t.backend.write(t.handle, v.data);
    }
  }

  /** Frees every parameter and buffer. */
  dispose(): void {
    for (const t of this.stateDict().values()) {
      t.grad?.dispose();
      t.dispose();
    }
  }
}
