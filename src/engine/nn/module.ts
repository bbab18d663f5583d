/**
 * Module: the base of layers and models. A module owns named parameters (trainable tensors),
 * named buffers (running statistics) and named child modules; names join with dots into
 * PyTorch-style state-dict keys ("encoder.1.bn.running_mean"). train()/eval() set the mode of the
 * whole tree (batch norm reads it).
 */
import { shapeStr } from '../dtype.js';
import type { Tensor } from '../tensor.js';

/** Values of a module's parameters and buffers by dotted name: what stateValues() gives and loadStateDict() takes. */
export type StateValues = Map<string, { shape: readonly number[]; data: ArrayLike<number> }>;

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

  /** Registers a child module; its tensors' names (for traces and errors) become dotted paths ("encoder.1.bn.weight"). */
  protected child<M extends Module>(name: string, m: M): M {
    this.children.set(name, m);
    for (const [, t] of [...m.namedParameters(), ...m.namedBuffers()]) t.name = `${name}.${t.name}`;
    return m;
  }

  /** [dotted name, parameter] for this module and every descendant, in registration order. */
  namedParameters(prefix = ''): Array<[string, Tensor]> {
    this.checkRegistered();
    const out: Array<[string, Tensor]> = [...this.params].map(([n, t]) => [prefix + n, t]);
    for (const [n, m] of this.children) out.push(...m.namedParameters(`${prefix}${n}.`));
    return out;
  }

  namedBuffers(prefix = ''): Array<[string, Tensor]> {
    this.checkRegistered();
    const out: Array<[string, Tensor]> = [...this.buffers].map(([n, t]) => [prefix + n, t]);
    for (const [n, m] of this.children) out.push(...m.namedBuffers(`${prefix}${n}.`));
    return out;
  }

  /**
   * Throws if a field holds a module (or an array of modules) that was never registered with child(): its
   * parameters would silently be missing from parameters(), the optimizer and stateDict().
   */
  private checkRegistered(): void {
    const registered = new Set<Module>(this.children.values());
    for (const [field, v] of Object.entries(this)) {
      const held: unknown[] = Array.isArray(v) ? v : [v];
      for (const m of held) {
        if (m instanceof Module && !registered.has(m)) {
          throw new Error(`${this.constructor.name}: field '${field}' holds a ${m.constructor.name} that was not registered with this.child(name, module), so its parameters would be missing from parameters() and stateDict()`);
        }
      }
    }
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

  /** Copies of the parameters' and buffers' values by dotted name, as loadStateDict takes them (to restore later). */
  async stateValues(): Promise<StateValues> {
    return new Map(await Promise.all([...this.stateDict()].map(async ([k, t]) => [k, { shape: t.shape, data: await t.data() }] as const)));
  }

  /**
   * Copies values into this module's tensors (in place: a graph that read them can no longer be backpropagated);
   * every key must exist with the same shape, and none may be missing. Nothing is written unless all of them fit.
   */
  async loadStateDict(values: StateValues): Promise<void> {
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !values.has(k));
    const unexpected = [...values.keys()].filter((k) => !own.has(k));
    if (missing.length || unexpected.length) {
      throw new Error(`loadStateDict: ${missing.length ? `missing ${missing.join(', ')}` : ''}${missing.length && unexpected.length ? '; ' : ''}${unexpected.length ? `unexpected ${unexpected.join(', ')}` : ''}`);
    }
    // Every entry is checked before the first is written, so a bad one leaves the module as it was.
    for (const [k, t] of own) {
      const v = values.get(k)!;
      if (v.shape.length !== t.shape.length || v.shape.some((d, i) => d !== t.shape[i])) {
        throw new Error(`loadStateDict: '${k}' has shape ${shapeStr(v.shape)}, the module expects ${shapeStr(t.shape)}`);
      }
      if (v.data.length !== t.size) {
        throw new Error(`loadStateDict: '${k}' has ${v.data.length} values, its shape ${shapeStr(t.shape)} needs ${t.size}`);
      }
      if (!ArrayBuffer.isView(v.data)) {
        const bad = Array.prototype.findIndex.call(v.data, (x: unknown) => typeof x !== 'number');
        if (bad >= 0) throw new Error(`loadStateDict: '${k}' value ${bad} is ${typeof (v.data as ArrayLike<unknown>)[bad]}, expected a number`);
      }
    }
    for (const [k, t] of own) {
      t.backend.write(t.handle, values.get(k)!.data);
      t.handle.version++;
    }
  }

  /** Frees every parameter and buffer (and so their .grad). */
  dispose(): void {
    for (const t of this.stateDict().values()) t.dispose();
  }
}
