/**
 * Tensor: a shape, a dtype, a storage on one backend, and (for autograd) the gradient and the
 * node of the op that made it. Ops make new tensors; the only writes into an existing storage are Adam's step,
 * batch norm's running statistics, Module.loadStateDict and the checkpoint loader (Adam's moments), and each
 * raises the storage's version, which backward() checks (an op's inputs must not change between its forward and
 * its backward).
 *
 * Memory: storages are freed by `dispose()` (reference-counted, since reshape shares storage).
 * `scope(fn)` disposes every tensor created inside fn except what fn returns and what was kept,
 * so a training loop inside a scope leaks nothing. `memory()` reports live tensors and bytes.
 */
import type { Backend, Storage } from './backend.js';
import { type DType, type Shape, shapeStr, sizeOf } from './dtype.js';
import { refusePromise } from './mode.js';
import { defaultRng, type Rng } from './random.js';
import { getBackend } from './registry.js';
import { describeValue, expectIndexList, expectOptions } from './ops/util.js';

/** The autograd record an op leaves on its output: its inputs and how to map an output gradient to input gradients. */
export interface Node {
  op: string;
  inputs: Tensor[];
  /** The version of each input's storage when the op ran (backward refuses inputs overwritten in place since; -1: not checked, backward never reads it). */
  versions: number[];
  /** The version of outputs[0]'s storage when the op ran, where its backward reads it (exp, sigmoid...); else -1. */
  outputVersion: number;
  /** All outputs of the op (outputs[0] is the differentiable one). */
  outputs: Tensor[];
  /** Gradients for each input from the gradient of outputs[0] (null where an input gets none). */
  backward: (gy: Tensor) => Array<Tensor | null>;
}

let nextId = 1;
/** Live (not disposed) tensors per backend. */
const liveTensors = new Map<Backend, number>();
const scopes: Set<Tensor>[] = [];

export class Tensor {
  readonly id = nextId++;
  readonly shape: Shape;
  readonly size: number;
  requiresGrad = false;
  grad: Tensor | null = null;
  node: Node | null = null;
  /**
   * The op that made this tensor, once backward() has released the graph behind it: the tensor is no longer
   * connected to its inputs, so a second backward() through it is refused instead of treating it as a leaf.
   */
  releasedOp: string | null = null;
  /** A name for traces and errors (parameters get theirs from the module). */
  name = '';
  private storage: Storage | null;
  private keptFromScope = false;

  constructor(storage: Storage, shape: Shape) {
    this.shape = Object.freeze(shape.slice());
    this.size = sizeOf(shape);
    if (storage.size !== this.size) throw new Error(`Tensor: storage of ${storage.size} elements cannot hold shape ${shapeStr(shape)}`);
    this.storage = storage;
    liveTensors.set(storage.backend, (liveTensors.get(storage.backend) ?? 0) + 1);
    scopes[scopes.length - 1]?.add(this);
  }

  get dtype(): DType {
    return this.handle.dtype;
  }

  get backend(): Backend {
    return this.handle.backend;
  }

  get rank(): number {
    return this.shape.length;
  }

  get disposed(): boolean {
    return this.storage === null;
  }

  /** The storage; throws if the tensor was disposed. */
  get handle(): Storage {
    if (this.storage === null) throw new Error(`tensor #${this.id} ${shapeStr(this.shape)}${this.name ? ` '${this.name}'` : ''} was used after dispose()`);
    return this.storage;
  }

  /** A new tensor of another shape sharing this one's storage (no copy). */
  viewAs(shape: Shape): Tensor {
    const s = this.handle;
    s.refs++;
    return new Tensor(s, shape);
  }

  /** The same values (sharing this tensor's storage, no copy) as a constant: no gradient flows through it. */
  detach(): Tensor {
    return this.viewAs(this.shape);
  }

  /** Copies the values out (async so GPU backends can read back). */
  async data(): Promise<Float32Array | Float64Array> {
    const values = await this.backend.read(this.handle);
    await settleAuditsImpl();
    return values;
  }

