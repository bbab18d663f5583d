/**
 * Gradient checking by central finite differences, in float64 on the CPU backend.
 *
 * For f: inputs -> y and a fixed random projection r (same shape as y), L = sum(f(inputs) * r).
 * Analytic: the gradients backward() gives with output gradient r.
 * Numeric:  dL/dx_j ~ (L(x + eps e_j) - L(x - eps e_j)) / (2 eps), for every element j of every input.
 * Error per element: |analytic - numeric| / max(|analytic|, |numeric|, 1e-3 * (largest |numeric| of that input), 1e-12).
 * gradcheck checks f's inputs (copies of them); gradcheckTensors checks tensors a closure reads itself (a module's
 * parameters), in place. Either leaves every tensor as it was: values, and .grad. Its backward pass gives gradients
 * only to the tensors checked (backward's `inputs`), so any other tensor f reads that requires gradients (a module's
 * parameters when gradcheck checks the input) keeps its .grad. What f itself changes stays changed: batch norm in
 * training mode moves its running statistics at each of f's 2n + 1 calls (n elements checked).
 */
import { cpuBackend } from '../registry.js';
import { noGrad } from '../mode.js';
import { Rng } from '../random.js';
import { fromArray, scope, Tensor } from '../tensor.js';
import { shapeStr } from '../dtype.js';
import { describeValue, expectOptions, expectTensor } from '../ops/util.js';

export interface GradcheckOptions {
  eps?: number;
  /** Pass when the max relative error is below this. */
  tolerance?: number;
  /** Which inputs to check (default: all). The others are passed to f as constants (they do not require gradients). */
  check?: boolean[];
  seed?: number;
}

export interface GradcheckResult {
  maxRelError: number;
  maxAbsError: number;
  /** Elements compared. */
  checked: number;
  ok: boolean;
  /** Where the worst element is, for debugging. */
  worst: string;
}

/** The options' eps and tolerance, checked. */
function checkedOptions(op: string, opts: GradcheckOptions, allowed: Record<string, true>): { eps: number; tolerance: number } {
  expectOptions(op, opts, allowed);
  const eps = opts.eps ?? 1e-6;
  const tolerance = opts.tolerance ?? 1e-5;
  for (const [name, v] of [['eps', eps], ['tolerance', tolerance]] as const) {
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw new Error(`${op}: ${name} must be a finite number > 0, got ${describeValue(v)}`);
  }
  return { eps, tolerance };
}

/**
 * Compares the analytic gradient of each tensor in `leaves` (its .grad after the caller's backward(r)) with central
 * differences of loss() = sum(f(...) * r), perturbing the leaves' values in place, element by element. The error's
 * floor is 1e-3 of the largest |numeric| of each leaf (scale 'each'), or of all the leaves together ('all').
 */
function compareGradients(leaves: Tensor[], loss: () => number,
  o: { eps: number; tolerance: number; check?: boolean[]; scale: 'each' | 'all'; label: 'input' | 'tensor' }): GradcheckResult {
  const cpu = cpuBackend();
  const pairs = leaves.map((leaf, i) => {
    if (o.check && !o.check[i]) return null;
    const analytic = leaf.grad ? leaf.grad.dataSync() : new Float64Array(leaf.size);
    const values = cpu.array(leaf.handle);
    const numeric = new Float64Array(leaf.size);
    for (let j = 0; j < leaf.size; j++) {
      const x0 = values[j];
      try {
        values[j] = x0 + o.eps;
        const lp = loss();
        values[j] = x0 - o.eps;
        const lm = loss();
        numeric[j] = (lp - lm) / (2 * o.eps);
      } finally {
        values[j] = x0; // restored whatever loss() does (gradcheckTensors perturbs the caller's own tensors)
      }
    }
    let scale = 0;
    for (const v of numeric) scale = Math.max(scale, Math.abs(v));
    return { analytic, numeric, scale };
  });
  const allScale = Math.max(0, ...pairs.map((p) => p?.scale ?? 0));
  let maxRel = 0, maxAbs = 0, checked = 0, worst = '';
  pairs.forEach((p, i) => {
    if (!p) return;
    const { analytic, numeric } = p;
    const floor = 1e-3 * (o.scale === 'all' ? allScale : p.scale);
    for (let j = 0; j < numeric.length; j++) {
      const abs = Math.abs(analytic[j] - numeric[j]);
      const rel = abs / Math.max(Math.abs(analytic[j]), Math.abs(numeric[j]), floor, 1e-12);
      checked++;
      maxAbs = Math.max(maxAbs, abs);
      if (rel > maxRel || Number.isNaN(rel)) {
        maxRel = Number.isNaN(rel) ? Infinity : rel;
        const leaf = leaves[i];
        worst = `${o.label} ${i}${leaf.name ? ` '${leaf.name}'` : ''} ${shapeStr(leaf.shape)} element ${j}: analytic ${analytic[j]}, numeric ${numeric[j]}`;
      }
    }
  });
  return { maxRelError: maxRel, maxAbsError: maxAbs, checked, ok: maxRel <= o.tolerance, worst };
}

/** The projection r of f's output y (uniform in [-1, 1), seeded), as values and as a tensor. */
function projection(y: Tensor, seed: number): { values: number[]; r: Tensor } {
  const rng = new Rng(seed);
  const values = Array.from({ length: y.size }, () => rng.uniform(-1, 1));
  return { values, r: fromArray(values, y.shape, { dtype: 'float64', backend: cpuBackend() }) };
}

