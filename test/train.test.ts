/**
 * The training loop, optimisers and checkpoints: overfitting one small batch cuts the loss 10x (cpu here,
 * webgpu in webgpu-training); batch-norm train/eval semantics; checkpoint round trip; a malformed header is
 * rejected clearly; resuming from a checkpoint gives the same next losses as not stopping.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import * as sg from '../src/engine/index.js';
import { readSafetensors, writeSafetensors } from '../src/engine/io/safetensors.js';
import { buildAutoencoder } from '../src/models/autoencoder.js';
import { DEFAULTS, trainStep } from '../src/experiments/pipeline.js';
import { batchRanges, loadCheckpoint, psnr, saveCheckpoint, trainAutoencoder, type TrainResult } from '../src/experiments/train.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'skipgrad-train-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Smooth synthetic images: shifted sinusoid blobs, size x size. */
function images(n: number, size: number, seed: number): Float32Array[] {
  const rng = new sg.Rng(seed);
  return Array.from({ length: n }, () => {
    const fx = rng.uniform(1, 3), fy = rng.uniform(1, 3), ph = rng.uniform(0, 6);
    return Float32Array.from({ length: size * size }, (_, i) => {
      const y = Math.floor(i / size), x = i % size;
      return 0.5 + 0.35 * Math.sin((fx * x) / size * 6.28 + ph) * Math.cos((fy * y) / size * 6.28);
    });
  });
}

const small = { inputSize: 32, depth: 3, baseChannels: 4 };