  /** Synchronous readback; CPU backend only. */
  dataSync(): Float32Array | Float64Array {
    return this.backend.readSync(this.handle);
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item: tensor has shape ${shapeStr(this.shape)}, expected one element`);
    return (await this.data())[0];
  }

  /** Frees the storage (once the last view of it is disposed), and the .grad this tensor holds. Idempotent. */
  dispose(): void {
    const s = this.storage;
    if (s === null) return;
    this.storage = null;
    // Its .grad is its own (backward keeps it out of scopes): nothing else would ever free it.
    this.grad?.dispose();
    this.grad = null;
    liveTensors.set(s.backend, (liveTensors.get(s.backend) ?? 1) - 1);
    if (--s.refs === 0) s.backend.free(s);
    for (const scope of scopes) scope.delete(this);
  }

  /** Exempt this tensor from disposal by the enclosing scopes (parameters, optimizer state, kept results). */
  keep(): this {
    this.keptFromScope = true;
    for (const scope of scopes) scope.delete(this);
    return this;
  }

  get kept(): boolean {
    return this.keptFromScope;
  }

  /**
   * Computes gradients of this tensor with respect to every leaf that requires them, summed into their .grad (see
   * autograd.ts); with `options.inputs`, only into those leaves' .grad, every other leaf's .grad left as it was.
   */
  backward(gradient?: Tensor, options?: BackwardOptions): void {
    backwardImpl(this, gradient, options);
  }

  toString(): string {
    return `Tensor#${this.id}(${shapeStr(this.shape)}, ${this.storage ? this.dtype : 'disposed'}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

// dispatch.ts installs its deferred-audit check here (it imports this module).
let settleAuditsImpl: () => Promise<void> = () => Promise.resolve();
export function installSettleAudits(fn: () => Promise<void>): void {
  settleAuditsImpl = fn;
}

export interface BackwardOptions {
  /** The leaves whose .grad receives this pass's gradients (default: every leaf that requires gradients). */
  inputs?: Tensor[];
}

// autograd.ts installs the backward pass here (it imports this module, so this avoids an import cycle).
type BackwardImpl = (t: Tensor, gradient?: Tensor, options?: BackwardOptions) => void;
let backwardImpl: BackwardImpl = () => {
  throw new Error('autograd not loaded');
};
export function installBackward(fn: BackwardImpl): void {
  backwardImpl = fn;
}

export interface CreateOptions {
  dtype?: DType;
  backend?: string | Backend;
  requiresGrad?: boolean;
}

function resolveBackend(b: string | Backend | undefined): Backend {
  return typeof b === 'object' ? b : getBackend(b);
}

/** Throws unless data is an array or typed array of numbers (a string such as '1' would otherwise become 1, and 'x' NaN). */
function checkValues(op: string, data: ArrayLike<number>): void {
  if (ArrayBuffer.isView(data)) return;
  if (!Array.isArray(data)) throw new Error(`${op}: values must be an array or a typed array of numbers, got ${describeValue(data)}`);
  for (let i = 0; i < data.length; i++) {
    if (typeof data[i] !== 'number') throw new Error(`${op}: value ${i} is ${describeValue(data[i])}, expected a number`);
  }
}

const CREATE_OPTIONS: Record<keyof CreateOptions, true> = { dtype: true, backend: true, requiresGrad: true };
const RANDOM_OPTIONS: Record<keyof RandomOptions, true> = { ...CREATE_OPTIONS, rng: true };

function create(op: string, shape: Shape, opts: CreateOptions, init: (s: Storage, b: Backend) => void): Tensor {
  expectIndexList(op, 'shape', shape);
  const backend = resolveBackend(opts.backend);
  const dtype = opts.dtype ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'float64') throw new Error(`${op}: dtype '${dtype as string}' is not supported (expected float32 or float64)`);
  let s: Storage;
  try {
    s = backend.alloc(dtype, sizeOf(shape), op);
  } catch (e) {
    throw new Error(`${op}: shape ${shapeStr(shape)}: ${(e as Error).message}`, { cause: e });
  }
  init(s, backend);
  const t = new Tensor(s, shape);
  t.requiresGrad = opts.requiresGrad ?? false;
  return t;
}

export function full(shape: Shape, value: number, opts: CreateOptions = {}): Tensor {
  expectOptions('full', opts, CREATE_OPTIONS);
  if (typeof value !== 'number') throw new Error(`full: the value must be a number, got ${describeValue(value)}`);
  return create('full', shape, opts, (s, b) => b.fill(s, value));
}

export function zeros(shape: Shape, opts: CreateOptions = {}): Tensor {
  return full(shape, 0, opts);
}

export function ones(shape: Shape, opts: CreateOptions = {}): Tensor {
  return full(shape, 1, opts);
}

export function scalar(value: number, opts: CreateOptions = {}): Tensor {
  return full([], value, opts);
}

export function fromArray(data: ArrayLike<number>, shape: Shape, opts: CreateOptions = {}): Tensor {
  expectOptions('fromArray', opts, CREATE_OPTIONS);
  expectIndexList('fromArray', 'shape', shape);
  checkValues('fromArray', data);
  if (data.length !== sizeOf(shape)) {
    throw new Error(`fromArray: ${data.length} values do not fill shape ${shapeStr(shape)} (expected ${sizeOf(shape)})`);
  }
  return create('fromArray', shape, opts, (s, b) => b.write(s, data));
}

export interface RandomOptions extends CreateOptions {
  rng?: Rng;
}

/** A tensor of values drawn one by one from the given (or the project's) seeded generator. */
function random(op: string, shape: Shape, opts: RandomOptions, draw: (rng: Rng) => number): Tensor {
  expectOptions(op, opts, RANDOM_OPTIONS);
  const { rng = defaultRng(), ...create } = opts;
  expectIndexList(op, 'shape', shape);
  const values = new Float64Array(sizeOf(shape));
  for (let i = 0; i < values.length; i++) values[i] = draw(rng);
  return fromArray(values, shape, create);
}

/** Throws unless v is a finite number (options passed where a bound goes would otherwise give NaN values). */
function checkRange(op: string, name: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new Error(`${op}: ${name} must be a finite number, got ${describeValue(v)}${typeof v === 'object' && v !== null ? ' (options go last)' : ''}`);
  }
}

