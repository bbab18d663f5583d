/**
 * The model bench compares skipgrad with the "same" network in TensorFlow.js (bench/model-tfjs.ts).
 * This checks that it is the same: on the CPU backends (skipgrad cpu, tfjs cpu), esann preset at 64x64 (five levels:
 * 64 -> 30 -> 13 -> 5 -> 1, so both output paddings occur), base channels 2, batch 4, from the same weights and inputs,
 *   - the output-padding construction of the transposed convs (the naive one is shown to be wrong),
 *   - the forward output (BN in training mode) of AESc and AE within 1e-4,
 *   - the MSE loss, and the gradients of the first conv, both kinds of transposed conv, the output conv and
 *     every BN gamma/beta within 1e-4 of each tensor's largest gradient;
 *     for the conv biases in front of a training-mode BN, whose exact gradient is 0, both sides must be
 *     below 1e-5 of the largest gradient of the model (rounding noise),
 *   - the BN running mean after the forward (the running variance differs by design: tfjs uses the biased
 *     batch variance, PyTorch and skipgrad the unbiased one; checked as such),
 *   - two AdamW updates from identical gradients within 1e-6.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import * as sg from '../src/engine/index.js';
import { buildAutoencoder, type Autoencoder } from '../src/models/autoencoder.js';
import {
  buildTfjsAutoencoder, createTfjsTrainer, fromTfLayout, loadSkipgradWeights, type NamedArray, NHWC_TO_NCHW, nhwcTensor, permute, toTfLayout,
} from '../bench/model-tfjs.js';

const SIZE = 64;
const BASE = 2;
// Batch 4 at least: the 1x1 bottleneck's training-mode BN over 2 values is ill-conditioned (gradients lose digits).
const BATCH = 4;
/**
 * The parameters whose gradients are compared (tfjs-cpu's Conv2DBackpropFilter takes ~0.5 s per layer even here,
 * so not all): the first conv, every BN gamma and beta, a transposed conv with output padding 0 (decoder.1) and
 * one with output padding 1 (decoder.2, whose bias is the extra ChannelBias layer), and the output conv.
 */
const COMPARED = [
  'l1.weight', 'l1.bias', 'decoder.1.conv.weight', 'decoder.1.conv.bias', 'decoder.2.conv.weight', 'decoder.2.conv.bias', 'out.weight', 'out.bias',
  ...['encoder.0', 'encoder.1', 'encoder.2', 'encoder.3', 'decoder.0', 'decoder.1', 'decoder.2', 'decoder.3'].flatMap((b) => [`${b}.bn.weight`, `${b}.bn.bias`]),
];

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    m = Number.isNaN(d) ? Infinity : Math.max(m, d);
  }
  return m;
}

function seeded(seed: number, n: number, lo = 0, hi = 1): Float32Array {
  const rng = new sg.Rng(seed);
  return Float32Array.from({ length: n }, () => rng.uniform(lo, hi));
}

function stateOf(m: Autoencoder): NamedArray[] {
  return [...m.stateDict()].map(([name, t]) => ({ name, shape: [...t.shape], data: Float32Array.from(t.dataSync()) }));
}

/** NCHW values of an NHWC tfjs tensor. */
function nchwOf(t: tf.Tensor): Float32Array {
  return permute(t.dataSync(), t.shape, NHWC_TO_NCHW);
}

