/**
 * Learning-rate schedules, stepped once per epoch (as the authors' code does).
 *   constant:      lr
 *   oneCycle:      PyTorch's OneCycleLR over the epochs (pct_start 0.3, div_factor 25, final_div_factor 1e4, cosine
 *                  annealing by default): warm up from maxLr/25 to maxLr over the first 30% of the epochs, then anneal
 *                  to maxLr/25/1e4. With `momentum`, Adam's beta1 cycles the other way (OneCycleLR's cycle_momentum).
 *   oneCycleSteps: the authors' PyTorch code (docs/reference-facts.md §3): OneCycleLR made for epochs x
 *                  stepsPerEpoch optimizer steps but stepped once per epoch, with linear annealing and beta1 cycled
 *                  from 0.95 towards 0.85 (OneCycleLR's defaults). In effect a slow linear warm-up from maxLr/25 that
 *                  reaches a fraction of maxLr: 250 epochs of 8 steps (280 images, see authorsStepsPerEpoch): lr
 *                  4e-4 -> 4.39e-3 and beta1 0.95 -> 0.908 for maxLr 0.01.
 *   reduceOnPlateau: halve (factor) the lr when the monitored value (validation PSNR in dB, higher is better) has not
 *                  improved by more than minDelta for `patience` epochs in a row (Keras ReduceLROnPlateau, mode max,
 *                  cooldown 0: reduce when wait >= patience). minDelta defaults to 1 dB, as the authors' Keras code
 *                  calls it (min_delta=1), not Keras's own default of 1e-4.
 */
import { expectOptions } from '../ops/util.js';

export interface Schedule {
  /** The learning rate for epoch `epoch` (0-based), given the metric of the previous epochs. */
  lr(epoch: number): number;
  /** Adam's beta1 for epoch `epoch`, where the schedule cycles it (one-cycle's momentum); else absent. */
  beta1?(epoch: number): number;
  /** Reports the epoch's monitored value (used by reduceOnPlateau). */
  report?(value: number): void;
  /** State to save in a checkpoint, and restore. */
  state(): Record<string, number>;
  load(state: Record<string, number>): void;
}

export function constantSchedule(lr: number): Schedule {
  return { lr: () => lr, state: () => ({}), load: () => {} };
}

export interface OneCycleOptions {
  /** Fraction of the steps spent warming up (default 0.3). */
  pctStart?: number;
  /** The first lr is maxLr / divFactor (default 25). */
  divFactor?: number;
  /** The last lr is maxLr / divFactor / finalDivFactor (default 1e4). */
  finalDivFactor?: number;
  /** How the lr (and beta1) move within each phase: 'cos' (default) or 'linear' (OneCycleLR's anneal_strategy). */
  anneal?: 'cos' | 'linear';
  /** Cycle Adam's beta1 from `max` down to `base` while the lr rises, then back (OneCycleLR's cycle_momentum). */
  momentum?: { base: number; max: number };
}

const ONE_CYCLE_OPTIONS: Record<keyof OneCycleOptions, true> = { pctStart: true, divFactor: true, finalDivFactor: true, anneal: true, momentum: true };

export function oneCycleSchedule(maxLr: number, epochs: number, options: OneCycleOptions = {}): Schedule {
  // A number here (the old positional pctStart) is refused, not silently ignored.
  expectOptions('oneCycle', options, ONE_CYCLE_OPTIONS);
  const { pctStart = 0.3, divFactor = 25, finalDivFactor = 1e4, anneal = 'cos', momentum } = options ?? {};
  if (anneal !== 'cos' && anneal !== 'linear') throw new Error(`oneCycle: anneal must be 'cos' or 'linear', got ${JSON.stringify(anneal)}`);
  if (momentum && !(momentum.base >= 0 && momentum.base <= momentum.max && momentum.max < 1)) {
    throw new Error(`oneCycle: momentum must have 0 <= base <= max < 1, got base ${momentum.base}, max ${momentum.max}`);
  }
  const initial = maxLr / divFactor;
  const min = initial / finalDivFactor;
  const total = Math.max(1, epochs);
  const up = pctStart * total - 1;
  const down = total - 1;
  const move = anneal === 'cos'
    ? (start: number, end: number, pct: number): number => end + ((start - end) / 2) * (Math.cos(Math.PI * pct) + 1)
    : (start: number, end: number, pct: number): number => start + (end - start) * pct;
  /** The phase of `epoch` and how far into it: PyTorch's OneCycleLR.get_lr(). */
  const at = (epoch: number): { rising: boolean; pct: number } => {
    if (!(epoch >= 0 && epoch <= total - 1)) {
      throw new RangeError(`oneCycle: epoch ${epoch} is outside the schedule's ${total} epochs (0 to ${total - 1}); make the schedule for as many epochs as you train`);
    }
    if (epoch <= up) return { rising: true, pct: up <= 0 ? 1 : epoch / up };
    return { rising: false, pct: down - up <= 0 ? 1 : (epoch - up) / (down - up) };
  };
  return {
    lr(epoch: number): number {
      const { rising, pct } = at(epoch);
      return rising ? move(initial, maxLr, pct) : move(maxLr, min, pct);
    },
    ...(momentum ? {
      beta1(epoch: number): number {
        const { rising, pct } = at(epoch);
        return rising ? move(momentum.max, momentum.base, pct) : move(momentum.base, momentum.max, pct);
      },
    } : {}),
    state: () => ({}),
    load: () => {},
  };
}

