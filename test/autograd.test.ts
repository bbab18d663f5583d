import { describe, expect, it } from 'vitest';
import * as sg from '../src/engine/index.js';

const f64 = { dtype: 'float64' as const };

describe('autograd', () => {
  it('accumulates gradients across fan-out (y = x*x + x)', () => {
    sg.scope(() => {
      const x = sg.fromArray([1, -2, 3], [3], { ...f64, requiresGrad: true });
      const y = sg.sum(sg.add(sg.mul(x, x), x));
      y.backward();
      expect(Array.from(x.grad!.dataSync())).toEqual([3, -3, 7]);
      x.grad!.dispose();
    });
  });

  it('backward with a given output gradient', () => {
    sg.scope(() => {
      const x = sg.fromArray([1, 2, 3, 4], [2, 2], { ...f64, requiresGrad: true });
      const y = sg.mul(x, 3);
      y.backward(sg.fromArray([1, 0, -1, 2], [2, 2], f64));
      expect(Array.from(x.grad!.dataSync())).toEqual([3, 0, -3, 6]);
      x.grad!.dispose();
    });
  });

  it('accumulates into .grad across backward calls and zeroGrad clears it', () => {
    sg.scope(() => {
      const x = sg.fromArray([2], [1], { ...f64, requiresGrad: true });
      sg.sum(sg.square(x)).backward();
      sg.sum(sg.square(x)).backward();
      expect(x.grad!.dataSync()[0]).toBe(8);
      sg.zeroGrad([x]);
      expect(x.grad).toBeNull();
    });
  });

  it('noGrad records nothing', () => {
    sg.scope(() => {
      const x = sg.ones([2], { requiresGrad: true });
      const y = sg.noGrad(() => sg.mul(x, 2));
      expect(y.requiresGrad).toBe(false);
      expect(y.node).toBeNull();
      expect(() => sg.sum(y).backward()).toThrow(/does not require grad/);
    });
  });

  it('releases the graph and the saved tensors after backward', () => {
    const before = sg.memory();
    sg.scope(() => {
      const x = sg.uniform([2, 3, 4, 4], -1, 1, { requiresGrad: true });
      const g = sg.ones([3], { requiresGrad: true });
      const b = sg.zeros([3], { requiresGrad: true });
      const y = sg.batchNorm2d(x, g, b, null, null, { training: true });
      const loss = sg.mean(sg.square(y));
      // The batch-norm node keeps its saved mean and 1/std alive until backward.
      expect(y.node!.outputs.length).toBe(3);
      const saved = y.node!.outputs.slice(1);
      loss.backward();
      expect(y.node).toBeNull();
      expect(loss.node).toBeNull();
      for (const t of saved) expect(t.disposed).toBe(true);
      for (const p of [x, g, b]) p.grad!.dispose();
    });
    expect(sg.memory()).toEqual(before);
  });

  it('only tensors with requiresGrad receive gradients', () => {
    sg.scope(() => {
      const a = sg.ones([2, 2], { requiresGrad: true });
      const c = sg.ones([2, 2]);
      sg.sum(sg.mul(a, c)).backward();
      expect(a.grad).not.toBeNull();
      expect(c.grad).toBeNull();
      a.grad!.dispose();
    });
  });

  it('backward({ inputs }) gives gradients only to the leaves named, leaves every other .grad as it was, and frees the rest', () => {
    const before = sg.memory();
    const a = sg.fromArray([1, 2], [2], { ...f64, requiresGrad: true });
    const b = sg.fromArray([3, -1], [2], { ...f64, requiresGrad: true });
    const c = sg.fromArray([5, 6], [2], { ...f64, requiresGrad: true });
    const held = sg.fromArray([10, 20], [2], f64);
    b.grad = held;
    sg.scope(() => sg.sum(sg.add(sg.mul(a, b), sg.mul(c, c))).backward(undefined, { inputs: [a, c] }));
    expect(Array.from(a.grad!.dataSync())).toEqual([3, -1]);
    expect(Array.from(c.grad!.dataSync())).toEqual([10, 12]);
    expect(b.grad).toBe(held);
    expect(Array.from(held.dataSync())).toEqual([10, 20]);
    // Summed into what the named leaves hold, as without the option.
    sg.scope(() => sg.sum(sg.mul(a, b)).backward(undefined, { inputs: [a] }));
    expect(Array.from(a.grad!.dataSync())).toEqual([6, -2]);
    // b's gradient of this pass was made and freed: only the tensors above (and their .grad) are live.
    sg.zeroGrad([a, b, c]);
    for (const t of [a, b, c]) t.dispose();
    expect(sg.memory()).toEqual(before);
  });

  it('backward refuses inputs it cannot give a .grad, before computing anything', () => {
    sg.scope(() => {
      const a = sg.ones([2], { requiresGrad: true });
      a.name = 'a';
      const y = sg.mul(a, 2);
      const loss = sg.sum(y);
      const frozen = sg.ones([2]);
      expect(() => loss.backward(undefined, { inputs: [y] })).toThrow(/^backward: inputs\[0\] \(tensor #\d+ \[2\]\) is the output of an op, not a leaf: only leaves receive .grad$/);
      expect(() => loss.backward(undefined, { inputs: [frozen] })).toThrow(/^backward: inputs\[0\] \(tensor #\d+ \[2\]\) does not require gradients$/);
      expect(() => loss.backward(undefined, { inputs: [a, 3 as never] })).toThrow('backward: inputs[1] is not a Tensor (got number)');
      expect(() => loss.backward(undefined, { inputs: a as never })).toThrow('backward: inputs must be a non-empty array of leaf tensors that require gradients');
      expect(() => loss.backward(undefined, { inputs: [] })).toThrow('backward: inputs must be a non-empty array of leaf tensors that require gradients, got []');
      expect(() => loss.backward(undefined, { input: [a] } as never)).toThrow("backward: unknown option 'input' (expected inputs)");
      expect(a.grad).toBeNull();
      expect(y.node).not.toBeNull(); // the graph is still there
      loss.backward(undefined, { inputs: [a] });
      expect(Array.from(a.grad!.dataSync())).toEqual([2, 2]);
      a.grad!.dispose();
    });
  });

  it('a deep chain does not overflow the stack', () => {
    sg.scope(() => {
      const x = sg.fromArray([1], [1], { ...f64, requiresGrad: true });
      let y = x;
      for (let i = 0; i < 20000; i++) y = sg.add(y, 1);
      y.backward();
      expect(x.grad!.dataSync()[0]).toBe(1);
      x.grad!.dispose();
    });
  });
});

describe('autograd refuses graphs it cannot differentiate correctly', () => {
  it('a second backward through a released graph throws, naming the tensor, and changes nothing', () => {
    sg.scope(() => {
      const x = sg.fromArray([2, 3], [2], { ...f64, requiresGrad: true });
      const h = sg.mul(x, 3);
      const l1 = sg.sum(h);
      const l2 = sg.sum(sg.square(h));
      l1.backward();
      expect(Array.from(x.grad!.dataSync())).toEqual([3, 3]);
      expect(h.releasedOp).toBe('mulScalar');
      // Before the check, h was taken for a leaf: x.grad stayed [3,3] and h.grad became [12,18].
      expect(() => l2.backward()).toThrow(new RegExp(`tensor #${h.id} \\[2\\] \\(made by 'mulScalar'\\).*earlier backward\\(\\) already released`));
      expect(Array.from(x.grad!.dataSync())).toEqual([3, 3]);
      expect(h.grad).toBeNull();
      // The same loss twice; a refused backward leaves nothing behind (the check runs before the seed is made).
      const live = sg.memory().tensors;
      expect(() => l1.backward()).toThrow(/made by 'sum'.*already released/);
      expect(() => l1.backward(sg.ones([], f64))).toThrow(/already released/);
      expect(sg.memory().tensors).toBe(live + 1); // just the ones([]) made for the second call
      // The supported way: both losses in one graph, one backward.
      sg.zeroGrad([x]);
      const h2 = sg.mul(x, 3);
      sg.add(sg.sum(h2), sg.sum(sg.square(h2))).backward();
      expect(Array.from(x.grad!.dataSync())).toEqual([3 + 2 * 6 * 3, 3 + 2 * 9 * 3]);
      x.grad!.dispose();
    });
  });

  it('an input overwritten in place after the op read it (an optimizer step) is refused before any gradient is written', () => {
    sg.scope(() => {
      const w = sg.fromArray([2], [1], { ...f64, requiresGrad: true });
      const x = sg.fromArray([3], [1], { ...f64, requiresGrad: true });
      const opt = new sg.Adam([w], { lr: 1 });
      const lossA = sg.sum(sg.mul(w, x));
      const lossB = sg.sum(sg.square(w));
      lossB.backward();
      opt.step();
      expect(w.dataSync()[0]).not.toBe(2);
      // Before the check, x.grad was [1] (the updated w) instead of [2].
      expect(() => lossA.backward()).toThrow(new RegExp(`input 0 of 'mul' \\(tensor #${w.id} \\[1\\]\\) was overwritten in place`));
      expect(x.grad).toBeNull();
      opt.dispose();
      w.grad?.dispose();
    });
  });

  it("the output of an op whose backward reads it (exp, sqrt, sigmoid, tanh) overwritten in place is refused; another op's is not", () => {
    sg.scope(() => {
      const inp = sg.fromArray([1, 3, 5, 7, 9, 11, 13, 15], [4, 2, 1, 1], f64);
      const ones = sg.ones([2], f64);
      const half = (x: sg.Tensor): sg.Tensor => sg.div(x, sg.fromArray([2, 2], [2], f64));
      for (const [name, f] of [['exp', sg.exp], ['sqrt', sg.sqrt], ['sigmoid', sg.sigmoid], ['tanh', sg.tanh], ['div', half]] as const) {
        const x = sg.fromArray([0.5, 1], [2], { ...f64, requiresGrad: true });
        const y = f(x);
        // batch norm writes its running mean in place: here a detach()ed view of y, which shares y's storage (before
        // the check, backward read the batch means).
        sg.noGrad(() => sg.batchNorm2d(inp, ones, sg.zeros([2], f64), y.detach(), sg.ones([2], f64), { training: true, momentum: 1 }));
        expect(() => sg.sum(y).backward(), name).toThrow(new RegExp(`^backward: the output of '${name}' \\(tensor #${y.id} \\[2\\]\\) was overwritten in place`));
        expect(x.grad).toBeNull();
      }
      // An op whose backward does not read its output (add) may have it overwritten: its gradient is still right.
      const a = sg.fromArray([0.5, 1], [2], { ...f64, requiresGrad: true });
      const y = sg.add(a, a);
      sg.noGrad(() => sg.batchNorm2d(inp, ones, sg.zeros([2], f64), y.detach(), sg.ones([2], f64), { training: true, momentum: 1 }));
      sg.sum(y).backward();
      expect(Array.from(a.grad!.dataSync())).toEqual([2, 2]);
    });
  });

  it('an input overwritten in place is refused only by ops whose backward reads its values (as PyTorch checks saved tensors)', () => {
    sg.scope(() => {
      const w = sg.uniform([1, 1, 2, 2], -1, 1, { ...f64, requiresGrad: true, rng: new sg.Rng(3) });
      const x = sg.uniform([1, 1, 2, 2], -1, 1, { ...f64, requiresGrad: true, rng: new sg.Rng(4) });
      const opt = new sg.Adam([w], { lr: 1 });
      // Each op here reads w directly and needs only shapes for its gradient: after w changes it still backpropagates,
      // to the same gradient as the same graph made after the change (these gradients do not depend on w).
      const shapeOnly = (): sg.Tensor => sg.sum(sg.concat([
        sg.sum(w, [1, 2, 3]), sg.mean(w, [1, 2, 3]), sg.sum(sg.upsampleNearest2d(w, 2), [1, 2, 3]),
        sg.sum(sg.concat([w, w], 3), [1, 2, 3]), sg.sum(sg.slice(w, [0, 0, 0, 1], [1, 1, 2, 1]), [1, 2, 3]),
        sg.sum(sg.pad(w, [1, 1, 3, 3], [0, 0, 1, 0]), [1, 2, 3]), sg.sum(sg.permute(w, [0, 1, 3, 2]), [1, 2, 3]),
        sg.reshape(sg.sum(sg.broadcastTo(w, [3, 1, 2, 2])), [1]),
        sg.sum(sg.addScalar(w, 1), [1, 2, 3]), sg.sum(sg.mulScalar(w, 3), [1, 2, 3]), sg.sum(sg.divScalar(w, 2), [1, 2, 3]),
        sg.sum(sg.rsubScalar(w, 1), [1, 2, 3]), sg.sum(sg.neg(w), [1, 2, 3]), sg.sum(sg.sub(w, x), [1, 2, 3]),
        sg.sum(sg.add(sg.reshape(w, [4]), sg.reshape(x, [4])), [0], true),
      ], 0));
      const before = shapeOnly();
      // mul reads its inputs, here a view of w (reshape shares w's storage): refused.
      const reads = sg.sum(sg.mul(sg.reshape(w, [2, 2]), sg.reshape(x, [2, 2])));
      sg.sum(sg.square(w)).backward();
      opt.step();
      sg.zeroGrad([w]);
      before.backward();
      const got = Array.from(w.grad!.dataSync());
      sg.zeroGrad([w, x]);
      shapeOnly().backward();
      expect(got).toEqual(Array.from(w.grad!.dataSync()));
      expect(() => reads.backward()).toThrow(/^backward: input 0 of 'mul' \(tensor #\d+ \[2,2\]\) was overwritten in place/);
      sg.zeroGrad([w, x]);
      opt.dispose();
    });
  });

  it('Adam refuses a parameter that is not a leaf; batch norm, running statistics that require gradients or share a storage', () => {
    sg.scope(() => {
      const x = sg.fromArray([1, 2], [2], { ...f64, requiresGrad: true });
      const y = sg.mulScalar(x, 3);
      expect(() => new sg.Adam([x, y])).toThrow(`Adam: params[1] (tensor #${y.id}) is the output of an op ('mulScalar'), not a leaf: it never receives a .grad`);
      const rm = sg.zeros([2], { ...f64, requiresGrad: true });
      const input = sg.uniform([2, 2, 2, 2], -1, 1, f64);
      expect(() => sg.batchNorm2d(input, sg.ones([2], f64), sg.zeros([2], f64), rm, sg.ones([2], f64), { training: false }))
        .toThrow('batchNorm2d: runningMean requires gradients, which batchNorm2d in eval mode does not give');
      // One storage as both running statistics (or as one and another operand): refused on every backend (WebGPU
      // cannot bind it twice for writing; the CPU would give whichever update came last).
      const r = sg.ones([2], f64);
      expect(() => sg.batchNorm2d(input, sg.ones([2], f64), sg.zeros([2], f64), r, r, { training: true }))
        .toThrow('batchNorm2d: runningMean shares its storage with runningVar; the running statistics need a storage of their own each');
      const g = sg.ones([2], f64);
      expect(() => sg.batchNorm2d(input, g, sg.zeros([2], f64), sg.zeros([2], f64), sg.reshape(g, [2]), { training: true }))
        .toThrow('batchNorm2d: runningVar shares its storage with gamma');
    });
  });

  it("disposing a leaf frees its .grad too (backward keeps .grad out of scopes, so nothing else would)", () => {
    const before = sg.memory();
    for (let i = 0; i < 5; i++) {
      sg.scope(() => {
        const x = sg.fromArray([1, 2], [2], { ...f64, requiresGrad: true });
        sg.sum(sg.mul(x, x)).backward();
        expect(x.grad).not.toBeNull();
      });
    }
    expect(sg.memory()).toEqual(before);
  });

  it('loadStateDict counts as an in-place change; batch norm running statistics do not block backward', async () => {
    const bn = new sg.BatchNorm2d(2);
    const x = sg.uniform([2, 2, 3, 3], -1, 1, { requiresGrad: true });
    // The layer twice in one graph: each forward updates the running statistics, which backward never reads.
    const loss = sg.add(sg.mean(bn.forward(x)), sg.mean(sg.square(bn.forward(x))));
    loss.backward();
    expect(x.grad).not.toBeNull();
    x.grad!.dispose();
    x.grad = null;
    const y = sg.sum(bn.forward(x));
    const state = new Map([...bn.stateDict()].map(([k, t]) => [k, { shape: t.shape, data: t.dataSync() }]));
    await bn.loadStateDict(state);
    expect(() => y.backward()).toThrow(/input 1 of 'batchNorm2d' \(tensor #\d+ \[2\] 'weight'\) was overwritten in place/);
    bn.dispose();
    x.dispose();
  });

  it('backward after the scope that made the graph ended says so', () => {
    const x = sg.fromArray([1, 2], [2], { ...f64, requiresGrad: true });
    const loss = sg.scope(() => sg.sum(sg.mul(x, sg.exp(x))));
    expect(() => loss.backward()).toThrow(/backward through 'mul' \(tensor #\d+ \[2\]\): .*was (disposed|used after dispose).*call backward\(\) inside the scope\(\) that made the graph/);
    loss.dispose();
    x.grad?.dispose();
    x.dispose();
  });

  it('a custom op whose backward passes gy on unchanged leaks nothing; a .grad of the wrong shape is refused before any is set', () => {
    const x = sg.fromArray([1, 2, 3], [3], { ...f64, requiresGrad: true });
    const identity = (t: sg.Tensor): sg.Tensor => sg.runOp({
      op: 'identity', inputs: [t], outputs: [t.shape], flops: 0,
      kernel: (be, [o], [ts]) => be.copy(ts, [1], 0, o, [1], 0, t.shape),
      backward: (gy) => [gy],
    })[0];
    const live = sg.memory().tensors;
    const h1 = identity(x), h2 = identity(h1), loss = sg.sum(h2);
    loss.backward(); // (outside any scope, which would have freed a leak at its end)
    expect(Array.from(x.grad!.dataSync())).toEqual([1, 1, 1]);
    for (const t of [h1, h2, loss, x.grad!]) t.dispose();
    x.grad = null;
    expect(sg.memory().tensors).toBe(live); // before, one gradient per identity leaked
    // A .grad of another shape (set by hand) would broadcast in the sum: refused, and no other .grad is touched.
    const y = sg.fromArray([5], [1], { ...f64, requiresGrad: true });
    x.grad = sg.zeros([1], f64).keep();
    y.grad = sg.ones([1], f64).keep();
    expect(() => sg.sum(sg.mul(x, y)).backward()).toThrow(/tensor #\d+ \[3\] holds a \.grad of \[1\] float64 on 'cpu', not its own shape/);
    expect(y.grad.dataSync()[0]).toBe(1);
    for (const t of [x.grad, y.grad, x, y]) t.dispose();
  });

  it('a custom op returning one gradient tensor for a repeated input and another input gets each its sum', () => {
    const x = sg.fromArray([1, 2], [2], { ...f64, requiresGrad: true });
    const y = sg.fromArray([3, 4], [2], { ...f64, requiresGrad: true });
    const op = sg.runOp({
      op: 'sum3', inputs: [x, x, y], outputs: [[2]], flops: 0,
      kernel: (be, [o], [a]) => be.copy(a, [1], 0, o, [1], 0, [2]),
      backward: (gy) => { const A = sg.mul(gy, 2); return [A, A, A]; },
    })[0];
    const total = sg.sum(op);
    const live = sg.memory().tensors;
    total.backward(); // before, the second use of A read it after the first sum had freed it
    expect(Array.from(x.grad!.dataSync())).toEqual([4, 4]);
    expect(Array.from(y.grad!.dataSync())).toEqual([2, 2]);
    expect(sg.memory().tensors).toBe(live + 2); // the two .grad tensors, nothing else
    for (const t of [x.grad!, y.grad!, x, y, op, total]) t.dispose();
  });

  it('detach() shares the values but stops the gradient', () => {
    sg.scope(() => {
      const x = sg.fromArray([1, 2], [2], { ...f64, requiresGrad: true });
      const d = sg.mul(x, 2).detach();
      expect(d.requiresGrad).toBe(false);
      expect(Array.from(d.dataSync())).toEqual([2, 4]);
      sg.sum(sg.mul(sg.mul(x, 2), d)).backward();
      expect(Array.from(x.grad!.dataSync())).toEqual([4, 8]); // d/dx (2x * d) with d constant = 2d
      x.grad!.dispose();
    });
  });

  it('pow(x, 0) has gradient 0, also at x = 0', () => {
    sg.scope(() => {
      const x = sg.fromArray([0, 2, -1], [3], { ...f64, requiresGrad: true });
      sg.sum(sg.pow(x, 0)).backward();
      expect(Array.from(x.grad!.dataSync())).toEqual([0, 0, 0]);
      x.grad!.dispose();
    });
  });

  it('div by a number is a true division', () => {
    sg.scope(() => {
      const x = sg.fromArray([49, 3, -10], [3], f64);
      expect(Array.from(sg.div(x, 49).dataSync())).toEqual([1, 3 / 49, -10 / 49]);
      expect(Array.from(sg.div(x, 0.1).dataSync())).toEqual([49 / 0.1, 3 / 0.1, -10 / 0.1]);
    });
  });

  it('noGrad and withNanGuard refuse an async fn (their mode would end at its first await)', async () => {
    const x = sg.fromArray([1], [1], { requiresGrad: true });
    expect(() => sg.noGrad(async () => { await null; return sg.mul(x, 3); })).toThrow(/noGrad: fn returned a Promise/);
    expect(sg.isGradEnabled()).toBe(true);
    expect(() => sg.withNanGuard(async () => 1)).toThrow(/withNanGuard: fn returned a Promise/);
    await new Promise((r) => setTimeout(r, 0));
    x.dispose();
  });
});

describe('tensors and memory', () => {
  it('float32 uniform draws stay in [lo, hi) (a float64 draw can round to hi, or below a lo float32 cannot hold)', () => {
    // Values a float64 draw can take just below 1 round to 1 in float32; they must come out as the float32 below 1.
    const t = sg.uniform([200_000], 1 - 2 ** -20, 1, { rng: new sg.Rng(3) });
    const v = t.dataSync();
    let max = 0;
    for (let i = 0; i < v.length; i++) max = Math.max(max, v[i]);
    expect(max).toBe(Math.fround(1 - 2 ** -24)); // the largest float32 below 1
    t.dispose();
    // And not below lo where float32 cannot hold lo: every value is a float32 within [lo, hi).
    const lo = 1 + 1e-9, hi = 1.0000002;
    const u = sg.uniform([1000], lo, hi, { rng: new sg.Rng(4) }).dataSync();
    expect(u.every((x) => x >= lo && x < hi)).toBe(true);
    expect(() => sg.uniform([4], 1 + 1e-9, 1 + 2e-9)).toThrow(/uniform: no float32 value lies in/);
    expect(() => sg.uniform([4], 1e-46, 2e-46)).toThrow(/uniform: no float32 value lies in/);
    expect(Array.from(sg.uniform([2], 0.1, 0.1).dataSync())).toEqual([Math.fround(0.1), Math.fround(0.1)]);
  });

  it('memory(backend) counts the tensors on that backend', () => {
    const before = sg.memory('cpu').tensors;
    const x = sg.zeros([3]);
    expect(sg.memory('cpu').tensors).toBe(before + 1);
    x.dispose();
    expect(sg.memory('cpu').tensors).toBe(before);
  });

  it('creation, readback and the seeded RNG', async () => {
    const a = sg.uniform([3, 4], 0, 1, { rng: new sg.Rng(7) });
    const b = sg.uniform([3, 4], 0, 1, { rng: new sg.Rng(7) });
    expect(Array.from(await a.data())).toEqual(Array.from(await b.data()));
    // 1e5 draws: the standard error of the mean is 3/sqrt(1e5) ~ 0.01, so 0.05 is five of them.
    const n = sg.normal([100000], 2, 3, { rng: new sg.Rng(1), dtype: 'float64' });
    const v = Array.from(n.dataSync());
    const mean = v.reduce((s, x) => s + x, 0) / v.length;
    const sd = Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length);
    expect(mean).toBeCloseTo(2, 1);
    expect(sd).toBeCloseTo(3, 1);
    expect(await sg.full([], 5).item()).toBe(5);
    for (const t of [a, b, n]) t.dispose();
  });

  it('scope disposes what it created except results and kept tensors', () => {
    const before = sg.memory();
    const kept = sg.scope(() => {
      const a = sg.ones([4]);
      const b = sg.add(a, 1);
      sg.zeros([100]).keep();
      const inner = sg.scope(() => sg.mul(b, 2));
      return { inner };
    });
    // inner survived; the kept zeros too; a and b were disposed.
    expect(sg.memory().tensors).toBe(before.tensors + 2);
    expect(Array.from(kept.inner.dataSync())).toEqual([4, 4, 4, 4]);
    kept.inner.dispose();
  });

  it('reshape shares storage and counts it once', () => {
    const before = sg.memory();
    const a = sg.ones([2, 6]);
    const b = sg.reshape(a, [3, 4]);
    expect(sg.memory().storages).toBe(before.storages + 1);
    a.dispose();
    expect(Array.from(b.dataSync())).toHaveLength(12);
    b.dispose();
    expect(sg.memory()).toEqual(before);
  });

  it('a training loop inside scope keeps the live-tensor count constant', () => {
    const rng = new sg.Rng(3);
    const w1 = sg.normal([4, 2, 3, 3], 0, 0.3, { rng }).keep();
    const w2 = sg.normal([1, 4, 3, 3], 0, 0.3, { rng }).keep();
    const gamma = sg.ones([4]).keep();
    const beta = sg.zeros([4]).keep();
    const rm = sg.zeros([4]).keep();
    const rv = sg.ones([4]).keep();
    let params = [w1, w2, gamma, beta];
    const x = sg.uniform([2, 2, 8, 8], 0, 1, { rng }).keep();
    const target = sg.uniform([2, 1, 8, 8], 0, 1, { rng }).keep();
    const counts: number[] = [];
    const losses: number[] = [];
    for (let step = 0; step < 30; step++) {
      params = sg.scope(() => {
        for (const p of params) p.requiresGrad = true;
        const [a, b, g, bb] = params;
        let h = sg.conv2d(x, a, { padding: 'same' });
        h = sg.batchNorm2d(h, g, bb, rm, rv, { training: true });
        h = sg.leakyRelu(h, 0.01);
        const y = sg.sigmoid(sg.conv2d(h, b, { padding: 'same' }));
        const loss = sg.mseLoss(y, target);
        loss.backward();
        losses.push(loss.dataSync()[0]);
        const next = sg.noGrad(() => params.map((p) => sg.sub(p, sg.mul(p.grad!, 0.5)).keep()));
        sg.zeroGrad(params);
        for (const p of params) p.dispose();
        return next;
      });
      counts.push(sg.memory().tensors);
    }
    expect(new Set(counts.slice(1)).size).toBe(1);
    expect(losses[losses.length - 1]).toBeLessThan(losses[0]);
    for (const t of [...params, rm, rv, x, target]) t.dispose();
  });
});