describe('transposed conv with output padding 1', () => {
  it('the extra row/column holds the bias: zero-padding after a biased conv2dTranspose is wrong, bias after the padding is right', () => {
    const xd = seeded(1, 2 * 3 * 3 * 3, -1, 1);
    const wd = seeded(2, 3 * 2 * 5 * 5, -0.5, 0.5);
    const bd = Float32Array.from([0.7, -0.4]);
    // skipgrad: x [2,3,3,3], w [Cin 3, Cout 2, 5, 5], stride 2, output padding 1 -> (3-1)*2+5+1 = 10
    const y = sg.convTranspose2d(sg.fromArray(xd, [2, 3, 3, 3]), sg.fromArray(wd, [3, 2, 5, 5]), {
      stride: 2, padding: 0, outputPadding: 1, bias: sg.fromArray(bd, [2]),
    });
    expect([...y.shape]).toEqual([2, 2, 10, 10]);
    const ys = y.dataSync();
    // The last row and column of every map are exactly the bias (no input reaches them).
    for (let n = 0; n < 2; n++) for (let c = 0; c < 2; c++) for (let i = 0; i < 10; i++) {
      expect(ys[((n * 2 + c) * 10 + 9) * 10 + i]).toBe(bd[c]);
      expect(ys[((n * 2 + c) * 10 + i) * 10 + 9]).toBe(bd[c]);
    }
    const x = nhwcTensor(tf, xd, [2, 3, 3, 3]);
    const w = toTfLayout({ name: 'w', shape: [3, 2, 5, 5], data: wd });
    const wt = tf.tensor4d(w.data, w.shape as [number, number, number, number]);
    const b = tf.tensor1d(bd);
    const valid = tf.conv2dTranspose(x, wt, [2, 9, 9, 2], 2, 'valid');
    const pad: Array<[number, number]> = [[0, 0], [0, 1], [0, 1], [0, 0]];
    const naive = nchwOf(tf.pad(tf.add(valid, b), pad));
    const right = nchwOf(tf.add(tf.pad(valid, pad), b));
    expect(maxDiff(right, ys)).toBeLessThan(1e-5);
    expect(maxDiff(naive, ys)).toBeCloseTo(0.7, 5);
  });
});

interface Case {
  skips: boolean;
}

