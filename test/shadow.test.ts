/**
 * The shadow audit (src/engine/audit/shadow.ts): a trace started with { shadow: true } runs each op again on the CPU
 * in float64 from the op's own input values, and records how far each result is from it, as a relative error and
 * in units of float32 rounding. Here on the CPU's float32 kernels; test/webgpu-training.test.ts runs it on webgpu.
 */
import { describe, expect, it } from 'vitest';
import * as sg from '../src/engine/index.js';
import { float32OnlyNeg } from './helpers/shadow-ops.js';
import { compareWithReference, drainPool, maxDiff, roundingMove, shadowResult } from '../src/engine/audit/shadow.js';

const f64 = (...v: number[]): Float64Array => Float64Array.from(v);

/** A step of a small conv net with batch norm running statistics and an AdamW update (ops that write in place). */
function step(seed: number): { trace: sg.Trace; dispose: () => void } {
  const rng = new sg.Rng(seed);
  const params = [
    sg.normal([6, 2, 3, 3], 0, 0.3, { rng }), sg.zeros([6]), sg.ones([6]), sg.zeros([6]), sg.normal([6, 1, 3, 3], 0, 0.3, { rng }),
  ].map((p) => p.keep());
  for (const p of params) p.requiresGrad = true;
  const stats = [sg.zeros([6]).keep(), sg.ones([6]).keep()];
  const x = sg.uniform([3, 2, 10, 10], 0, 1, { rng }).keep();
  const target = sg.uniform([3, 1, 10, 10], 0, 1, { rng }).keep();
  const opt = new sg.Adam(params, { lr: 0.01, decoupled: true, weightDecay: 0.01 });
  const { result, trace } = sg.traced(() => sg.scope(() => {
    const [w1, b1, g, b, w2] = params;
    let h = sg.conv2d(x, w1, { stride: 2, padding: 'same', bias: b1 });
    h = sg.leakyRelu(sg.batchNorm2d(h, g, b, stats[0], stats[1], { training: true }), 0.01);
    h = sg.reshape(h, [3, 6, 5, 5]); // a view: no kernel, so no shadow
    const y = sg.sigmoid(sg.convTranspose2d(h, w2, { stride: 2, padding: 1, outputPadding: 1 }));
    const loss = sg.mseLoss(y, target);
    loss.backward();
    opt.step();
    sg.zeroGrad(params);
    return loss;
  }), { shadow: true });
  return { trace, dispose: () => { for (const t of [...params, ...stats, x, target, result]) t.dispose(); opt.dispose(); } };
}