/** sum(v * r) over the values of a tensor. */
function projected(out: Tensor, r: number[]): number {
  const v = out.dataSync();
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * r[i];
  return s;
}

export function gradcheck(f: (inputs: Tensor[]) => Tensor, inputValues: Tensor[], opts: GradcheckOptions = {}): GradcheckResult {
  const { eps, tolerance } = checkedOptions('gradcheck', opts, { eps: true, tolerance: true, check: true, seed: true });
  if (typeof f !== 'function') throw new Error(`gradcheck: f must be a function of the input tensors, got ${describeValue(f)}`);
  if (!Array.isArray(inputValues as unknown)) throw new Error(`gradcheck: inputs must be an array of tensors, got ${describeValue(inputValues)}`);
  inputValues.forEach((t, i) => expectTensor('gradcheck', `input ${i}`, t));
  if (opts.check !== undefined && (!Array.isArray(opts.check) || opts.check.length !== inputValues.length || opts.check.some((c) => typeof c !== 'boolean'))) {
    throw new Error(`gradcheck: check must list true or false for each of the ${inputValues.length} inputs, got ${JSON.stringify(opts.check)}`);
  }
  const cpu = cpuBackend();
  for (const t of inputValues) {
    if (t.dtype !== 'float64' || t.backend !== cpu) throw new Error(`gradcheck: inputs must be float64 on the cpu backend (got ${t.dtype} on ${t.backend.name})`);
  }
  return scope(() => {
    // On the cpu backend whatever the default backend is (webgpu has no float64).
    // An input left out of the check (check[i] false) is a constant: it needs no gradient (batch norm's running
    // statistics refuse to require one).
    const leaves = inputValues.map((t, i) => fromArray(t.dataSync(), t.shape, { dtype: 'float64', requiresGrad: opts.check?.[i] ?? true, backend: cpu }));
    const y = f(leaves);
    if (!(y instanceof Tensor)) throw new Error(`gradcheck: f must return a Tensor, got ${describeValue(y)}`);
    const { values, r } = projection(y, opts.seed ?? 1234);
    if (y.requiresGrad) y.backward(r, { inputs: leaves.filter((l) => l.requiresGrad) });
    // (The scope disposes the leaves, and with them their .grad.)
    return compareGradients(leaves, () => noGrad(() => scope(() => projected(f(leaves), values))), { eps, tolerance, check: opts.check, scale: 'each', label: 'input' });
  });
}

/**
 * gradcheck for a closure over tensors it reads itself, such as a module's parameters: f() is called with no
 * arguments, and the gradients of sum(f() * r) with respect to `tensors` (float64 leaves on the cpu that require
 * gradients) are compared with central differences, each element perturbed in place and restored. The tensors
 * end as they began: their values, and the .grad they held before (none is added to). The error's floor is 1e-3 of the largest |numeric|
 * gradient over all the tensors, not each one's own: a parameter whose gradient is 0 exactly (a conv bias in front of
 * a training-mode batch norm) holds only rounding noise. E.g. a whole network's parameter gradients:
 *   gradcheckTensors(() => net.forward(x).output, net.parameters())
 * (in training mode batch norm's running statistics move with each call; its output does not depend on them).
 */
export function gradcheckTensors(f: () => Tensor, tensors: Tensor[], opts: Omit<GradcheckOptions, 'check'> = {}): GradcheckResult {
  const { eps, tolerance } = checkedOptions('gradcheckTensors', opts, { eps: true, tolerance: true, seed: true });
  if (typeof f !== 'function') throw new Error(`gradcheckTensors: f must be a function of no arguments, got ${describeValue(f)}`);
  if (!Array.isArray(tensors as unknown)) throw new Error(`gradcheckTensors: tensors must be an array of tensors, got ${describeValue(tensors)}`);
  const cpu = cpuBackend();
  tensors.forEach((t, i) => {
    expectTensor('gradcheckTensors', `tensor ${i}`, t);
    const what = `gradcheckTensors: tensor ${i}${t.name ? ` '${t.name}'` : ''}`;
    if (t.dtype !== 'float64' || t.backend !== cpu) throw new Error(`${what} must be float64 on the cpu backend (got ${t.dtype} on ${t.backend.name})`);
    if (!t.requiresGrad) throw new Error(`${what} does not require gradients`);
    if (t.node) throw new Error(`${what} is the output of an op, not a leaf: perturbing its values would not reach f's result`);
  });
  if (new Set(tensors).size !== tensors.length) throw new Error('gradcheckTensors: a tensor is listed twice');
  // The .grad each tensor holds is set aside for the check (which reads the analytic gradient from .grad) and put back.
  const held = tensors.map((t) => t.grad);
  for (const t of tensors) t.grad = null;
  return scope(() => {
    try {
      const y = f();
      if (!(y instanceof Tensor)) throw new Error(`gradcheckTensors: f must return a Tensor, got ${describeValue(y)}`);
      const { values, r } = projection(y, opts.seed ?? 1234);
      if (y.requiresGrad) y.backward(r, { inputs: tensors });
      return compareGradients(tensors, () => noGrad(() => scope(() => projected(f(), values))), { eps, tolerance, scale: 'all', label: 'tensor' });
    } finally {
      tensors.forEach((t, i) => {
        t.grad?.dispose();
        t.grad = held[i];
      });
    }
  });
}