describe.each<Case>([{ skips: true }, { skips: false }])('esann autoencoder, skips $skips: skipgrad cpu vs tfjs layers cpu', ({ skips }) => {
  it('forward, loss, gradients, BN running stats and AdamW updates match', () => {
    const model = buildAutoencoder('esann', { skips, inputSize: SIZE, baseChannels: BASE, seed: 7, backend: 'cpu' });
    model.train();
    const ae = buildTfjsAutoencoder(tf, { skips, inputSize: SIZE, baseChannels: BASE });
    expect(ae.sizes).toEqual(model.sizes);
    expect(ae.model.trainableWeights.reduce((s, w) => s + w.shape.reduce<number>((a, d) => a * (d ?? 1), 1), 0)).toBe(model.parameterCount());
    expect(ae.parameterNames).toEqual(model.namedParameters().map(([n]) => n));
    const state0 = stateOf(model);
    loadSkipgradWeights(tf, ae, state0);
    const lr = 1e-3, weightDecay = 1e-2;
    const trainer = createTfjsTrainer(tf, ae, { lr, weightDecay });

    const shape = [BATCH, 1, SIZE, SIZE];
    const xd = seeded(11, BATCH * SIZE * SIZE);
    const td = seeded(12, BATCH * SIZE * SIZE);
    const x = sg.fromArray(xd, shape);
    const target = sg.fromArray(td, shape);
    const tx = nhwcTensor(tf, xd, shape);
    const tt = nhwcTensor(tf, td, shape);

    // forward + loss + gradients, skipgrad
    const out = model.forward(x).output;
    const loss = sg.mseLoss(out, target);
    loss.backward();
    // tfjs: the same forward (training mode), loss and gradients
    const { loss: tLoss, output: tOutput, grads } = trainer.gradients(tx, tt, COMPARED);
    expect(maxDiff(out.dataSync(), nchwOf(tOutput)), 'forward output').toBeLessThanOrEqual(1e-4);
    expect(Math.abs(loss.dataSync()[0] - tLoss.dataSync()[0]), 'loss').toBeLessThanOrEqual(1e-6);

    const params = model.namedParameters();
    const sgGrads = new Map(params.map(([n, p]) => [n, Float32Array.from(p.grad!.dataSync())]));
    const globalScale = Math.max(...[...sgGrads.values()].map(maxAbs));
    const report: string[] = [];
    // A conv bias whose output only feeds a training-mode BN has exact gradient 0 (the batch mean removes it):
    // the encoder and decoder conv biases, and l1's in AE (in AESc l1 also feeds the last skip).
    const zeroGradient = (n: string): boolean => /^(encoder|decoder)\.\d+\.conv\.bias$/.test(n) || (!skips && n === 'l1.bias');
    for (const [n, p] of params.filter(([name]) => COMPARED.includes(name))) {
      const g = grads.get(n);
      expect(g, `tfjs gradient of ${n}`).toBeDefined();
      const tg = fromTfLayout(g!.shape, g!.dataSync());
      expect(tg.shape).toEqual([...p.shape]);
      const mine = sgGrads.get(n)!;
      const scale = maxAbs(tg.data);
      const d = maxDiff(mine, tg.data);
      if (zeroGradient(n)) {
        // Exact gradient 0: both sides must give (only) rounding noise.
        const tol = 1e-5 * globalScale;
        report.push(`${n}: exact gradient 0; skipgrad max ${maxAbs(mine).toExponential(2)}, tfjs max ${scale.toExponential(2)} (tol ${tol.toExponential(2)})`);
        expect(Math.max(maxAbs(mine), scale), `gradient of ${n}\n${report.join('\n')}`).toBeLessThanOrEqual(tol);
      } else {
        const tol = 1e-4 * scale;
        report.push(`${n}: max|diff| ${d.toExponential(2)} (scale ${scale.toExponential(2)}, tol ${tol.toExponential(2)})`);
        expect(d, `gradient of ${n}\n${report.join('\n')}`).toBeLessThanOrEqual(tol);
      }
    }
    if (process.env.BENCH_PARITY_REPORT) console.log(report.join('\n'));

    // BN running stats: both sides ran one training-mode forward from running mean 0 and running variance 1.
    for (const [n, t] of model.namedBuffers()) {
      const v = ae.weights.get(n)!;
      const theirs = v.read().dataSync();
      const mine = t.dataSync();
      if (n.endsWith('running_mean')) {
        expect(maxDiff(mine, theirs), n).toBeLessThanOrEqual(1e-5 * Math.max(1, maxAbs(theirs)));
      } else {
        // running_var after one update from 1: r = 0.9 + 0.1 * s, with s the unbiased (skipgrad) or biased (tfjs) variance.
        const layer = n.replace(/\.bn\.running_var$/, '');
        const level = Number(layer.split('.')[1]);
        const side = layer.startsWith('encoder') ? model.sizes[level + 1] : model.sizes[model.sizes.length - 2 - level];
        const count = BATCH * side * side;
        const corrected = Array.from(theirs, (r) => 0.9 + (r - 0.9) * count / (count - 1));
        expect(maxDiff(mine, corrected), `${n} (count ${count})`).toBeLessThanOrEqual(1e-4 * Math.max(1, maxAbs(mine)));
      }
    }

    // AdamW: two steps from identical gradients (skipgrad's), skipgrad's fused Adam vs the trainer's update.
    const opt = new sg.Adam(model.parameters(), { lr, weightDecay, decoupled: true });
    for (let s = 0; s < 2; s++) {
      opt.step();
      trainer.applyGradients(new Map(params.map(([n, p]) => {
        const t = toTfLayout({ name: n, shape: [...p.shape], data: sgGrads.get(n)! });
        return [n, tf.tensor(t.data, t.shape)];
      })));
    }
    for (const [n, p] of params) {
      const v = ae.weights.get(n)!;
      const theirs = fromTfLayout(v.shape as number[], v.read().dataSync()).data;
      expect(maxDiff(p.dataSync(), theirs), `${n} after two AdamW steps`).toBeLessThanOrEqual(1e-6);
    }
    opt.dispose();
    model.dispose();
    ae.model.dispose();
  });
});