/** Uniform in [lo, hi) from the given (or the project's) seeded generator. */
export function uniform(shape: Shape, lo = 0, hi = 1, opts: RandomOptions = {}): Tensor {
  checkRange('uniform', 'lo', lo);
  checkRange('uniform', 'hi', hi);
  if (hi < lo) throw new Error(`uniform: hi (${hi}) is below lo (${lo})`);
  // A float64 draw can round out of [lo, hi) when stored as float32 (up to hi, or below a lo float32 cannot hold):
  // float32 draws are kept within the float32 values of [lo, hi).
  if ((opts.dtype ?? 'float32') !== 'float32' || lo === hi) return random('uniform', shape, opts, (rng) => rng.uniform(lo, hi));
  const first = float32Step(lo, 1), last = float32Step(hi, -1);
  if (first > last) throw new Error(`uniform: no float32 value lies in [${lo}, ${hi})`);
  return random('uniform', shape, opts, (rng) => Math.min(last, Math.max(first, rng.uniform(lo, hi))));
}

/** The float32 nearest x on the given side: the smallest float32 >= x (up = 1), or the largest < x (up = -1). */
function float32Step(x: number, up: 1 | -1): number {
  const f = new Float32Array([x]);
  if (up === 1 ? f[0] >= x : f[0] < x) return f[0];
  const bits = new Uint32Array(f.buffer);
  if (f[0] === 0) bits[0] = up === 1 ? 1 : 0x80000001; // the subnormal nearest 0 on that side
  else if ((f[0] > 0) === (up === 1)) bits[0]++; // away from 0
  else bits[0]--; // towards 0
  return f[0];
}

/** Normal(mean, sd) from the given (or the project's) seeded generator. */
export function normal(shape: Shape, mean = 0, sd = 1, opts: RandomOptions = {}): Tensor {
  checkRange('normal', 'mean', mean);
  checkRange('normal', 'sd', sd);
  if (sd < 0) throw new Error(`normal: sd must be >= 0, got ${sd}`);
  return random('normal', shape, opts, (rng) => rng.normal(mean, sd));
}

/**
 * Runs fn and disposes every tensor created during it, except the tensors it returns
 * (a tensor, an array or a plain object of them) and tensors marked with keep().
 * Returned tensors belong to the enclosing scope, if any.
 */
export function scope<T>(fn: () => T): T {
  const created = new Set<Tensor>();
  scopes.push(created);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of created) t.dispose();
    throw e;
  }
  scopes.pop();
  refusePromise('scope', result);
  const returned = new Set<Tensor>();
  collectTensors(result, returned);
  for (const t of created) {
    if (returned.has(t)) scopes[scopes.length - 1]?.add(t);
    else t.dispose();
  }
  return result;
}

function collectTensors(v: unknown, out: Set<Tensor>): void {
  if (v instanceof Tensor) out.add(v);
  else if (Array.isArray(v)) for (const x of v) collectTensors(x, out);
  else if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    for (const x of Object.values(v)) collectTensors(x, out);
  }
}

/** Live tensors, storages and bytes on a backend (the default one when none is named). */
export function memory(backend?: string | Backend): { tensors: number; storages: number; bytes: number } {
  const b = resolveBackend(backend);
  return { tensors: liveTensors.get(b) ?? 0, ...b.memory() };
}
