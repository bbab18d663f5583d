/**
 * The corruption training loop of "Don't skip the skips" (docs/reference-facts.md §3): each training image gets
 * a fresh synthetic stain every time it is used; the network learns to output the clean image (MSE).
 * Validation: a fixed stained copy of each held-out image (same stains every epoch, so PSNR is comparable),
 * PSNR every epoch, the best weights kept. Seeded and repeatable; resumable from the checkpoint written at
 * the end of every epoch (safetensors with PyTorch-style names, written atomically), which records the model's
 * options and the run's training settings: a resume with others is refused (TrainingSettings).
 */
import fs from 'node:fs';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { zeroGrad } from '../engine/autograd.js';
import { writeFileAtomic } from '../engine/io/atomic.js';
import { readSafetensors, writeSafetensors, type StoredTensor } from '../engine/io/safetensors.js';
import { noGrad } from '../engine/mode.js';
import { mseLoss } from '../engine/ops/loss.js';
import { Adam } from '../engine/optim/adam.js';
import { authorsStepsPerEpoch, makeSchedule, type ScheduleName } from '../engine/optim/schedules.js';
import { Rng } from '../engine/random.js';
import { fromArray, scope, type Tensor } from '../engine/tensor.js';
import type { StateValues } from '../engine/nn/module.js';
import type { Autoencoder } from '../models/autoencoder.js';
import { addStain } from './stain.js';

export interface TrainOptions {
  model: Autoencoder;
  /** Clean training images, each size x size, values in [0,1]. */
  train: Float32Array[];
  validation: Float32Array[];
  epochs: number;
  batchSize: number;
  lr: number;
  optimizer?: 'adam' | 'adamw';
  weightDecay?: number;
  schedule?: ScheduleName;
  seed?: number;
  /** Folder for last.safetensors and best.safetensors; resumes from last.safetensors when `resume`. */
  checkpointDir?: string;
  resume?: boolean;
  /** Stop (as if interrupted) after this many epochs; resuming continues from there. */
  stopAfterEpoch?: number;
  /** Show a progress bar on stderr (default: when stderr is a TTY). */
  progress?: boolean;
  label?: string;
  /** Called after each epoch's checkpoint is written, with the result so far (e.g. to keep history.json in step with it). */
  onEpoch?: (result: TrainResult) => void;
  /** Where notes on a resume go (default: a line on stderr). */
  log?: (message: string) => void;
}

/**
 * What a run was trained with besides its model, as its checkpoints record it: a resumed run must have the same, or
 * it would join two different runs (another lr or schedule from the resumed epoch on, other batches, other stains).
 * Only `epochs` may grow where the schedule does not depend on it (constant, plateau); a one-cycle schedule is made
 * for its total.
 */
export interface TrainingSettings {
  lr: number;
  schedule: ScheduleName;
  optimizer: 'adam' | 'adamw';
  weightDecay: number;
  batchSize: number;
  seed: number;
  trainImages: number;
  validationImages: number;
  epochs: number;
}

/** The weight decay a run uses unless told: AdamW's 0.01 (PyTorch's default, the authors' code); Adam: none. */
function defaultWeightDecay(optimizer: 'adam' | 'adamw'): number {
  return optimizer === 'adamw' ? 1e-2 : 0;
}

/** The optimizer of a training run: AdamW (decoupled weight decay) or Adam, at lr. */
export function makeOptimizer(params: Tensor[], lr: number, optimizer: 'adam' | 'adamw', weightDecay = defaultWeightDecay(optimizer)): Adam {
  return new Adam(params, { lr, decoupled: optimizer === 'adamw', weightDecay });
}

export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  valPsnr: number;
  lr: number;
  /** Adam's beta1 in this epoch (0.9 unless the schedule cycles it: onecycle-steps). */
  beta1: number;
  seconds: number;
}

export interface TrainResult {
  history: EpochRecord[];
  bestEpoch: number;
  bestPsnr: number;
  /** Loss of every optimisation step, in order (for tests and curves). */
  stepLosses: number[];
}

/** PSNR in dB of images in [0,1]: 10 log10(1 / mse). */
export function psnr(mse: number): number {
  return mse <= 0 ? 99 : 10 * Math.log10(1 / mse);
}

/** An independent generator for (seed, epoch, stream): resuming at an epoch boundary replays exactly. */
function epochRng(seed: number, epoch: number, stream: number): Rng {
  return new Rng((Math.imul(seed ^ 0x5bd1e995, 2654435761) + Math.imul(epoch + 1, 40503) + stream * 7919) >>> 0);
}