export function reduceOnPlateauSchedule(lr: number, factor = 0.5, patience = 30, minLr = 0, minDelta = 1): Schedule {
  let current = lr;
  let best = -Infinity;
  let wait = 0;
  return {
    lr: () => current,
    report(value: number): void {
      if (value > best + minDelta) {
        best = value;
        wait = 0;
      } else if (++wait >= patience) {
        current = Math.max(minLr, current * factor);
        wait = 0;
      }
    },
    state: () => ({ current, best, wait }),
    load(s: Record<string, number>): void {
      current = s.current ?? current;
      best = s.best ?? best;
      wait = s.wait ?? wait;
    },
  };
}

/**
 * The authors' PyTorch code (configs/train/DefaultTrain.yaml, models/SuperClass.py) makes its OneCycleLR for
 * int(len(train/good) / 32) steps per epoch: 32 is its config's Batch_size, though its DataLoader draws batches of
 * 8, and the count is of the whole train/good folder, before the 20% hold-out. (Under 32 images PyTorch would refuse
 * a cycle of 0 steps; this gives 1.)
 */
const AUTHORS_CONFIG_BATCH = 32;
export function authorsStepsPerEpoch(trainGoodImages: number): number {
  return Math.max(1, Math.floor(trainGoodImages / AUTHORS_CONFIG_BATCH));
}

/**
 * The authors' schedule: OneCycleLR of `epochs * stepsPerEpoch` steps with linear annealing and beta1 cycled between
 * 0.95 and 0.85, stepped once per epoch (lr(epoch) = step `epoch`).
 */
export function oneCycleStepsSchedule(maxLr: number, epochs: number, stepsPerEpoch: number): Schedule {
  if (!Number.isInteger(stepsPerEpoch) || stepsPerEpoch < 1) throw new Error(`oneCycleSteps: stepsPerEpoch must be a positive integer, got ${stepsPerEpoch}`);
  const cycle = oneCycleSchedule(maxLr, Math.max(1, epochs) * stepsPerEpoch, { anneal: 'linear', momentum: { base: 0.85, max: 0.95 } });
  const check = (epoch: number): void => {
    if (!(epoch >= 0 && epoch <= Math.max(1, epochs) - 1)) {
      throw new RangeError(`oneCycleSteps: epoch ${epoch} is outside the schedule's ${Math.max(1, epochs)} epochs`);
    }
  };
  return {
    lr(epoch: number): number {
      check(epoch);
      return cycle.lr(epoch);
    },
    beta1(epoch: number): number {
      check(epoch);
      return cycle.beta1!(epoch);
    },
    state: () => ({}),
    load: () => {},
  };
}

export type ScheduleName = 'constant' | 'onecycle' | 'onecycle-steps' | 'plateau';
export const SCHEDULE_NAMES: readonly ScheduleName[] = ['constant', 'onecycle', 'onecycle-steps', 'plateau'];

/** The schedule called `name`; onecycle-steps needs the steps per epoch of the authors' cycle (authorsStepsPerEpoch). */
export function makeSchedule(name: ScheduleName, lr: number, epochs: number, stepsPerEpoch = 1): Schedule {
  if (name === 'constant') return constantSchedule(lr);
  if (name === 'onecycle') return oneCycleSchedule(lr, epochs);
  if (name === 'onecycle-steps') return oneCycleStepsSchedule(lr, epochs, stepsPerEpoch);
  if (name === 'plateau') return reduceOnPlateauSchedule(lr);
  throw new Error(`unknown learning-rate schedule '${name as string}' (expected ${SCHEDULE_NAMES.join(', ')})`);
}
