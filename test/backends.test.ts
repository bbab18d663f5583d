/**
 * One op suite, run on every backend: each op's output and input gradients in float32 on the backend
 * under test, against the CPU backend in float64 on the same inputs. Outputs are poisoned (filled with NaN)
 * when allocated, so an element a kernel forgets to write shows up. The WebGPU instance requires an adapter
 * under CI=true (it fails, never skips); elsewhere it skips with a message when there is none.
 * On the cpu backend the two sides run the same TypeScript kernels, so this checks the float32 paths (rounding,
 * unwritten elements), not the kernels' logic: that is checked against independent references in
 * cpu-kernels.test.ts (naive loops), oracle-tfjs.test.ts (TensorFlow.js) and gradcheck.test.ts (finite differences).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as sg from '../src/engine/index.js';
import { OP_CASES, type OpCase } from '../src/engine/audit/op-cases.js';
import { webgpuBackendOrSkip } from './webgpu/gpu.js';

const gpuAvailable = (await webgpuBackendOrSkip('webgpu op suite')) !== null;

interface Result { out: Float64Array; grads: Array<Float64Array | null> }

/** Runs fn on `backend` with the given input values; returns the output and the input gradients for output gradient r. */
async function runCase(backend: string, dtype: sg.DType, shapes: number[][], values: number[][], fn: (xs: sg.Tensor[]) => sg.Tensor, r: number[] | null, check?: boolean[]): Promise<Result> {
  const be = sg.getBackend(backend);
  // Inputs left out of the check (batch norm's running statistics) are constants.
  const xs = values.map((v, i) => sg.fromArray(v, shapes[i], { dtype, backend: be, requiresGrad: check?.[i] ?? true }));
  const y = fn(xs);
  const rr = r ?? Array.from({ length: y.size }, (_, i) => Math.sin(i + 1));
  const rt = sg.fromArray(rr, y.shape, { dtype, backend: be });
  if (y.requiresGrad) y.backward(rt);
  const out = Float64Array.from(await y.data());
  const grads = await Promise.all(xs.map(async (x) => (x.grad ? Float64Array.from(await x.grad.data()) : null)));
  for (const t of [...xs, y, rt]) t.dispose();
  for (const x of xs) x.grad?.dispose();
  return { out, grads };
}

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

/** float32 on the backend vs float64 on the CPU: max |diff| <= tol * (1 + max |reference|). */
function expectClose(what: string, got: Float64Array | null, want: Float64Array | null, tol: number): void {
  if (want === null || got === null) {
    expect(got === null, `${what}: gradient present on one side only`).toBe(want === null);
    return;
  }
  expect(got.length, what).toBe(want.length);
  const bound = tol * (1 + maxAbs(want));
  let worst = 0, at = -1;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  expect(worst <= bound, `${what}: max diff ${worst} at ${at} (got ${got[at]}, want ${want[at]}) > bound ${bound}`).toBe(true);
}

function drawValues(c: OpCase, seed: number): number[][] {
  const rng = new sg.Rng(seed);
  return c.inputs.map((spec) => {
    const n = spec.shape.reduce((p, d) => p * d, 1);
    return Array.from({ length: n }, () => {
      const x = rng.uniform(spec.lo ?? -1, spec.hi ?? 1);
      return spec.signed && rng.next() < 0.5 ? -x : x;
    });
  });
}

/**
 * How much looser than usual a training-mode batch norm case is checked: max over channels of |gamma| / (4 sigma)
 * (at least 1), sigma = sqrt(biased variance + eps) of the channel's drawn values. The input gradient
 * (gamma / sigma) * (dy - mean(dy) - xhat * mean(dy * xhat)) is the difference of terms of size |gamma| |dy| / sigma,
 * which cancel almost entirely when a channel has few values close together (two values 0.04 apart: terms of
 * about 45, a result of 0.25), and float32 rounding scales with the terms, not the result. Well-spread channels
 * (sigma >= ~0.4) keep the usual tolerance.
 */