function batchTensor(images: Float32Array[], size: number, backend: Tensor['backend']): Tensor {
  const data = new Float32Array(images.length * size * size);
  images.forEach((im, i) => data.set(im, i * size * size));
  return fromArray(data, [images.length, 1, size, size], { backend });
}

export async function trainAutoencoder(o: TrainOptions): Promise<TrainResult> {
  const { model, epochs, batchSize } = o;
  const size = model.options.inputSize;
  const seed = o.seed ?? 0;
  if (o.train.length === 0) throw new Error('train: no training images');
  if (o.validation.length === 0) throw new Error('train: no validation images (hold out some of train/good)');
  for (const [name, set] of [['training', o.train], ['validation', o.validation]] as const) {
    const bad = set.findIndex((im) => im.length !== size * size);
    if (bad >= 0) throw new Error(`train: ${name} image ${bad} has ${set[bad].length} pixels, expected ${size}x${size} = ${size * size}`);
  }
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`train: batch size must be a positive integer, got ${batchSize}`);
  const params = model.parameters();
  if (params[0].dtype !== 'float32') throw new Error(`train: the model is ${params[0].dtype}; training runs in float32 (build the model without dtype)`);
  const backend = params[0].backend;
  const log = o.log ?? ((message: string): void => void process.stderr.write(`${message}\n`));
  const optimizer = o.optimizer ?? 'adamw';
  const settings: TrainingSettings = {
    lr: o.lr, schedule: o.schedule ?? 'constant', optimizer, weightDecay: o.weightDecay ?? defaultWeightDecay(optimizer),
    batchSize, seed, trainImages: o.train.length, validationImages: o.validation.length, epochs,
  };
  const opt = makeOptimizer(params, o.lr, optimizer, settings.weightDecay);
  // Adam's moments are freed however the run ends (an error included).
  try {
    const batches = batchRanges(o.train.length, batchSize);
    // onecycle-steps is the authors' cycle, made for their own count of steps per epoch (see authorsStepsPerEpoch):
    // train + validation is the whole train/good set they count.
    const schedule = makeSchedule(settings.schedule, o.lr, epochs, authorsStepsPerEpoch(o.train.length + o.validation.length));

    // Fixed validation stains.
    const valRng = new Rng(seed ^ 0x9e3779b9);
    const valInputs = o.validation.map((im) => addStain(im, size, size, valRng).image);

    const result: TrainResult = { history: [], bestEpoch: -1, bestPsnr: -Infinity, stepLosses: [] };
    let startEpoch = 0;
    const last = o.checkpointDir ? path.join(o.checkpointDir, 'last.safetensors') : null;
    const best = o.checkpointDir ? path.join(o.checkpointDir, 'best.safetensors') : null;
    /** The values of this run's best epoch's weights and buffers, kept in memory (with or without a checkpoint
     *  folder): the end of training restores them without depending on best.safetensors. */
    let bestState: StateValues | null = null;
    if (o.resume && last && fs.existsSync(last)) {
      // The model options first: another --channels or preset would otherwise fail in loadStateDict on a shape.
      const stored = readSafetensors(last);
      // dtype: absent (older checkpoints, and models built without it) is float32.
      const withDtype = (options: Record<string, unknown>): Record<string, unknown> => ({ ...options, dtype: options.dtype ?? 'float32' });
      const saved = withDtype(JSON.parse(stored.metadata.options ?? '{}') as Record<string, unknown>);
      const now = withDtype(savedOptions(model) as Record<string, unknown>);
      const keys = [...new Set([...Object.keys(saved), ...Object.keys(now)])];
      const differ = keys.filter((k) => k !== 'seed' && k !== 'backend' && JSON.stringify(saved[k]) !== JSON.stringify(now[k]));
      if (differ.length > 0) {
        throw new Error(`${last}: cannot resume: the checkpoint's model has ${differ.map((k) => `${k} ${JSON.stringify(saved[k])}`).join(', ')}, this run's has ${differ.map((k) => `${k} ${JSON.stringify(now[k])}`).join(', ')}`);
      }
      const meta = JSON.parse(stored.metadata.training ?? '{}') as { epoch: number; result: TrainResult; schedule: Record<string, number>; settings?: TrainingSettings };
      if (meta.settings) {
        const why = settingsProblem(meta.settings, settings);
        if (why) throw new Error(`${last}: cannot resume: ${why}; resume with the checkpoint's settings, or start over`);
      } else {
        // Its learning rates are recorded per epoch: a schedule that gives others (another lr, schedule or total of
        // epochs, or onecycle-steps before it followed the authors' OneCycleLR) would join two different runs.
        // (plateau's rates depend on the validation PSNRs, and are restored from the checkpoint.)
        const other = settings.schedule === 'plateau' ? undefined
          : meta.result.history.find((h) => Math.abs(h.lr - schedule.lr(h.epoch - 1)) > 1e-9 * Math.max(h.lr, 1e-12));
        if (other) {
          throw new Error(`${last}: cannot resume: the checkpoint was written before checkpoints recorded their training settings, and its epoch ${other.epoch} ran at lr ${other.lr} where this run's schedule (${settings.schedule}, --lr ${o.lr}, ${epochs} epochs) gives ${schedule.lr(other.epoch - 1)}: it was trained with another schedule, lr or number of epochs (onecycle-steps follows the authors' OneCycleLR since 2026-11-29); start over`);
        }
        log(settings.schedule === 'plateau'
          ? `${last}: the checkpoint does not record its training settings (it was written before checkpoints did): its lr, optimizer, weight decay, batch size, seed and image counts cannot be checked (plateau's rate comes from the checkpoint)`
          : `${last}: the checkpoint does not record its training settings (it was written before checkpoints did): its learning rates are this run's schedule's, but its optimizer, weight decay, batch size, seed and image counts cannot be checked`);
      }
      const done = meta.epoch + 1;
      if (done > epochs) throw new Error(`${last}: cannot resume: the checkpoint has trained ${done} epochs already, more than this run's ${epochs}`);
      await loadCheckpoint(last, model, opt, stored);
      startEpoch = done;
      Object.assign(result, meta.result);
      schedule.load(meta.schedule);
      if (done === epochs) log(`${o.label ?? 'train'}: already trained ${done} of ${epochs} epochs (best validation PSNR ${result.bestPsnr.toFixed(2)} dB at epoch ${result.bestEpoch}); nothing to do`);
    }

    const stepsPerEpoch = batches.length;
    if (o.checkpointDir && startEpoch < epochs) {
      log(`${o.label ?? 'train'}: training; checkpoints after each epoch in ${o.checkpointDir} (resuming continues an interrupted run: --resume)`);
    }
    const showBar = o.progress ?? Boolean(process.stderr.isTTY);
    const bar = showBar && startEpoch < epochs ? new cliProgress.SingleBar({
      format: `${o.label ?? 'train'} [{bar}] {percentage}% | epoch {epoch}/{epochs} | loss {loss} | val PSNR {psnr} dB | ETA {eta_formatted}`,
      // The cursor stays visible: Ctrl-C ends the process at once (no listener, which a CPU step would hold off until
      // it ends, 20 s at 256x256), with no chance to show a hidden cursor again.
      stream: process.stderr, hideCursor: false, etaBuffer: 50,
    }, cliProgress.Presets.shades_classic) : null;
    bar?.start((epochs - startEpoch) * stepsPerEpoch, 0, { epoch: startEpoch + 1, epochs, loss: '-', psnr: '-' });

    try {
      for (let epoch = startEpoch; epoch < epochs; epoch++) {
        const t0 = performance.now();
        opt.lr = schedule.lr(epoch);
        if (schedule.beta1) opt.beta1 = schedule.beta1(epoch);
        model.train();
        const rng = epochRng(seed, epoch, 0);
        const order = o.train.map((_, i) => i);
        for (let i = order.length - 1; i > 0; i--) {
          const j = rng.int(0, i);
          [order[i], order[j]] = [order[j], order[i]];
        }
        let lossSum = 0;
        for (let s = 0; s < stepsPerEpoch; s++) {
          const idx = order.slice(...batches[s]);
          const clean = idx.map((i) => o.train[i]);
          const stained = clean.map((im) => addStain(im, size, size, rng).image);
          const lossTensor = scope(() => {
            const x = batchTensor(stained, size, backend);
            const y = batchTensor(clean, size, backend);
            const loss = mseLoss(model.forward(x).output, y);
            loss.backward();
            opt.step();
            zeroGrad(params);
            return loss;
          });
          const loss = await lossTensor.item();
          lossTensor.dispose();
          if (!Number.isFinite(loss)) throw new Error(`train: the loss became ${loss} at epoch ${epoch + 1}, step ${s + 1} (try a lower learning rate, or run with SKIPGRAD_NAN_GUARD=1 to find the op)`);
          result.stepLosses.push(loss);
          lossSum += loss;
          bar?.increment(1, { loss: loss.toFixed(5) });
        }
        const valPsnr = await validate(model, valInputs, o.validation, size, batchSize);
        if (Number.isNaN(valPsnr) || valPsnr === -Infinity) {
          throw new Error(`train: the validation PSNR became ${valPsnr} at epoch ${epoch + 1}: the model diverged (its outputs are not finite), though the training loss was finite; try a lower learning rate`);
        }
        schedule.report?.(valPsnr);
        const record: EpochRecord = { epoch: epoch + 1, trainLoss: lossSum / stepsPerEpoch, valPsnr, lr: opt.lr, beta1: opt.beta1, seconds: (performance.now() - t0) / 1000 };
        result.history.push(record);
        bar?.update({ epoch: epoch + 1, psnr: valPsnr.toFixed(2) });
        const improved = valPsnr > result.bestPsnr;
        if (improved) {
          result.bestPsnr = valPsnr;
          result.bestEpoch = epoch + 1;
          bestState = await model.stateValues();
        }
        if (last && best) {
          const meta = JSON.stringify({ epoch, result, schedule: schedule.state(), settings });
          // best before last: a run killed between the two resumes from the epoch before and runs this epoch again,
          // which writes best.safetensors again if it improves. Both are whole files or nothing (writeFileAtomic).
          if (improved) {
            await saveCheckpoint(best, model, opt, meta);
            writeFileAtomic(last, fs.readFileSync(best));
          } else {
            await saveCheckpoint(last, model, opt, meta);
          }
        }
        o.onEpoch?.(result);
        if (o.stopAfterEpoch !== undefined && epoch + 1 >= o.stopAfterEpoch) break;
      }
    } finally {
      bar?.stop();
    }
    // Keep the best weights: this run's best from the copy kept in memory, an earlier one (before a resume) from
    // best.safetensors, which must then hold that epoch.
    if (result.bestEpoch !== epochs && result.bestEpoch > 0) {
      const stored = !bestState && best && fs.existsSync(best) ? readSafetensors(best) : null;
      const held = stored ? checkpointEpoch(stored.metadata) : null;
      if (bestState) await model.loadStateDict(bestState);
      else if (stored && held === result.bestEpoch) await loadCheckpoint(best!, model, null, stored);
      else {
        throw new Error(`train: the best epoch was ${result.bestEpoch}, but ${best ?? 'best.safetensors'} ${stored ? (held === null ? 'does not say which epoch it holds' : `holds epoch ${held}`) : 'is missing'}; the weights in memory are the last epoch's`);
      }
    }
    return result;
  } finally {
    opt.dispose();
  }
}

