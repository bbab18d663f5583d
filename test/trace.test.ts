import { describe, expect, it } from 'vitest';
import * as sg from '../src/engine/index.js';
import { getThreadCount, setThreadCount } from '../src/engine/cpu/threads.js';
import { tileNote } from '../src/engine/webgpu/kernels/conv.js';

/** One training step of a small conv net: forward, loss, backward. Returns the number of op calls it made itself. */
function trainStep(x: sg.Tensor, params: sg.Tensor[], target: sg.Tensor): sg.Tensor {
  const [w1, b1, g, bt, w2] = params;
  const h1 = sg.conv2d(x, w1, { stride: 2, padding: 'same', bias: b1 });
  const h2 = sg.batchNorm2d(h1, g, bt, null, null, { training: true });
  const h3 = sg.leakyRelu(h2, 0.01);
  const h4 = sg.convTranspose2d(h3, w2, { stride: 2, padding: 1, outputPadding: 1 });
  const y = sg.sigmoid(h4);
  const loss = sg.mseLoss(y, target);
  loss.backward();
  return loss;
}

function makeNet(): { x: sg.Tensor; params: sg.Tensor[]; target: sg.Tensor } {
  const rng = new sg.Rng(11);
  const x = sg.uniform([2, 1, 8, 8], 0, 1, { rng });
  const params = [
    sg.normal([4, 1, 3, 3], 0, 0.3, { rng, requiresGrad: true }),
    sg.zeros([4], { requiresGrad: true }),
    sg.ones([4], { requiresGrad: true }),
    sg.zeros([4], { requiresGrad: true }),
    sg.normal([4, 1, 3, 3], 0, 0.3, { rng, requiresGrad: true }),
  ];
  const target = sg.uniform([2, 1, 8, 8], 0, 1, { rng });
  return { x, params, target };
}

