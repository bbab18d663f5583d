/**
 * One training step of the model bench, for each side, in code that runs in Node and in a browser (bench/model.ts,
 * bench/model-worker.ts, bench/browser/main.ts): forward with batch norm in training mode, MSE loss against the
 * target, gradients of all parameters, AdamW (lr, weight decay decoupled as PyTorch's AdamW). A step ends when
 * the device has finished it: skipgrad reads the loss back and waits for backend.sync(); tfjs reads the loss and
 * a weight the update wrote (its queue runs in order, so that weight is the last thing written). bench/profile.ts
 * and bench/tiles.ts trace the same step (record(); esannStepper builds it). Also the median both benches report.
 */
import * as sg from '../src/engine/index.js';
import { buildAutoencoder, type Autoencoder } from '../src/models/autoencoder.js';
import type { TfjsTrainer } from './model-tfjs.js';
import type * as tfNs from '@tensorflow/tfjs';

/** The median of xs (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export interface Stepper {
  /** Records one step (synchronously, e.g. under sg.traced) and returns its loss tensor, which the caller owns. */
  record(): sg.Tensor;
  /** Runs one step; resolves with its loss once the device has finished it. */
  step(): Promise<number>;
  dispose(): void;
}

/** skipgrad's step of `net` on (x, target), with its own AdamW state. */
export function skipgradStepper(be: sg.Backend, net: Autoencoder, x: sg.Tensor, target: sg.Tensor, o: { lr: number; weightDecay: number }): Stepper {
  const params = net.parameters();
  const opt = new sg.Adam(params, { lr: o.lr, weightDecay: o.weightDecay, decoupled: true });
  const record = (): sg.Tensor => sg.scope(() => {
    const l = sg.mseLoss(net.forward(x).output, target);
    l.backward();
    opt.step();
    sg.zeroGrad(params);
    return l;
  });
  return {
    record,
    async step() {
      const loss = record();
      const v = await loss.item();
      loss.dispose();
      await be.sync?.();
      return v;
    },
    dispose: () => opt.dispose(),
  };
}

/**
 * The esann autoencoder (AESc with skips, AE without) at the given size and base width, on one random batch
 * (input and target uniform in [0, 1), seeds 1 and 2, weights seed 0), with its stepper (AdamW lr 1e-3, weight
 * decay 1e-2): the step bench/profile.ts and bench/tiles.ts trace. dispose() frees the network and the batch too.
 */
export function esannStepper(be: sg.Backend, o: { model: 'AESc' | 'AE'; size: number; batch: number; channels: number }): Stepper {
  const net = buildAutoencoder('esann', { skips: o.model === 'AESc', inputSize: o.size, baseChannels: o.channels, seed: 0, backend: be }).train();
  const shape = [o.batch, 1, o.size, o.size];
  const x = sg.uniform(shape, 0, 1, { backend: be, rng: new sg.Rng(1) }).keep();
  const target = sg.uniform(shape, 0, 1, { backend: be, rng: new sg.Rng(2) }).keep();
  const stepper = skipgradStepper(be, net, x, target, { lr: 1e-3, weightDecay: 1e-2 });
  return {
    ...stepper,
    dispose() {
      stepper.dispose();
      net.dispose();
      x.dispose();
      target.dispose();
    },
  };
}

/** tfjs's step with `trainer` on (x, target); `lastWeight` is a weight the update writes (read back at the end). */
export async function tfjsStep(trainer: TfjsTrainer, x: tfNs.Tensor, target: tfNs.Tensor, lastWeight: { read(): tfNs.Tensor }): Promise<number> {
  const l = trainer.step(x, target);
  const loss = (await l.data())[0];
  l.dispose();
  await lastWeight.read().data();
  return loss;
}