function batchNormTolScale(x: number[], gamma: number[], p: { n: number; c: number; h: number; w: number }): number {
  const hw = p.h * p.w;
  let scale = 1;
  for (let c = 0; c < p.c; c++) {
    const v: number[] = [];
    for (let n = 0; n < p.n; n++) for (let i = 0; i < hw; i++) v.push(x[(n * p.c + c) * hw + i]);
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const sigma = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length + 1e-5);
    scale = Math.max(scale, Math.abs(gamma[c]) / (4 * sigma));
  }
  return scale;
}

type PropCase = OpCase & { tolScale?: (values: number[][]) => number };

/** Property-drawn cases for the kernels with the most geometry (convs, broadcasting, reductions, upsampling, batch norm). */
const arbCase: fc.Arbitrary<PropCase> = fc.oneof(
  fc.record({
    n: fc.integer({ min: 1, max: 2 }), c: fc.integer({ min: 1, max: 3 }), o: fc.integer({ min: 1, max: 4 }),
    h: fc.integer({ min: 3, max: 9 }), w: fc.integer({ min: 3, max: 9 }), k: fc.integer({ min: 1, max: 3 }),
    sh: fc.integer({ min: 1, max: 3 }), sw: fc.integer({ min: 1, max: 3 }),
    pad: fc.oneof(fc.constant<'same'>('same'), fc.constant<'valid'>('valid'), fc.tuple(fc.nat(2), fc.nat(2), fc.nat(2), fc.nat(2))),
    bias: fc.boolean(),
  }).map((p): OpCase => ({
    name: `conv2d ${JSON.stringify(p)}`,
    inputs: [{ shape: [p.n, p.c, p.h, p.w] }, { shape: [p.o, p.c, p.k, p.k] }, ...(p.bias ? [{ shape: [p.o] }] : [])],
    fn: ([x, w, b]) => sg.conv2d(x, w, { stride: [p.sh, p.sw], padding: p.pad, bias: b ?? null }),
  })),
  fc.record({
    n: fc.integer({ min: 1, max: 2 }), cin: fc.integer({ min: 1, max: 3 }), cout: fc.integer({ min: 1, max: 3 }),
    h: fc.integer({ min: 1, max: 5 }), w: fc.integer({ min: 1, max: 5 }), k: fc.integer({ min: 1, max: 4 }),
    s: fc.integer({ min: 1, max: 3 }), p: fc.nat(1), op: fc.nat(2),
  }).filter((q) => q.op < q.s && (q.h - 1) * q.s - 2 * q.p + q.k + q.op >= 1 && (q.w - 1) * q.s - 2 * q.p + q.k + q.op >= 1)
    .map((q): OpCase => ({
      name: `convTranspose2d ${JSON.stringify(q)}`,
      inputs: [{ shape: [q.n, q.cin, q.h, q.w] }, { shape: [q.cin, q.cout, q.k, q.k] }],
      fn: ([x, w]) => sg.convTranspose2d(x, w, { stride: q.s, padding: q.p, outputPadding: q.op }),
    })),
  fc.tuple(fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 }), fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
    fc.nat(3), fc.constantFrom<'add' | 'sub' | 'mul' | 'div'>('add', 'sub', 'mul', 'div'))
    .map(([shape, ones, drop, op]): OpCase => {
      const b = shape.slice(Math.min(drop, shape.length - 1)).map((d, i) => (ones[i] ? 1 : d));
      return {
        name: `${op} ${JSON.stringify(shape)} ${JSON.stringify(b)}`,
        inputs: [{ shape, lo: 0.5, hi: 1.5, signed: true }, { shape: b, lo: 0.5, hi: 1.5 }],
        fn: ([x, y]) => sg[op](x, y),
      };
    }),
  fc.tuple(fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 4 }), fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), fc.boolean())
    .map(([shape, pick, keep]): OpCase => {
      const axes = shape.map((_, i) => i).filter((i) => pick[i]);
      return { name: `mean ${JSON.stringify(shape)} axes ${JSON.stringify(axes)}`, inputs: [{ shape }], fn: ([x]) => sg.mean(x, axes.length ? axes : undefined, keep) };
    }),
  fc.record({ n: fc.integer({ min: 1, max: 2 }), c: fc.integer({ min: 1, max: 3 }), h: fc.integer({ min: 1, max: 4 }), w: fc.integer({ min: 1, max: 4 }),
    sh: fc.integer({ min: 1, max: 3 }), sw: fc.integer({ min: 1, max: 3 }) })
    .map((p): OpCase => ({ name: `upsample ${JSON.stringify(p)}`, inputs: [{ shape: [p.n, p.c, p.h, p.w] }], fn: ([x]) => sg.upsampleNearest2d(x, [p.sh, p.sw]) })),
  fc.record({ n: fc.integer({ min: 1, max: 3 }), c: fc.integer({ min: 1, max: 4 }), h: fc.integer({ min: 1, max: 5 }), w: fc.integer({ min: 2, max: 5 }), training: fc.boolean() })
    .map((p): PropCase => ({
      name: `batchNorm2d ${JSON.stringify(p)}`,
      inputs: [{ shape: [p.n, p.c, p.h, p.w] }, { shape: [p.c], lo: 0.5, hi: 1.5 }, { shape: [p.c] }, { shape: [p.c] }, { shape: [p.c], lo: 0.5, hi: 1.5 }],
      fn: ([x, g, b, m, v]) => sg.batchNorm2d(x, g, b, m, v, { training: p.training }),
      check: [true, true, true, false, false], // running statistics get no gradient
      tolScale: (values) => (p.training ? batchNormTolScale(values[0], values[1], p) : 1),
    })),
);