describe('the shadow audit', () => {
  it('measures a result against the reference, and against what float32 rounding alone moves it', () => {
    // Exact: 0 both ways.
    expect(shadowResult(f64(1, 2), f64(1, 2), f64(1 + 2e-8, 2))).toEqual({ error: 0, rounding: 0 });
    // 3e-7 off a reference of magnitude 2 that the inputs' rounding moves by 2e-7: error 1.5e-7, 1.5 roundings.
    const r = shadowResult(f64(1, 2 + 3e-7), f64(1, 2), f64(1, 2 + 2e-7));
    expect(r.error).toBeCloseTo(1.5e-7, 12);
    expect(r.rounding).toBeCloseTo(1.5, 6);
    // Where the inputs' rounding moves it less than 2^-24 of the result (2^-23 here), that is the unit.
    expect(shadowResult(f64(1, 2 + 3e-7), f64(1, 2), f64(1, 2 + 1e-8)).rounding).toBeCloseTo(3e-7 / 2 ** -23, 6);
    // A result that cancels (a sum near 0): a large relative error, yet within what the inputs' rounding decides.
    const c = shadowResult(f64(3e-9), f64(1e-9), f64(2.5e-9));
    expect(c.error).toBeCloseTo(2, 6);
    expect(c.rounding).toBeCloseTo(2 / 1.5, 6);
    // Where the inputs' rounding moves nothing (a copy), the result's own rounding is the unit: 2^-24 of 4.
    expect(shadowResult(f64(4 + 2 ** -21), f64(4), f64(4)).rounding).toBeCloseTo(2 ** -21 / (4 * 2 ** -24), 9);
    // A reference of zeros: the error is absolute, and any difference is infinitely many roundings.
    expect(shadowResult(f64(0, 1e-3), f64(0, 0), f64(0, 0))).toEqual({ error: 1e-3, rounding: Infinity });
    // NaN or a wrong infinity is infinitely far; matching NaNs and infinities are not a difference.
    expect(shadowResult(f64(NaN, 1), f64(0, 1), f64(0, 1)).rounding).toBe(Infinity);
    // A move that overflows (the reference near the largest double) is left out of the unit, not made its whole.
    expect(shadowResult(f64(1 + 1e-7, 1), f64(1, 1), f64(1, Infinity)).rounding).toBeCloseTo(1e-7 / 2 ** -24, 6);
    expect(maxDiff(f64(NaN, Infinity, 1), f64(NaN, Infinity, 1))).toBe(0);
    expect(maxDiff(f64(-Infinity), f64(Infinity))).toBe(Infinity);
    expect(() => maxDiff(f64(1), f64(1, 2))).toThrow('shadow: 1 values against a reference of 2');
    // An infinity in the reference (1/0), matched by the value, says nothing of the other values' precision.
    const inf = shadowResult(f64(1 + 1e-7, Infinity), f64(1, Infinity), f64(1, Infinity));
    expect(inf.error).toBeCloseTo(1e-7, 12);
    expect(inf.rounding).toBeCloseTo(1e-7 / 2 ** -24, 6);
  });

  it("moves values by at most float32's unit roundoff, keeping zeros and signs, the same way for the same seed", () => {
    const v = f64(1, -3, 0, 1e-30, 7e20);
    const a = roundingMove(v, new sg.Rng(5));
    expect(a).toEqual(roundingMove(v, new sg.Rng(5)));
    expect(a).not.toEqual(v);
    for (let i = 0; i < v.length; i++) {
      expect(Math.abs(a[i] - v[i])).toBeLessThanOrEqual(Math.abs(v[i]) * 2 ** -24);
      expect(Math.sign(a[i])).toBe(Math.sign(v[i]));
    }
  });

  it('runs the kernel in float64 and compares its outputs and the inputs it wrote in place', () => {
    // out = x + y, and y *= 2 in place (input 1), on the CPU in float64.
    const kernel = (be: sg.Backend, [out]: sg.Storage[], [x, y]: sg.Storage[]): void => {
      be.binary('add', x, [1], y, [1], out, [2], 0);
      be.unary('mulScalar', y, y, 2);
    };
    const got = compareWithReference(kernel, [f64(1, 2), f64(10, 20)], [f64(11, 22), f64(20, 40 + 1e-2)], [2], [1]);
    expect(got).toHaveLength(2);
    expect(got[0]).toEqual({ error: 0, rounding: 0 });
    expect(got[1].error).toBeCloseTo(1e-2 / 40, 12);
    expect(got[1].rounding).toBeGreaterThan(1e3);
  });

  it('moves every input, not only the first: the unit is what the inputs that matter decide', () => {
    // out = sum(b); a is read by nothing. b cancels to 1, so b's rounding moves the sum by up to 1e6 * 2^-24 = 0.06:
    // a value 1e-6 off is a tiny fraction of that unit. (Moving a alone would leave the result's own 2^-24.)
    const kernel = (be: sg.Backend, [out]: sg.Storage[], [, b]: sg.Storage[]): void => be.reduceSum(b, [3], [0], out, 1);
    const [r] = compareWithReference(kernel, [f64(5), f64(1e6, -1e6, 1)], [f64(1 + 1e-6)], [1], []);
    expect(r.error).toBeCloseTo(1e-6, 12);
    expect(r.rounding).toBeGreaterThan(1e-6 / 0.06 / 2);
    expect(r.rounding).toBeLessThan(1e-3);
  });

  it('in a training step, every kernel result has a shadow: each op within a few float32 roundings on the CPU', () => {
    // On the CPU each op is compared at once (nothing held for the step's end; no settle() needed).
    drainPool(); // what the tests before left pooled (freed at the next task anyway)
    const storages = sg.memory('cpu').storages;
    const { trace, dispose } = step(3);
    expect(trace.shadowsPending).toBe(0);
    // The reference's storages, reused from op to op, are freed when the trace stops: none is left behind.
    dispose();
    expect(sg.memory('cpu').storages).toBe(storages);
    const views = trace.entries.filter((e) => e.op === 'reshape');
    expect(views.length).toBeGreaterThan(0);
    for (const e of views) expect(e.shadow).toBeUndefined();
    const ran = trace.entries.filter((e) => e.op !== 'reshape');
    for (const e of ran) expect(e.shadow, `#${e.index} ${e.op}`).toHaveLength(e.outputs.length + (e.written?.length ?? 0));
    // AdamW writes each parameter and its two moments in place (inputs 0, 2 and 3); batch norm its running statistics.
    const adam = ran.filter((e) => e.op === 'adam');
    expect(adam).toHaveLength(5);
    for (const e of adam) expect(e.written).toEqual([0, 2, 3]);
    expect(ran.find((e) => e.op === 'batchNorm2d')!.written).toEqual([3, 4]);
    // The CPU's float32 kernels accumulate in float64: each result is within a few roundings of float64. (An in-place
    // op compared from its inputs as they were after it ran would be off by a whole update: thousands.)
    const rows = trace.shadowRows();
    expect(rows).toHaveLength(ran.reduce((n, e) => n + e.shadow!.length, 0));
    expect(rows[0].rounding).toBeLessThan(5);
    expect(rows.at(-1)!.rounding).toBeGreaterThanOrEqual(0);
    expect(rows.some((r) => r.result === 'input 0 [6,2,3,3] (in place)' && r.op === 'adam')).toBe(true);
    // The table: the worst first, with the entry's index, the result, the ratio and the error.
    const table = trace.shadowTable(3).split('\n');
    expect(table).toHaveLength(5);
    expect(table[0]).toMatch(/^#\s+op\s+phase\s+result\s+rounding\s+error\s+kernel$/);
    expect(table[2]).toContain(`${rows[0].index}  `);
    // The full table and the Chrome trace carry it too.
    expect(trace.table().split('\n')[0]).toContain('vs float64 (error, rounding)');
    const events = (JSON.parse(trace.toJSON()) as { traceEvents: Array<{ ph: string; args?: { shadow?: unknown } }> }).traceEvents.filter((e) => e.ph === 'X');
    expect(events.filter((e) => e.args?.shadow !== undefined)).toHaveLength(ran.length);
  });

  it("an op that makes infinities is judged on its values, and trace.json writes an infinitely wrong result as 'Infinity'", () => {
    const y = sg.div(sg.ones([4]), sg.fromArray([0, 1, 2, 3], [4])); // [Inf, 1, 0.5, 0.333...]
    const wrong = (x: sg.Tensor): sg.Tensor => sg.runOp({
      op: 'wrongZero', inputs: [x], outputs: [x.shape], flops: 0,
      kernel: (be, [o], [xs]) => be.unary('mulScalar', xs, o, o.dtype === 'float32' ? 1e-3 : 0), // float64: all zero
    })[0];
    const { result, trace } = sg.traced(() => sg.scope(() => wrong(sg.divScalar(y, 3)).keep()), { shadow: true });
    const [div, bad] = trace.entries;
    expect(div.shadow![0].rounding).toBeLessThan(2); // not Infinity: the infinity matches, the rest is float32's
    expect(bad.shadow![0]).toEqual({ error: Infinity, rounding: Infinity }); // Inf * 1e-3 against 0
    const json = trace.toJSON();
    expect(json).toContain('"rounding":"Infinity"');
    expect(json).not.toContain('null');
    for (const t of [y, result]) t.dispose();
  });

  it('finds the op whose kernel is off, by far, among ops that are right', async () => {
    // A kernel wrong by 1e-4 relative in float32 only (as a backend's kernel may be), right in the float64 reference.
    const scaleOp = (x: sg.Tensor, bad: boolean): sg.Tensor => sg.runOp({
      op: bad ? 'badScale' : 'goodScale', inputs: [x], outputs: [x.shape], flops: x.size,
      kernel: (be, [o], [xs]) => be.unary('mulScalar', xs, o, bad && o.dtype === 'float32' ? 3 * (1 + 1e-4) : 3),
    })[0];
    const x = sg.uniform([50], 1, 2, { rng: new sg.Rng(1) });
    const { result, trace } = sg.traced(() => scaleOp(scaleOp(scaleOp(x, false), true), false), { shadow: true });
    await trace.settle();
    const rows = trace.shadowRows();
    expect(rows.map((r) => r.op)).toEqual(['badScale', 'goodScale', 'goodScale']);
    expect(rows[0].rounding).toBeGreaterThan(500);
    expect(rows[0].error).toBeCloseTo(1e-4, 6);
    expect(rows[1].rounding).toBeLessThanOrEqual(1);
    result.dispose();
    x.dispose();
  });

  it('a reference that fails is thrown by trace.settle(), with no unhandled rejection before it', async () => {
    const x = sg.uniform([4], 0, 1);
    const { result, trace } = sg.traced(() => float32OnlyNeg(x), { shadow: true });
    // Recorded at the op (on the CPU the reference runs there), so the rows are refused at once, naming the op.
    expect(trace.shadowsPending).toBe(0);
    expect(() => trace.shadowRows()).toThrow('shadow: #0 float32Only was not compared with float64: float32Only: no float64 kernel');
    await new Promise((r) => setTimeout(r, 10)); // an unhandled rejection would be reported by now
    await expect(trace.settle()).rejects.toThrow('float32Only: no float64 kernel');
    // And it stays refused: the trace's rows would leave that op out.
    await trace.settle();
    expect(() => trace.shadowTable()).toThrow('#0 float32Only was not compared with float64');
    result.dispose();
    x.dispose();
  });

  it("the trace's host time is the op's, not the shadow's reads", () => {
    const cpu = sg.getBackend('cpu');
    const readSync = cpu.readSync.bind(cpu);
    const x = sg.uniform([4], 0, 1);
    cpu.readSync = (s) => {
      const until = performance.now() + 30;
      while (performance.now() < until);
      return readSync(s);
    };
    try {
      const { result, trace } = sg.traced(() => sg.neg(x), { shadow: true });
      expect(trace.entries[0].shadow).toEqual([{ error: 0, rounding: 0 }]);
      expect(trace.entries[0].wallMs).toBeLessThan(20); // the two 30 ms reads are outside it
      result.dispose();
    } finally {
      cpu.readSync = readSync;
    }
    x.dispose();
  });

  it('is refused where the trace has none', () => {
    const { trace } = sg.traced(() => sg.scope(() => sg.add(sg.ones([2]), sg.ones([2]))));
    expect(() => trace.shadowRows()).toThrow('shadow: this trace was not started with { shadow: true }');
    expect(trace.entries[0].shadow).toBeUndefined();
    expect(() => sg.traced(() => 1, { shadows: true } as never)).toThrow(/shadows/);
  });
});