describe('optimisers and schedules', () => {
  it('Adam and AdamW match the reference formulas, also with beta1 changed between steps (as one-cycle schedules do)', () => {
    for (const [decoupled, beta1s] of [[false, [0.9, 0.9, 0.9]], [true, [0.9, 0.9, 0.9]], [true, [0.95, 0.9, 0.85]]] as const) {
      const p = sg.fromArray([0.5, -1, 2], [3], { dtype: 'float64', requiresGrad: true });
      const opt = new sg.Adam([p], { lr: 0.1, weightDecay: 0.1, decoupled });
      const ref = [0.5, -1, 2], m = [0, 0, 0], v = [0, 0, 0];
      for (let t = 1; t <= 3; t++) {
        const b1 = beta1s[t - 1];
        opt.beta1 = b1;
        sg.scope(() => sg.sum(sg.square(p)).backward());
        const g = Array.from(p.grad!.dataSync());
        opt.step();
        sg.zeroGrad([p]);
        // PyTorch's Adam(W) with the group's current beta1, in the moment and in the bias correction.
        for (let i = 0; i < 3; i++) {
          const gi = decoupled ? g[i] : g[i] + 0.1 * ref[i];
          if (decoupled) ref[i] *= 1 - 0.1 * 0.1;
          m[i] = b1 * m[i] + (1 - b1) * gi;
          v[i] = 0.999 * v[i] + 0.001 * gi * gi;
          ref[i] -= (0.1 * (m[i] / (1 - b1 ** t))) / (Math.sqrt(v[i] / (1 - 0.999 ** t)) + 1e-8);
        }
        Array.from(p.dataSync()).forEach((x, i) => expect(x).toBeCloseTo(ref[i], 12));
      }
      for (const bad of [1, -0.1, NaN]) expect(() => { opt.beta1 = bad; }).toThrow(`Adam: beta1 must be a number in [0, 1), got ${bad}`);
      expect(opt.beta1).toBe(beta1s[2]);
      opt.dispose();
      p.dispose();
    }
  });

  it('one-cycle warms up from lr/25 to lr and anneals: the rates of PyTorch OneCycleLR', () => {
    const oc = sg.oneCycleSchedule(0.01, 250);
    expect(oc.lr(0)).toBeCloseTo(4e-4, 10);
    expect(Math.max(...Array.from({ length: 250 }, (_, e) => oc.lr(e)))).toBeCloseTo(0.01, 6);
    expect(oc.lr(249)).toBeLessThan(1e-6);
    // torch 1.13 OneCycleLR(SGD, max_lr=0.01, total_steps=250), the lr before each of these steps (printed by torch):
    const torch: Array<[number, number]> = [[0, 0.0003999999999999993], [10, 0.0008261032461369475], [37, 0.0052], [74, 0.01],
      [75, 0.009999194342867933], [100, 0.009465177382363455], [150, 0.006024936669278077], [200, 0.0018129127997363462],
      [240, 6.515814103891564e-05], [249, 4e-08]];
    for (const [epoch, lr] of torch) expect(Math.abs(oc.lr(epoch) - lr), `epoch ${epoch}`).toBeLessThan(1e-12);
  });

  it("reduce-on-plateau's state (rate, best, wait) carries over a resume: the resumed schedule continues the count", () => {
    const values = [10, 11, 11, 12, 12, 12, 12, 12];
    const whole = sg.reduceOnPlateauSchedule(1, 0.5, 3);
    const lrs = values.map((v) => (whole.report!(v), whole.lr(0)));
    const first = sg.reduceOnPlateauSchedule(1, 0.5, 3);
    for (const v of values.slice(0, 5)) first.report!(v); // stopped after epoch 5: best 12, one epoch without improvement
    const state = JSON.parse(JSON.stringify(first.state())) as Record<string, number>;
    expect(state).toEqual({ current: 1, best: 12, wait: 1 });
    const resumed = sg.reduceOnPlateauSchedule(1, 0.5, 3);
    resumed.load(state);
    expect(values.slice(5).map((v) => (resumed.report!(v), resumed.lr(0)))).toEqual(lrs.slice(5));
    expect(lrs.slice(5)).toEqual([1, 0.5, 0.5]);
  });

  it('psnr of a mean squared error on [0, 1] images: 10 log10(1 / mse)', () => {
    expect(psnr(0.01)).toBeCloseTo(20, 12);
    expect(psnr(1)).toBe(0);
    expect(psnr(1e-3)).toBeCloseTo(30, 12);
    expect(psnr(0)).toBe(99);
  });

  it("reduce-on-plateau follows Keras as the authors call it: reduce when wait >= patience, improvements must exceed minDelta (1 dB)", () => {
    const lrs = (values: number[], patience: number, minDelta?: number): number[] => {
      const pl = sg.reduceOnPlateauSchedule(1, 0.5, patience, 0, minDelta);
      return values.map((v) => (pl.report!(v), pl.lr(0)));
    };
    // Two epochs without improvement after the best (11) halve the lr at once; the count then starts again.
    expect(lrs([10, 11, 11, 11, 11, 11], 2, 1e-4)).toEqual([1, 1, 1, 0.5, 0.5, 0.25]);
    // An improvement resets the count.
    expect(lrs([10, 11, 11, 12, 12, 12], 2, 1e-4)).toEqual([1, 1, 1, 1, 1, 0.5]);
    // Below minDelta (default 1 dB, the authors' min_delta=1) is no improvement.
    expect(lrs([10, 10.5, 10.99, 11.01], 2)).toEqual([1, 1, 0.5, 0.5]);
    expect(lrs([10, 10.5, 10.99, 11.01], 2, 1e-4)).toEqual([1, 1, 1, 1]);
    expect(lrs([10, 10.00005, 10.00009], 2, 1e-4)).toEqual([1, 1, 0.5]);
    // patience 1: every epoch without improvement halves it.
    expect(lrs([5, 4, 3], 1)).toEqual([1, 0.5, 0.25]);
  });

  it("onecycle-steps is the authors' OneCycleLR: linear, beta1 cycled, made for int(N / 32) steps per epoch but stepped per epoch", () => {
    // The authors' call for carpet (280 train/good images): OneCycleLR(AdamW, max_lr=0.01, epochs=250,
    // steps_per_epoch=int(280 / 32), anneal_strategy='linear'), stepped once per epoch. torch 1.13, lr and betas[0]
    // before each of these epochs (printed by torch):
    expect(sg.authorsStepsPerEpoch(280)).toBe(8);
    const s = sg.makeSchedule('onecycle-steps', 0.01, 250, sg.authorsStepsPerEpoch(280));
    const torch: Array<[number, number, number]> = [[0, 0.0004, 0.95], [1, 0.0004160267111853089, 0.9498330550918197],
      [10, 0.0005602671118530886, 0.948330550918197], [100, 0.002002671118530885, 0.9333055091819699],
      [200, 0.00360534223706177, 0.9166110183639399], [249, 0.004390651085141904, 0.9084307178631051]];
    for (const [epoch, lr, beta1] of torch) {
      expect(Math.abs(s.lr(epoch) - lr), `lr, epoch ${epoch}`).toBeLessThan(1e-12);
      expect(Math.abs(s.beta1!(epoch) - beta1), `beta1, epoch ${epoch}`).toBeLessThan(1e-12);
    }
    for (let e = 1; e < 250; e++) expect(s.lr(e)).toBeGreaterThan(s.lr(e - 1));
    expect(() => s.lr(250)).toThrow(/oneCycleSteps: epoch 250 is outside the schedule's 250 epochs/);
    expect(() => s.beta1!(-1)).toThrow(/oneCycleSteps: epoch -1 is outside/);
    expect(() => sg.makeSchedule('onecycle-steps', 0.01, 10, 0)).toThrow(/stepsPerEpoch must be a positive integer, got 0/);
    // int(N / 32) of the whole train/good folder; at least 1 (PyTorch refuses a cycle of 0 steps).
    expect([31, 32, 63, 64, 391].map(sg.authorsStepsPerEpoch)).toEqual([1, 1, 1, 2, 12]);
    // The plain one-cycle keeps beta1 where it is.
    expect(sg.makeSchedule('onecycle', 0.01, 10).beta1).toBeUndefined();
  });

  it("one-cycle's linear annealing and momentum cycling over a whole cycle: PyTorch OneCycleLR's both phases", () => {
    const oc = sg.oneCycleSchedule(0.01, 10, { anneal: 'linear', momentum: { base: 0.85, max: 0.95 } });
    // torch 1.13 OneCycleLR(AdamW, max_lr=0.01, total_steps=10, anneal_strategy='linear'):
    const torch: Array<[number, number]> = [[0.0004, 0.95], [0.005200000000000001, 0.8999999999999999], [0.01, 0.85],
      [0.008571434285714287, 0.8642857142857142], [0.007142868571428571, 0.8785714285714286], [0.005714302857142858, 0.8928571428571428],
      [0.004285737142857143, 0.9071428571428571], [0.0028571714285714287, 0.9214285714285714], [0.001428605714285715, 0.9357142857142857],
      [3.999999999976245e-08, 0.95]];
    torch.forEach(([lr, beta1], e) => {
      expect(Math.abs(oc.lr(e) - lr), `lr, epoch ${e}`).toBeLessThan(1e-12);
      expect(Math.abs(oc.beta1!(e) - beta1), `beta1, epoch ${e}`).toBeLessThan(1e-12);
    });
    expect(() => sg.oneCycleSchedule(0.01, 10, { anneal: 'cosine' as never })).toThrow("oneCycle: anneal must be 'cos' or 'linear', got \"cosine\"");
    expect(() => sg.oneCycleSchedule(0.01, 10, { momentum: { base: 0.95, max: 0.85 } })).toThrow('oneCycle: momentum must have 0 <= base <= max < 1, got base 0.95, max 0.85');
    // The options are an object: a positional pctStart (as in PyTorch's signature) is refused, not ignored.
    expect(() => sg.oneCycleSchedule(0.01, 10, 0.5 as never)).toThrow('oneCycle: options must be an object, got 0.5');
    expect(() => sg.oneCycleSchedule(0.01, 10, { pct_start: 0.5 } as never)).toThrow("oneCycle: unknown option 'pct_start' (expected pctStart, divFactor, finalDivFactor, anneal, momentum)");
  });

  it('one-cycle refuses epochs outside its schedule instead of rising again', () => {
    const oc = sg.oneCycleSchedule(1, 10);
    expect(oc.lr(9)).toBeLessThan(1e-4);
    for (const e of [10, 12, -1, NaN]) expect(() => oc.lr(e), String(e)).toThrow(/oneCycle: epoch .* is outside the schedule's 10 epochs \(0 to 9\)/);
  });
});

describe('batch norm modes', () => {
  it('train uses batch statistics and updates running ones; eval uses running statistics only', () => {
    const bn = new sg.BatchNorm2d(2);
    const x = sg.fromArray([1, 2, 3, 4, 10, 20, 30, 40], [1, 2, 2, 2]);
    sg.scope(() => {
      const y = Array.from(bn.forward(x).dataSync());
      expect(y[0] + y[1] + y[2] + y[3]).toBeCloseTo(0, 5); // normalised with the batch mean
      expect(Array.from(bn.runningMean.dataSync())).toEqual([0.25, 2.5].map((v) => Math.fround(v)));
      bn.eval();
      const rm = Array.from(bn.runningMean.dataSync());
      const rv = Array.from(bn.runningVar.dataSync());
      const z = Array.from(bn.forward(x).dataSync());
      expect(z[0]).toBeCloseTo((1 - rm[0]) / Math.sqrt(rv[0] + 1e-5), 5);
      expect(Array.from(bn.runningMean.dataSync())).toEqual(rm); // eval leaves them alone
    });
    x.dispose();
    bn.dispose();
  });
});

describe('training loop', () => {
  it("the command line's training step listens to no signal: Ctrl-C ends it at once", async () => {
    // A SIGINT listener would run only between event-loop turns, which a CPU step holds off for its whole length
    // (20 s at 256x256): Ctrl-C must keep its default action.
    const on = vi.spyOn(process, 'on');
    const once = vi.spyOn(process, 'once');
    try {
      const cfg = { ...DEFAULTS, out: path.join(tmp, 'signals'), categories: ['woven'], channels: 2, epochs: 1, trainLimit: 4, progress: false };
      const r = await trainStep(cfg, 'woven', 'aesc', await sg.useBackend('cpu'));
      expect(r.history).toHaveLength(1);
      expect([...on.mock.calls, ...once.mock.calls].filter(([event]) => event === 'SIGINT')).toEqual([]);
    } finally {
      on.mockRestore();
      once.mockRestore();
    }
  });

  it('overfitting one small batch cuts the loss 10x (cpu)', async () => {
    const model = buildAutoencoder('esann', { skips: true, ...small, seed: 1 });
    const data = images(4, 32, 1);
    const r = await trainAutoencoder({ model, train: data, validation: data.slice(0, 2), epochs: 60, batchSize: 4, lr: 0.01, seed: 1, progress: false });
    expect(r.stepLosses[r.stepLosses.length - 1]).toBeLessThan(r.stepLosses[0] / 10);
    expect(r.bestPsnr).toBeGreaterThan(15);
    model.dispose();
  });

  it("onecycle-steps in training: each epoch's lr and beta1 are the authors' cycle for int((train + validation) / 32) steps, and Adam steps with them", async () => {
    const model = buildAutoencoder('esann', { skips: true, ...small, seed: 3 });
    const data = images(64, 32, 5);
    const betas: number[] = [];
    const trace = sg.startTrace();
    const r = await trainAutoencoder({
      model, train: data.slice(0, 60), validation: data.slice(60), epochs: 3, batchSize: 20, lr: 0.01, seed: 1, progress: false, schedule: 'onecycle-steps',
    }).finally(() => sg.stopTrace());
    for (const e of trace.entries) if (e.op === 'adam') betas.push(e.attrs!.beta1 as number);
    // 64 images: 2 steps per epoch in the authors' count (not this run's 3 batches of 20).
    const authors = sg.makeSchedule('onecycle-steps', 0.01, 3, 2);
    expect(r.history.map((h) => h.lr)).toEqual([0, 1, 2].map((e) => authors.lr(e)));
    expect(r.history.map((h) => h.beta1)).toEqual([0, 1, 2].map((e) => authors.beta1!(e)));
    expect(r.history[0].beta1).toBe(0.95);
    expect(new Set(r.history.map((h) => h.beta1)).size).toBe(3);
    // Each epoch's 3 steps x 12 parameter tensors ran with that epoch's beta1.
    expect(betas).toHaveLength(3 * 3 * model.parameters().length);
    const perStep = model.parameters().length;
    betas.forEach((b, i) => expect(b, `adam call ${i}`).toBe(r.history[Math.floor(i / (3 * perStep))].beta1));
    model.dispose();
  });

  it('each step feeds freshly stained images and scores the output against the clean ones', async () => {
    const model = buildAutoencoder('esann', { skips: true, ...small, seed: 2 });
    const data = images(4, 32, 3);
    const seen: Array<{ x: Float32Array; out: Float32Array }> = [];
    const forward = model.forward.bind(model);
    model.forward = (x) => {
      const r = forward(x);
      if (model.training) seen.push({ x: x.dataSync() as Float32Array, out: r.output.dataSync() as Float32Array });
      return r;
    };
    const r = await trainAutoencoder({ model, train: data, validation: data.slice(0, 1), epochs: 2, batchSize: 2, lr: 1e-3, seed: 1, progress: false });
    expect(seen).toHaveLength(4); // 2 epochs x 2 steps
    const px = 32 * 32;
    const sq = (a: ArrayLike<number>, b: ArrayLike<number>): number => Array.from(a).reduce((acc, v, i) => acc + (v - b[i]) ** 2, 0);
    seen.forEach(({ x, out }, step) => {
      let loss = 0;
      for (let i = 0; i < 2; i++) {
        const input = x.subarray(i * px, (i + 1) * px);
        // The clean image it came from: the nearest; the stain changed some pixels, not all.
        const k = data.map((d) => sq(input, d)).reduce((best, v, j, all) => (v < all[best] ? j : best), 0);
        const changed = Array.from(input).filter((v, p) => v !== data[k][p]).length;
        expect(changed, `step ${step} image ${i}`).toBeGreaterThan(0);
        expect(changed).toBeLessThan(px);
        loss += sq(out.subarray(i * px, (i + 1) * px), data[k]);
      }
      // The step's loss is the MSE against the clean images (not against the stained input).
      expect(r.stepLosses[step]).toBeCloseTo(loss / (2 * px), 6);
    });
    // The same image gets a new stain each epoch.
    const inputsOf = (epoch: number): Float32Array[] => seen.slice(2 * epoch, 2 * epoch + 2).flatMap(({ x }) => [x.slice(0, px), x.slice(px)]);
    const [e0, e1] = [inputsOf(0), inputsOf(1)];
    const nearest = (x: Float32Array): number => data.map((d) => sq(x, d)).reduce((best, v, j, all) => (v < all[best] ? j : best), 0);
    for (const a of e0) for (const b of e1) if (nearest(a) === nearest(b)) expect(Array.from(a)).not.toEqual(Array.from(b));
    model.dispose();
  });

  it("Adam counts steps per parameter, as PyTorch does: one that first gets a gradient late starts at t = 1, and checkpoints keep the counts", async () => {
    const a = sg.fromArray([1], [1], { dtype: 'float64', requiresGrad: true });
    const b = sg.fromArray([1], [1], { dtype: 'float64', requiresGrad: true });
    const opt = new sg.Adam([a, b], { lr: 0.1 });
    for (let t = 1; t <= 3; t++) {
      a.grad = sg.fromArray([0.5], [1], { dtype: 'float64' });
      if (t === 3) b.grad = sg.fromArray([0.5], [1], { dtype: 'float64' });
      opt.step();
      sg.zeroGrad([a, b]);
    }
    // torch 1.13 Adam([a, b], lr=0.1), the same gradients: a 0.7000000060, b 0.9000000020 (its first step is lr
    // g / (|g| + eps); with the optimizer's t = 3 in b's bias corrections it would be 0.936).
    expect(a.dataSync()[0]).toBeCloseTo(0.700000006, 9);
    expect(b.dataSync()[0]).toBeCloseTo(0.900000002, 9);
    expect(opt.state()).toMatchObject({ step: 3, paramSteps: [3, 1] });
    // An update refused (a gradient of another dtype) counts no step for that parameter.
    a.grad = sg.fromArray([0.5], [1], { dtype: 'float32' });
    expect(() => opt.step()).toThrow('adam: gradient [1] is float32 but parameter [1] is float64');
    expect(opt.state().paramSteps).toEqual([3, 1]);
    sg.zeroGrad([a]);
    // Saved and restored with a checkpoint's moments (here through the model's own optimizer).
    const model = buildAutoencoder('esann', { skips: true, ...small, seed: 4 });
    const mopt = new sg.Adam(model.parameters(), { lr: 0.1 });
    mopt.loadSteps(7, model.parameters().map((_, i) => i % 3));
    const file = path.join(tmp, 'steps.safetensors');
    await saveCheckpoint(file, model, mopt);
    const again = new sg.Adam(model.parameters(), { lr: 0.1 });
    await loadCheckpoint(file, model, again);
    expect(again.state().step).toBe(7);
    expect(again.state().paramSteps).toEqual(model.parameters().map((_, i) => i % 3));
    expect(() => again.loadSteps(1, [1])).toThrow(`Adam: paramSteps must list a whole number >= 0 for each of the ${model.parameters().length} parameters`);
    for (const o of [opt, mopt, again]) o.dispose();
    model.dispose();
    a.dispose();
    b.dispose();
  });

  it('checkpoint round trip, and malformed files are rejected naming the problem', async () => {
    const a = buildAutoencoder('esann', { skips: true, ...small, seed: 4 });
    const b = buildAutoencoder('esann', { skips: true, ...small, seed: 5 });
    const file = path.join(tmp, 'round.safetensors');
    await saveCheckpoint(file, a, null);
    await loadCheckpoint(file, b, null);
    for (const [k, t] of a.stateDict()) expect(Array.from(b.stateDict().get(k)!.dataSync()), k).toEqual(Array.from(t.dataSync()));
    const { tensors } = readSafetensors(file);
    expect(tensors.get('encoder.0.conv.weight')!.shape).toEqual([8, 4, 5, 5]);

    const bytes = fs.readFileSync(file);
    const bad = path.join(tmp, 'bad.safetensors');
    const corrupt = Buffer.from(bytes);
    corrupt.writeBigUInt64LE(BigInt(bytes.length * 2), 0);
    fs.writeFileSync(bad, corrupt);
    expect(() => readSafetensors(bad)).toThrow(/bad\.safetensors: not a valid safetensors file \(header length \d+ exceeds the file/);
    const notJson = Buffer.from(bytes);
    notJson.write('#', 8);
    fs.writeFileSync(bad, notJson);
    expect(() => readSafetensors(bad)).toThrow(/header is not JSON/);
    writeSafetensors(bad, new Map([['w', { dtype: 'float32', shape: [2, 2], data: new Float32Array(4) }]]));
    const shapeLie = fs.readFileSync(bad).toString('latin1').replace('[2,2]', '[2,3]');
    fs.writeFileSync(bad, Buffer.from(shapeLie, 'latin1'));
    expect(() => readSafetensors(bad)).toThrow(/'w' spans 16 bytes, but shape \[2,3\] of F32 needs 24/);
    await expect(loadCheckpoint(path.join(tmp, 'missing.safetensors'), a, null)).rejects.toThrow(/missing\.safetensors: cannot read checkpoint/);
    a.dispose();
    b.dispose();
  });

  it('writeSafetensors refuses what it could not read back, and writes what it was given', () => {
    const file = path.join(tmp, 'w.safetensors');
    const w = (tensors: Array<[string, sg.FloatArray | number[], 'float32' | 'float64', number[]]>, meta?: Record<string, string>): void =>
      writeSafetensors(file, new Map(tensors.map(([n, data, dtype, shape]) => [n, { dtype, shape, data: data as sg.FloatArray }])), meta);
    // Float64 values declared float32 are stored as float32 (the offsets follow the declared dtype).
    w([['x', new Float64Array([1, 2]), 'float32', [2]], ['__proto__', [3, 4, 5], 'float64', [3]]], { a: 'b' });
    const back = readSafetensors(file);
    expect(back.tensors.get('x')).toEqual({ dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) });
    expect(back.tensors.get('__proto__')).toEqual({ dtype: 'float64', shape: [3], data: new Float64Array([3, 4, 5]) });
    expect(back.metadata).toEqual({ a: 'b' });
    const before = fs.readFileSync(file);
    expect(() => w([['__metadata__', [1], 'float32', [1]]])).toThrow("writeSafetensors: '__metadata__' is reserved for the metadata and cannot name a tensor");
    expect(() => w([['y', [1], 'int8' as never, [1]]])).toThrow(`writeSafetensors: 'y' has dtype "int8"; expected float32 or float64`);
    expect(() => w([['y', [1, 2], 'float32', [3]]])).toThrow("writeSafetensors: 'y' has 2 values for shape [3]");
    expect(() => w([['y', [1], 'float32', [1]]], { n: 3 as never })).toThrow("writeSafetensors: metadata 'n' is number");
    expect(fs.readFileSync(file).equals(before)).toBe(true);
  });

  it('a module: dotted names on its tensors, unregistered children refused, loadStateDict all or nothing', async () => {
    const model = buildAutoencoder('esann', { skips: true, ...small, seed: 4 });
    for (const [k, t] of model.stateDict()) expect(t.name, k).toBe(k);
    class Plain extends sg.Module {
      readonly conv = new sg.Conv2d(1, 2, 3);
      readonly list = [this.child('a', new sg.Conv2d(1, 1, 1)), new sg.Conv2d(1, 1, 1)];
    }
    const plain = new Plain();
    expect(() => plain.parameters()).toThrow("Plain: field 'conv' holds a Conv2d that was not registered with this.child(name, module)");
    plain.conv.dispose();
    (plain as { conv: unknown }).conv = null;
    expect(() => plain.stateDict()).toThrow("Plain: field 'list' holds a Conv2d that was not registered");

    const values = new Map([...model.stateDict()].map(([k, t]) => [k, { shape: t.shape, data: new Float32Array(t.size).fill(7) }]));
    const original = new Map([...model.stateDict()].map(([k, t]) => [k, Array.from(t.dataSync())]));
    const last = [...values.keys()].at(-1)!;
    values.set(last, { shape: values.get(last)!.shape, data: new Float32Array(values.get(last)!.data.length + 1) });
    await expect(model.loadStateDict(values)).rejects.toThrow(`loadStateDict: '${last}' has ${values.get(last)!.data.length} values`);
    for (const [k, t] of model.stateDict()) expect(Array.from(t.dataSync()), `${k} unchanged`).toEqual(original.get(k));
    model.dispose();
  });

  it('batches: a lone last image joins the batch before it (batch norm needs two values per channel)', () => {
    expect(batchRanges(17, 8)).toEqual([[0, 8], [8, 17]]);
    expect(batchRanges(16, 8)).toEqual([[0, 8], [8, 16]]);
    expect(batchRanges(18, 8)).toEqual([[0, 8], [8, 16], [16, 18]]);
    expect(batchRanges(1, 8)).toEqual([[0, 1]]);
    expect(batchRanges(9, 1).length).toBe(9);
    // Every image once, in order, for many (n, batch).
    for (let n = 1; n < 40; n++) for (let b = 1; b < 12; b++) {
      const r = batchRanges(n, b);
      expect(r[0][0]).toBe(0);
      expect(r.at(-1)![1]).toBe(n);
      r.forEach(([s, e], i) => {
        expect(e).toBeGreaterThan(s);
        if (i > 0) expect(s).toBe(r[i - 1][1]);
        if (r.length > 1 && b > 1) expect(e - s).toBeGreaterThan(1);
      });
    }
  });

  it('a run that diverges stops with an error instead of finishing with NaN; non-finite weights are refused on load', async () => {
    const data = images(5, 32, 3);
    const dir = path.join(tmp, 'diverged');
    const model = buildAutoencoder('esann', { skips: true, ...small, seed: 1 });
    const error = await trainAutoencoder({ model, train: data.slice(0, 4), validation: data.slice(4), epochs: 2, batchSize: 2, lr: 1e12, seed: 1, progress: false, checkpointDir: dir })
      .then(() => null, (e: unknown) => e as Error);
    expect(error?.message).toMatch(/train: (the loss became|the validation PSNR became) .* at epoch 1/);
    // No checkpoint is named as keeping a good epoch: this run wrote none (one there would be another run's).
    expect(error?.message).not.toMatch(/safetensors/);
    expect(fs.existsSync(path.join(dir, 'best.safetensors'))).toBe(false);
    model.dispose();
    const fresh = buildAutoencoder('esann', { skips: true, ...small, seed: 1 });
    const w = [...fresh.stateDict()][0];
    await fresh.loadStateDict(new Map([...fresh.stateDict()].map(([k, t]) => [k, { shape: t.shape, data: k === w[0] ? new Float32Array(t.size).fill(NaN) : t.dataSync() }])));
    const file = path.join(tmp, 'nan.safetensors');
    await saveCheckpoint(file, fresh, null);
    await expect(loadCheckpoint(file, fresh, null)).rejects.toThrow(`nan.safetensors: '${w[0]}' holds NaN at index 0: the weights are not finite`);
    fresh.dispose();
  });

  it('keeps the best epoch\'s weights also without a checkpoint folder (a copy in memory)', async () => {
    const data = images(6, 32, 2);
    // lr 0.05 constant: validation PSNR 7.3 10.1 8.5 11.3 10.4 dB, so the best epoch (4) is not the last.
    const opts = { train: data.slice(0, 4), validation: data.slice(4), epochs: 5, batchSize: 2, lr: 0.05, seed: 9, progress: false, schedule: 'constant' as const };
    const withDir = buildAutoencoder('esann', { skips: true, ...small, seed: 7 });
    const inMemory = buildAutoencoder('esann', { skips: true, ...small, seed: 7 });
    const a = await trainAutoencoder({ model: withDir, ...opts, checkpointDir: path.join(tmp, 'best-kept') });
    const b = await trainAutoencoder({ model: inMemory, ...opts });
    expect(a.bestEpoch).toBeLessThan(5);
    expect(b.bestEpoch).toBe(a.bestEpoch);
    for (const [k, t] of withDir.stateDict()) expect(Array.from(inMemory.stateDict().get(k)!.dataSync()), k).toEqual(Array.from(t.dataSync()));
    withDir.dispose();
    inMemory.dispose();
  });

  it('resuming after a best epoch before the stop: best.safetensors must hold that epoch, or the run says so', async () => {
    const data = images(6, 32, 2);
    // lr 0.05 constant: validation PSNR 7.3 10.1 8.5 dB over three epochs; the best (2) comes before the stop.
    const opts = { train: data.slice(0, 4), validation: data.slice(4), epochs: 3, batchSize: 2, lr: 0.05, seed: 9, progress: false, schedule: 'constant' as const };
    const inMemory = buildAutoencoder('esann', { skips: true, ...small, seed: 7 });
    expect((await trainAutoencoder({ model: inMemory, ...opts })).bestEpoch).toBe(2);
    for (const deleteBest of [false, true]) {
      const dir = path.join(tmp, `best-resume-${deleteBest}`);
      const first = buildAutoencoder('esann', { skips: true, ...small, seed: 7 });
      await trainAutoencoder({ model: first, ...opts, checkpointDir: dir, stopAfterEpoch: 2 });
      first.dispose();
      if (deleteBest) fs.rmSync(path.join(dir, 'best.safetensors'));
      const resumed = buildAutoencoder('esann', { skips: true, ...small, seed: 7 });
      const live = sg.memory().tensors;
      const run = trainAutoencoder({ model: resumed, ...opts, checkpointDir: dir, resume: true });
      if (deleteBest) {
        await expect(run).rejects.toThrow(/train: the best epoch was 2, but .*best\.safetensors is missing; the weights in memory are the last epoch's/);
        expect(sg.memory().tensors).toBe(live); // Adam's moments freed on the way out
      } else {
        expect((await run).bestEpoch).toBe(2);
        for (const [k, t] of inMemory.stateDict()) expect(Array.from(resumed.stateDict().get(k)!.dataSync()), k).toEqual(Array.from(t.dataSync()));
      }
      resumed.dispose();
    }
    inMemory.dispose();
  });

  it('resume refuses a checkpoint of another model configuration', async () => {
    const data = images(5, 32, 2);
    const opts = { train: data.slice(0, 4), validation: data.slice(4), batchSize: 2, lr: 0.005, seed: 9, progress: false };
    const dir = path.join(tmp, 'other-config');
    const a = buildAutoencoder('esann', { skips: true, ...small, seed: 7 });
    await trainAutoencoder({ model: a, epochs: 1, ...opts, checkpointDir: dir });
    const meta = JSON.parse(readSafetensors(path.join(dir, 'last.safetensors')).metadata.options) as Record<string, unknown>;
    expect(meta.backend).toBeUndefined(); // a live object is not a setting
    expect(meta.inputSize).toBe(32);
    const b = buildAutoencoder('esann', { skips: false, ...small, seed: 7 });
    await expect(trainAutoencoder({ model: b, epochs: 2, ...opts, checkpointDir: dir, resume: true }))
      .rejects.toThrow(/last\.safetensors: cannot resume: the checkpoint's model has skips true, this run's has skips false/);
    // Another width changes the shapes: still the options message, not loadStateDict's shape error.
    const c = buildAutoencoder('esann', { skips: true, ...small, baseChannels: 8, seed: 7 });
    await expect(trainAutoencoder({ model: c, epochs: 2, ...opts, checkpointDir: dir, resume: true }))
      .rejects.toThrow(/cannot resume: the checkpoint's model has baseChannels 4, this run's has baseChannels 8/);
    // dtype absent (the checkpoint) and 'float32' (this model) are the same model: it resumes.
    const f32 = buildAutoencoder('esann', { skips: true, ...small, seed: 7, dtype: 'float32' });
    expect((await trainAutoencoder({ model: f32, epochs: 2, ...opts, checkpointDir: dir, resume: true })).history.map((h) => h.epoch)).toEqual([1, 2]);
    f32.dispose();
    // An option the checkpoint does not record (one written before the option existed) differs too.
    const last = path.join(dir, 'last.safetensors');
    const stored = readSafetensors(last);
    const { slope: _slope, ...withoutSlope } = JSON.parse(stored.metadata.options) as Record<string, unknown>;
    writeSafetensors(last, stored.tensors, { ...stored.metadata, options: JSON.stringify(withoutSlope) });
    const d = buildAutoencoder('esann', { skips: true, ...small, seed: 7 });
    await expect(trainAutoencoder({ model: d, epochs: 2, ...opts, checkpointDir: dir, resume: true }))
      .rejects.toThrow(/cannot resume: the checkpoint's model has slope undefined, this run's has slope 0.01/);
    // Training runs in float32: a float64 model is refused up front, not at its first convolution.
    const e = buildAutoencoder('esann', { skips: true, ...small, seed: 7, dtype: 'float64' });
    await expect(trainAutoencoder({ model: e, epochs: 1, ...opts })).rejects.toThrow('train: the model is float64; training runs in float32 (build the model without dtype)');
    for (const m of [c, d, e]) m.dispose();
    a.dispose();
    b.dispose();
  });

  it('resume refuses other training settings, naming each with both values; more epochs only where the schedule does not depend on the total', async () => {
    const data = images(7, 32, 2);
    const opts = { train: data.slice(0, 5), validation: data.slice(5), batchSize: 2, lr: 0.005, seed: 9, progress: false };
    const model = buildAutoencoder('esann', { skips: true, ...small, seed: 7 });
    const dir = path.join(tmp, 'settings');
    const last = path.join(dir, 'last.safetensors');
    await trainAutoencoder({ model, ...opts, epochs: 3, schedule: 'onecycle', checkpointDir: dir, stopAfterEpoch: 1 });
    const training = JSON.parse(readSafetensors(last).metadata.training) as { settings: unknown };
    expect(training.settings).toEqual({ lr: 0.005, schedule: 'onecycle', optimizer: 'adamw', weightDecay: 0.01, batchSize: 2, seed: 9, trainImages: 5, validationImages: 2, epochs: 3 });
    const resume = (o: Partial<Parameters<typeof trainAutoencoder>[0]>, log: (m: string) => void = () => {}): ReturnType<typeof trainAutoencoder> =>
      trainAutoencoder({ model, ...opts, epochs: 3, schedule: 'onecycle', checkpointDir: dir, resume: true, log, ...o });
    await expect(resume({ lr: 0.01, epochs: 4, optimizer: 'adam' })).rejects.toThrow(
      `${last}: cannot resume: this run's training settings are not the checkpoint's: --lr 0.01 (the checkpoint's: 0.005), --optimizer adam (the checkpoint's: adamw), `
      + `weight decay 0 (the checkpoint's: 0.01), --epochs 4 (the checkpoint's: 3; onecycle is made for its total of epochs: only constant and plateau runs take more); `
      + "resume with the checkpoint's settings, or start over");
    await expect(resume({ batchSize: 3, seed: 1, validation: data.slice(4) })).rejects.toThrow(
      /settings are not the checkpoint's: --batch 3 \(the checkpoint's: 2\), --seed 1 \(the checkpoint's: 9\), validation images \(--train-limit\) 3 \(the checkpoint's: 2\);/);
    await expect(resume({ schedule: 'constant', train: data.slice(1, 5) })).rejects.toThrow(
      /settings are not the checkpoint's: --schedule constant \(the checkpoint's: onecycle\), training images \(--train-limit\) 4 \(the checkpoint's: 5\);/);
    expect((await resume({})).history.map((h) => h.epoch)).toEqual([1, 2, 3]);

    // constant (and plateau) do not depend on the total: more epochs continue the run; fewer than trained are refused.
    const constDir = path.join(tmp, 'settings-constant');
    await trainAutoencoder({ model, ...opts, epochs: 2, schedule: 'constant', checkpointDir: constDir });
    const more = await trainAutoencoder({ model, ...opts, epochs: 3, schedule: 'constant', checkpointDir: constDir, resume: true, log: () => {} });
    expect(more.history.map((h) => h.epoch)).toEqual([1, 2, 3]);
    await expect(trainAutoencoder({ model, ...opts, epochs: 2, schedule: 'constant', checkpointDir: constDir, resume: true }))
      .rejects.toThrow(`${path.join(constDir, 'last.safetensors')}: cannot resume: the checkpoint has trained 3 epochs already, more than this run's 2`);
    // All its epochs trained: it says so and trains nothing.
    const lines: string[] = [];
    let epochsRun = 0;
    const again = await trainAutoencoder({ model, ...opts, epochs: 3, schedule: 'constant', checkpointDir: constDir, resume: true, label: 'woven/aesc', log: (l) => lines.push(l), onEpoch: () => epochsRun++ });
    expect(lines).toEqual([`woven/aesc: already trained 3 of 3 epochs (best validation PSNR ${more.bestPsnr.toFixed(2)} dB at epoch ${more.bestEpoch}); nothing to do`]);
    expect(epochsRun).toBe(0);
    expect(again.stepLosses).toEqual(more.stepLosses);
    model.dispose();
  });

  it("a checkpoint written before settings were recorded resumes when its learning rates are this run's schedule's, and continues the same run", async () => {
    const data = images(6, 32, 2);
    const opts = { train: data.slice(0, 4), validation: data.slice(4), batchSize: 2, lr: 0.005, seed: 9, progress: false, schedule: 'onecycle' as const };
    const straight = buildAutoencoder('esann', { skips: true, ...small, seed: 7 });
    const whole = await trainAutoencoder({ model: straight, ...opts, epochs: 2 });
    const model = buildAutoencoder('esann', { skips: true, ...small, seed: 7 });
    const dir = path.join(tmp, 'settings-old');
    const last = path.join(dir, 'last.safetensors');
    await trainAutoencoder({ model, ...opts, epochs: 2, checkpointDir: dir, stopAfterEpoch: 1 });
    // As such a checkpoint was: no settings, no per-parameter step counts, no beta1 in the history.
    const stored = readSafetensors(last);
    const { settings: _settings, optimizerParamSteps: _steps, result, ...training } = JSON.parse(stored.metadata.training) as Record<string, unknown> & { result: TrainResult };
    const old = { ...result, history: result.history.map(({ beta1: _b, ...h }) => h) };
    writeSafetensors(last, stored.tensors, { ...stored.metadata, training: JSON.stringify({ ...training, result: old }) });
    // A total of epochs its one-cycle was not made for: its epoch 1 ran at another lr, so it is refused.
    await expect(trainAutoencoder({ model, ...opts, epochs: 3, checkpointDir: dir, resume: true, log: () => {} }))
      .rejects.toThrow(new RegExp(`^${last.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot resume: the checkpoint was written before checkpoints recorded their training settings, and its epoch 1 ran at lr [\\d.e-]+ where this run's schedule \\(onecycle, --lr 0\\.005, 3 epochs\\) gives [\\d.e-]+`));
    const lines: string[] = [];
    const r = await trainAutoencoder({ model, ...opts, epochs: 2, checkpointDir: dir, resume: true, log: (l) => lines.push(l) });
    expect(r.history.map((h) => h.epoch)).toEqual([1, 2]);
    expect(lines).toEqual([
      `${last}: the checkpoint does not record its training settings (it was written before checkpoints did): its learning rates are this run's schedule's, but its optimizer, weight decay, batch size, seed and image counts cannot be checked`,
      `train: training; checkpoints after each epoch in ${dir} (resuming continues an interrupted run: --resume)`,
    ]);
    // Every parameter's Adam step count is the optimizer's (as it was then): the same run as one not stopped.
    expect(r.stepLosses).toEqual(whole.stepLosses);
    model.dispose();
    straight.dispose();
  });

  it('resuming from the checkpoint gives the same next losses as not stopping (cpu)', async () => {
    const data = images(6, 32, 2);
    const opts = { train: data.slice(0, 4), validation: data.slice(4), batchSize: 2, lr: 0.005, seed: 9, progress: false, schedule: 'onecycle' as const };
    const straight = buildAutoencoder('esann', { skips: true, ...small, seed: 7 });
    const seen: number[] = [];
    const full = await trainAutoencoder({ model: straight, epochs: 4, ...opts, checkpointDir: path.join(tmp, 'straight'), onEpoch: (r) => seen.push(r.history.length) });
    expect(seen).toEqual([1, 2, 3, 4]); // after each epoch, with that epoch recorded

    const dir = path.join(tmp, 'resumed');
    const first = buildAutoencoder('esann', { skips: true, ...small, seed: 7 });
    await trainAutoencoder({ model: first, epochs: 4, ...opts, checkpointDir: dir, stopAfterEpoch: 2 });
    const second = buildAutoencoder('esann', { skips: true, ...small, seed: 123 }); // other initial weights: all state must come from the checkpoint
    const resumed = await trainAutoencoder({ model: second, epochs: 4, ...opts, checkpointDir: dir, resume: true });
    expect(resumed.stepLosses.length).toBe(full.stepLosses.length);
    resumed.stepLosses.forEach((l, i) => expect(l).toBeCloseTo(full.stepLosses[i], 6));
    expect(resumed.history.map((h) => h.epoch)).toEqual([1, 2, 3, 4]);
    for (const m of [straight, first, second]) m.dispose();
  });
});