const backends: Array<{ name: string; run: boolean }> = [{ name: 'cpu', run: true }, { name: 'webgpu', run: gpuAvailable }];

for (const { name, run } of backends) {
  describe.skipIf(!run)(`op suite on ${name} (float32) vs cpu float64`, () => {
    const tol = 2e-5;
    beforeAll(() => {
      sg.getBackend(name).poison = true;
    });
    afterAll(() => {
      sg.getBackend(name).poison = false;
    });

    for (const c of OP_CASES) {
      it(c.name, async () => {
        const values = drawValues(c, 5);
        const shapes = c.inputs.map((s) => s.shape);
        const ref = await runCase('cpu', 'float64', shapes, values, c.fn, null, c.check);
        const got = await runCase(name, 'float32', shapes, values, c.fn, null, c.check);
        expectClose(`${c.name} output`, got.out, ref.out, tol);
        got.grads.forEach((g, i) => {
          if (c.check && !c.check[i]) return;
          expectClose(`${c.name} grad ${i}`, g, ref.grads[i], tol);
        });
      });
    }

    it('property-drawn shapes: convs, broadcasting, reductions, upsampling, batch norm', async () => {
      await fc.assert(fc.asyncProperty(arbCase, fc.integer({ min: 0, max: 1e6 }), async (c, seed) => {
        const values = drawValues(c, seed);
        const shapes = c.inputs.map((s) => s.shape);
        const ref = await runCase('cpu', 'float64', shapes, values, c.fn, null, c.check);
        const got = await runCase(name, 'float32', shapes, values, c.fn, null, c.check);
        const t = tol * (c.tolScale?.(values) ?? 1);
        expectClose(`${c.name} output`, got.out, ref.out, t);
        got.grads.forEach((g, i) => {
          if (c.check && !c.check[i]) return;
          expectClose(`${c.name} grad ${i}`, g, ref.grads[i], t);
        });
      }), { numRuns: name === 'cpu' ? 150 : 60 });
    });
  });
}