describe('audit trace', () => {
  it("an entry's stats: min, max and mean of the finite values, and the NaN and Inf counts (cpu)", () => {
    const x = sg.fromArray([1, NaN, 3, Infinity, -Infinity, 5, -2], [7]);
    const { result, trace } = sg.traced(() => sg.mul(x, 2), { stats: true });
    expect(trace.entries[0].stats).toEqual([{ min: -4, max: 10, mean: 3.5, nan: 1, inf: 2 }]); // (2 + 6 + 10 - 4) / 4
    const none = sg.traced(() => sg.mul(sg.fromArray([NaN, Infinity], [2]), 1), { stats: true }).trace.entries[0].stats![0];
    expect(none).toEqual({ min: NaN, max: NaN, mean: NaN, nan: 1, inf: 1 });
    result.dispose();
    x.dispose();
  });

  it('records one entry per op call of a training step, forward and backward, as valid Chrome trace JSON', () => {
    sg.scope(() => {
      const { x, params, target } = makeNet();
      const { trace } = sg.traced(() => trainStep(x, params, target), { stats: true });
      const ops = trace.entries.map((e) => `${e.phase}:${e.op}`);
      // Forward: exactly the six op calls of the step, in order.
      expect(ops.filter((o) => o.startsWith('forward:'))).toEqual([
        'forward:conv2d', 'forward:batchNorm2d', 'forward:leakyRelu', 'forward:convTranspose2d', 'forward:sigmoid', 'forward:mseLoss',
      ]);
      // Backward: each differentiable op contributes its gradient ops.
      const back = ops.filter((o) => o.startsWith('backward:'));
      for (const op of ['conv2dGradWeight', 'batchNorm2dGrad', 'leakyReluGrad', 'sigmoidGrad', 'conv2d']) {
        expect(back).toContain(`backward:${op}`);
      }
      // The input image does not require grad, so no input gradient is computed for the first conv;
      // the transposed conv's input gradient is a conv2d (its adjoint).
      expect(back).not.toContain('backward:conv2dGradInput');
      expect(back.filter((o) => o === 'backward:conv2dGradWeight')).toHaveLength(2);
      expect(trace.entries.every((e, i) => e.index === i && e.dtype === 'float32' && e.backend === 'cpu' && e.wallMs >= 0)).toBe(true);
      const conv = trace.entries[0];
      expect(conv.inputs).toEqual([[2, 1, 8, 8], [4, 1, 3, 3], [4]]);
      expect(conv.outputs).toEqual([[2, 4, 4, 4]]);
      expect(conv.flops).toBe(2 * 2 * 4 * 4 * 4 * 1 * 3 * 3);
      expect(conv.stats![0].nan).toBe(0);

      const json = JSON.parse(trace.toJSON()) as { traceEvents: Array<Record<string, unknown>> };
      const events = json.traceEvents.filter((e) => e.ph === 'X');
      expect(events).toHaveLength(trace.entries.length);
      for (const e of events) {
        expect(typeof e.name).toBe('string');
        expect(typeof e.ts).toBe('number');
        expect(e.dur as number).toBeGreaterThan(0);
        expect(e.pid).toBe(1);
      }
      const table = trace.table();
      expect(table.split('\n')).toHaveLength(trace.entries.length + 2);
      expect(table).toContain('conv2dGradWeight');
      // Which code computed each convolution, in the entry, the Chrome trace and the table; nothing for the rest.
      // The first conv (1 input channel, 3-wide rows at stride 2) takes the GEMM path, 2 images side by side.
      expect(conv.kernel).toBe('im2col + GEMM, up to 2 images per product, 1 thread');
      expect(events[0].args).toMatchObject({ kernel: conv.kernel });
      expect(table).toContain('im2col + GEMM, up to 2 images per product, 1 thread');
      expect(trace.entries[2].op).toBe('leakyRelu');
      expect(trace.entries[2].kernel).toBeUndefined();
      for (const p of params) p.grad?.dispose();
    });
  });

  it('says when a convolution ran on the direct kernels, and on how many threads', () => {
    sg.scope(() => {
      const rng = new sg.Rng(3);
      // The esann decoder's last conv: 1 output channel, 5x5 'same' (sliding 5-wide rows), large enough for 2 threads where there are 2.
      const x = sg.uniform([4, 8, 64, 64], 0, 1, { rng });
      const w = sg.normal([1, 8, 5, 5], 0, 0.1, { rng, requiresGrad: true });
      const saved = getThreadCount();
      setThreadCount(2);
      try {
        const { trace } = sg.traced(() => sg.sum(sg.conv2d(x, w, { padding: 'same' })).backward());
        const notes = trace.entries.filter((e) => e.op.startsWith('conv2d')).map((e) => `${e.op}: ${e.kernel}`);
        expect(notes).toEqual(['conv2d: direct, sliding 5-wide rows, 2 threads', 'conv2dGradWeight: direct, sliding 5-wide rows, 2 threads']);
        // One thread where it is asked for.
        setThreadCount(1);
        const one = sg.traced(() => sg.conv2d(x, w, { padding: 'same' })).trace.entries[0];
        expect(one.kernel).toBe('direct, sliding 5-wide rows, 1 thread');
        // A backend call made outside the dispatch point leaves no note on the next traced op.
        const be = x.backend;
        const out = be.alloc('float32', 4 * 64 * 64);
        be.conv2d(x.handle, w.handle, null, out, sg.conv2dGeometry('test', x.shape, w.shape, { padding: 'same' }));
        be.free(out);
        expect(sg.traced(() => sg.neg(x)).trace.entries[0].kernel).toBeUndefined();
      } finally {
        setThreadCount(saved);
      }
      w.grad?.dispose();
    });
  });

  it("words a GPU launch for the trace: tile, threads, K splits and prefetching (webgpu's KernelNote)", () => {
    expect(tileNote('conv2d_grad_weight', { bm: 128, bn: 64, bk: 16, tm: 8, tn: 8 }, 6, { prefetch: true }))
      .toBe('conv2d_grad_weight.wgsl, 128x64 tiles 16 deep, 8x8 per thread (128 threads), K in 6 splits + split_k_reduce, prefetch');
    expect(tileNote('conv2d', { bm: 4, bn: 128, bk: 4, tm: 4 }, 1)).toBe('conv2d.wgsl, 4x128 tiles 4 deep, 4x4 per thread (32 threads)');
  });

  it('the NaN guard throws at the first op whose output is not finite, naming it and its phase', () => {
    sg.scope(() => {
      const x = sg.fromArray([1, -1, 4], [3], { requiresGrad: true });
      expect(() => sg.withNanGuard(() => sg.sqrt(x))).toThrow(/sqrt \(forward\) produced 1 NaN and 0 Inf values in output 0 \[3\]; inputs \[3\]/);
      // Without the guard the NaN flows on silently.
      const y = sg.sqrt(x);
      expect(Number.isNaN(y.dataSync()[1])).toBe(true);
    });
  });

  it('nested traced() calls and a startTrace() around them each record every op in their span', () => {
    const w = sg.fromArray([1, 2], [2]);
    const outer = sg.startTrace();
    let inner: sg.Trace | null = null;
    const { trace: middle } = sg.traced(() => {
      sg.square(w);
      inner = sg.traced(() => sg.exp(w)).trace;
      sg.neg(w);
    });
    sg.sqrt(w);
    expect(sg.stopTrace()).toBe(outer);
    const ops = (t: sg.Trace): string[] => t.entries.map((e) => e.op);
    expect(ops(inner!)).toEqual(['exp']);
    expect(ops(middle)).toEqual(['square', 'exp', 'neg']);
    expect(ops(outer)).toEqual(['square', 'exp', 'neg', 'sqrt']);
    expect(middle.entries.map((e) => e.index)).toEqual([0, 1, 2]);
    // stopTrace() inside traced() stops the startTrace() trace, not traced()'s.
    const started = sg.startTrace();
    const { trace: around } = sg.traced(() => {
      sg.square(w);
      expect(sg.stopTrace()).toBe(started);
      sg.exp(w);
    });
    expect(ops(around)).toEqual(['square', 'exp']);
    expect(ops(started)).toEqual(['square']);
    w.dispose();
  });

  it('traced() refuses an async fn, and a fn that throws leaves its trace on the error', () => {
    const w = sg.fromArray([1, 2], [2]);
    expect(() => sg.traced(async () => sg.square(w))).toThrow(/traced: fn returned a Promise/);
    let err: unknown;
    try {
      sg.traced(() => {
        sg.square(w);
        sg.withNanGuard(() => sg.log(sg.neg(w)));
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(sg.NonFiniteError);
    expect((err as { trace: sg.Trace }).trace.entries.map((e) => e.op)).toEqual(['square', 'neg', 'log']);
    w.dispose();
  });

  it("the NaN guard checks what an op writes in place: Adam's update is named, not the next op", () => {
    const p = sg.ones([2], { requiresGrad: true });
    const opt = new sg.Adam([p], { lr: 0.1, eps: 0 }); // eps 0: a zero gradient gives 0/0
    sg.sum(sg.mul(p, 0)).backward();
    expect(() => sg.withNanGuard(() => opt.step())).toThrow(/NaN guard: adam \(update\) produced 2 NaN and 0 Inf values in input 0 \[2\] \(written in place\)/);
    opt.dispose();
    p.grad?.dispose();
    p.dispose();
  });

  it('a backward() that fails partway gives no leaf a gradient, frees what it made, and can run again', () => {
    const a = sg.fromArray([1, 2], [2], { requiresGrad: true });
    const b = sg.fromArray([0, 4], [2], { requiresGrad: true });
    const loss = sg.add(sg.sum(sg.sqrt(b)), sg.sum(sg.mul(a, 3)));
    const live = sg.memory().tensors;
    expect(() => sg.withNanGuard(() => loss.backward())).toThrow(sg.NonFiniteError);
    expect(a.grad).toBeNull();
    expect(b.grad).toBeNull();
    expect(sg.memory().tensors).toBe(live);
    loss.backward(); // without the guard: the graph is still there, and a.grad is counted once
    expect(Array.from(a.grad!.dataSync())).toEqual([3, 3]);
    for (const t of [a.grad!, b.grad!, a, b, loss]) t.dispose();
  });

  it('a backward() that fails while summing gradients, or while adding into .grad, changes no .grad and frees what it made', () => {
    // x used twice with gradients of 3e38 each: their float32 sum overflows in backward's own add.
    const x = sg.fromArray([1], [1], { requiresGrad: true });
    const twice = sg.add(sg.sum(sg.mul(x, 3e38)), sg.sum(sg.mul(x, 3e38)));
    let live = sg.memory().tensors;
    expect(() => sg.withNanGuard(() => twice.backward())).toThrow(/NaN guard: add \(backward\)/);
    expect(x.grad).toBeNull();
    expect(sg.memory().tensors).toBe(live);
    // a.grad and b.grad held from before; b's new gradient overflows when added into it, a's would not.
    const a = sg.fromArray([1], [1], { requiresGrad: true }), b = sg.fromArray([1], [1], { requiresGrad: true });
    a.grad = sg.fromArray([2], [1]).keep();
    b.grad = sg.fromArray([3e38], [1]).keep();
    const y = sg.add(sg.sum(a), sg.sum(sg.mul(b, 3e38)));
    live = sg.memory().tensors;
    expect(() => sg.withNanGuard(() => y.backward())).toThrow(sg.NonFiniteError);
    expect([a.grad.dataSync()[0], b.grad.dataSync()[0]]).toEqual([2, Math.fround(3e38)]);
    expect(sg.memory().tensors).toBe(live);
    y.backward(); // the graph is still there, and a's gradient is added once
    expect(a.grad.dataSync()[0]).toBe(3);
    for (const t of [a.grad, b.grad, a, b, x, y, twice]) t.dispose();
  });

  it('the NaN guard catches a non-finite gradient in the backward pass', () => {
    sg.scope(() => {
      const x = sg.fromArray([0, 1], [2], { requiresGrad: true });
      const y = sg.sum(sg.sqrt(x)); // d sqrt(x)/dx at 0 is +Inf
      let err: unknown;
      try {
        sg.withNanGuard(() => y.backward());
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(sg.NonFiniteError);
      expect((err as sg.NonFiniteError).phase).toBe('backward');
      expect((err as Error).message).toMatch(/\(backward\)/);
    });
  });
});
