/**
 * Gradient checking by central finite differences, in float64 on the CPU backend.
 *
 * For f: inputs -> y and a fixed random projection r (same shape as y), L = sum(f(inputs) * r).
 * Analytic: the gradients backward() gives with output gradient r.
 * Numeric:  dL/dx_j ~ (L(x + eps e_j) - L(x - eps e_j)) / (2 eps), for every element j of every input.
 * Error per element: |analytic - numeric| / max(|analytic|, |numeric|, 1e-3 * (largest |numeric| of that input), 1e-12).
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
  /** Which inputs to check (default: all). */
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

export function gradcheck(f: (inputs: Tensor[]) => Tensor, inputValues: Tensor[], opts: GradcheckOptions = {}): GradcheckResult {
  expectOptions('gradcheck', opts, { eps: true, tolerance: true, check: true, seed: true });
  const eps = opts.eps ?? 1e-6;
  const tolerance = opts.tolerance ?? 1e-5;
  if (typeof f !== 'function') throw new Error(`gradcheck: f must be a function of the input tensors, got ${describeValue(f)}`);
  if (!Array.isArray(inputValues as unknown)) throw new Error(`gradcheck: inputs must be an array of tensors, got ${describeValue(inputValues)}`);
  inputValues.forEach((t, i) => expectTensor('gradcheck', `input ${i}`, t));
  for (const [name, v] of [['eps', eps], ['tolerance', tolerance]] as const) {
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw new Error(`gradcheck: ${name} must be a finite number > 0, got ${describeValue(v)}`);
  }
  if (opts.check !== undefined && (!Array.isArray(opts.check) || opts.check.length !== inputValues.length || opts.check.some((c) => typeof c !== 'boolean'))) {
    throw new Error(`gradcheck: check must list true or false for each of the ${inputValues.length} inputs, got ${JSON.stringify(opts.check)}`);
  }
  const cpu = cpuBackend();
  for (const t of inputValues) {
    if (t.dtype !== 'float64' || t.backend !== cpu) throw new Error(`gradcheck: inputs must be float64 on the cpu backend (got ${t.dtype} on ${t.backend.name})`);
  }
  return scope(() => {
    // On the cpu backend whatever the default backend is (webgpu has no float64).
    const leaves = inputValues.map((t) => fromArray(t.dataSync(), t.shape, { dtype: 'float64', requiresGrad: true, backend: cpu }));
    const y = f(leaves);
    if (!(y instanceof Tensor)) throw new Error(`gradcheck: f must return a Tensor, got ${describeValue(y)}`);
    const rng = new Rng(opts.seed ?? 1234);
    const rValues = Array.from({ length: y.size }, () => rng.uniform(-1, 1));
    const r = fromArray(rValues, y.shape, { dtype: 'float64', backend: cpu });
    if (y.requiresGrad) y.backward(r);

    const loss = (): number => noGrad(() => scope(() => {
      const out = f(leaves);
      const v = out.dataSync();
      let s = 0;
      for (let i = 0; i < v.length; i++) s += v[i] * rValues[i];
      return s;
    }));

    let maxRel = 0, maxAbs = 0, checked = 0, worst = '';
    leaves.forEach((leaf, i) => {
      if (opts.check && !opts.check[i]) return;
      const analytic = leaf.grad ? leaf.grad.dataSync() : new Float64Array(leaf.size);
      const values = cpu.array(leaf.handle);
      const numeric = new Float64Array(leaf.size);
      for (let j = 0; j < leaf.size; j++) {
        const x0 = values[j];
        values[j] = x0 + eps;
        const lp = loss();
        values[j] = x0 - eps;
        const lm = loss();
        values[j] = x0;
        numeric[j] = (lp - lm) / (2 * eps);
      }
      let scale = 0;
      for (const v of numeric) scale = Math.max(scale, Math.abs(v));
      for (let j = 0; j < leaf.size; j++) {
        const abs = Math.abs(analytic[j] - numeric[j]);
        const rel = abs / Math.max(Math.abs(analytic[j]), Math.abs(numeric[j]), 1e-3 * scale, 1e-12);
        checked++;
        maxAbs = Math.max(maxAbs, abs);
        if (rel > maxRel || Number.isNaN(rel)) {
          maxRel = Number.isNaN(rel) ? Infinity : rel;
          worst = `input ${i} ${shapeStr(leaf.shape)} element ${j}: analytic ${analytic[j]}, numeric ${numeric[j]}`;
        }
      }
    });
    for (const leaf of leaves) {
      leaf.grad?.dispose();
      leaf.grad = null;
    }
    return { maxRelError: maxRel, maxAbsError: maxAbs, checked, ok: maxRel <= tolerance, worst };
  });
}