/**
 * Why a run with `now` cannot continue a checkpoint trained with `saved`, each setting that differs named with both
 * values; null when it can. More epochs are fine where the checkpoint's schedule does not depend on the total.
 */
function settingsProblem(saved: TrainingSettings, now: TrainingSettings): string | null {
  const totalFree = saved.schedule === 'constant' || saved.schedule === 'plateau';
  const keys = Object.keys(now) as Array<keyof TrainingSettings>;
  const differ = keys.filter((k) => JSON.stringify(saved[k]) !== JSON.stringify(now[k]) && !(k === 'epochs' && totalFree));
  if (differ.length === 0) return null;
  const note = (k: keyof TrainingSettings): string => (k === 'epochs' ? `; ${saved.schedule} is made for its total of epochs: only constant and plateau runs take more` : '');
  return `this run's training settings are not the checkpoint's: ${differ.map((k) => `${SETTING_NAMES[k]} ${now[k]} (the checkpoint's: ${saved[k]}${note(k)})`).join(', ')}`;
}

/** Each training setting as the command line names it. */
const SETTING_NAMES: Record<keyof TrainingSettings, string> = {
  lr: '--lr', schedule: '--schedule', optimizer: '--optimizer', weightDecay: 'weight decay', batchSize: '--batch', seed: '--seed',
  trainImages: 'training images (--train-limit)', validationImages: 'validation images (--train-limit)', epochs: '--epochs',
};

/** The epoch (1-based) a checkpoint of trainAutoencoder was written after, from its metadata; null if it says none. */
function checkpointEpoch(metadata: Record<string, string>): number | null {
  const training = JSON.parse(metadata.training ?? '{}') as { epoch?: number };
  return typeof training.epoch === 'number' ? training.epoch + 1 : null;
}

/**
 * [start, end) of each batch over n shuffled images: batches of batchSize, the last one shorter, except that a lone
 * last image joins the batch before it. Batch norm in training mode needs more than one value per channel, and
 * at a 1x1 bottleneck (esann at 64x64) a batch of one image has only one.
 */
export function batchRanges(n: number, batchSize: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let s = 0; s < n; s += batchSize) out.push([s, Math.min(n, s + batchSize)]);
  if (batchSize > 1 && out.length > 1 && out[out.length - 1][1] - out[out.length - 1][0] === 1) {
    out.pop();
    out[out.length - 1][1] = n;
  }
  return out;
}

/** Mean PSNR of the model's restorations of the stained validation images, in eval mode. */
export async function validate(model: Autoencoder, inputs: Float32Array[], targets: Float32Array[], size: number, batchSize: number): Promise<number> {
  model.eval();
  let total = 0;
  for (let s = 0; s < inputs.length; s += batchSize) {
    const n = Math.min(batchSize, inputs.length - s);
    const out = noGrad(() => scope(() => model.forward(batchTensor(inputs.slice(s, s + n), size, model.parameters()[0].backend)).output));
    const v = await out.data();
    out.dispose();
    for (let i = 0; i < n; i++) {
      let se = 0;
      const t = targets[s + i];
      for (let p = 0; p < size * size; p++) {
        const d = v[i * size * size + p] - t[p];
        se += d * d;
      }
      total += psnr(se / (size * size));
    }
  }
  model.train();
  return total / inputs.length;
}

/** The model's options as a checkpoint stores them: all but the backend (a live object, not a setting of the model). */
function savedOptions(model: Autoencoder): Omit<Autoencoder['options'], 'backend'> {
  const { backend: _backend, ...options } = model.options;
  return options;
}

/** Writes model weights, buffers and Adam's moments (optimizer.m.<name>, optimizer.v.<name>) with training metadata. */
export async function saveCheckpoint(file: string, model: Autoencoder, opt: Adam | null, training = '{}'): Promise<void> {
  const tensors = new Map<string, StoredTensor>();
  const put = async (name: string, t: Tensor): Promise<void> => {
    tensors.set(name, { dtype: t.dtype, shape: t.shape.slice(), data: await t.data() });
  };
  for (const [name, t] of model.stateDict()) await put(name, t);
  if (opt) {
    const { m, v, step, paramSteps } = opt.state();
    const names = model.namedParameters().map(([n]) => n);
    for (let i = 0; i < names.length; i++) {
      await put(`optimizer.m.${names[i]}`, m[i]);
      await put(`optimizer.v.${names[i]}`, v[i]);
    }
    training = JSON.stringify({ ...JSON.parse(training), optimizerStep: step, optimizerParamSteps: paramSteps });
  }
  writeSafetensors(file, tensors, { format: 'skipgrad', options: JSON.stringify(savedOptions(model)), training });
}

/** Loads a checkpoint into the model (and the optimizer's moments, if given); returns its metadata. `stored`: the file's contents, when the caller has read them already. */
export async function loadCheckpoint(file: string, model: Autoencoder, opt: Adam | null, stored = readSafetensors(file)): Promise<{ training: string; options: string }> {
  const { tensors, metadata } = stored;
  for (const [k, t] of tensors) {
    const bad = t.data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new Error(`${file}: '${k}' holds ${t.data[bad]} at index ${bad}: the weights are not finite (the run that saved them diverged); train again with a lower --lr`);
  }
  const own = new Map([...tensors].filter(([k]) => !k.startsWith('optimizer.')));
  try {
    await model.loadStateDict(own);
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  if (opt) {
    const { m, v } = opt.state();
    const names = model.namedParameters().map(([n]) => n);
    names.forEach((n, i) => {
      for (const [kind, list] of [['m', m], ['v', v]] as const) {
        const st = tensors.get(`optimizer.${kind}.${n}`);
        if (!st) throw new Error(`${file}: optimizer state 'optimizer.${kind}.${n}' is missing (cannot resume)`);
        list[i].backend.write(list[i].handle, st.data);
        list[i].handle.version++;
      }
    });
    // optimizerParamSteps: absent in checkpoints written before Adam counted steps per parameter (every parameter
    // had a gradient at every step then, so each one's count is the optimizer's).
    const training = JSON.parse(metadata.training ?? '{}') as { optimizerStep?: number; optimizerParamSteps?: number[] };
    try {
      opt.loadSteps(training.optimizerStep ?? 0, training.optimizerParamSteps);
    } catch (e) {
      throw new Error(`${file}: ${(e as Error).message}`);
    }
  }
  return { training: metadata.training ?? '{}', options: metadata.options ?? '{}' };
}
