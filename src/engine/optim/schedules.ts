/**
 * Learning-rate schedules, stepped once per epoch (as the authors' code does).
 *   constant:      lr
 *   oneCycle:      PyTorch's OneCycleLR (cosine annealing, pct_start 0.3, div_factor 25, final_div_factor 1e4):
 *                  warm up from maxLr/25 to maxLr over the first 30% of the epochs, then anneal to maxLr/25/1e4
 *   oneCycleSteps: the same cycle made for epochs x steps-per-epoch optimizer steps but stepped once per epoch,
 *                  as the authors' PyTorch code does (docs/reference-facts.md §3): in effect a slow warm-up from
 *                  maxLr/25 that reaches a fraction of maxLr (250 epochs of 25 steps: 4e-4 -> 8.1e-4 for 0.01).
 *                  (OneCycleLR also cycles Adam's beta1 between 0.95 and 0.85; that is not reproduced.)
 *   reduceOnPlateau: halve (factor) the lr when the monitored value (validation PSNR, higher is better)
 *                  has not improved by more than minDelta for `patience` epochs in a row (Keras ReduceLROnPlateau,
 *                  mode max, with its defaults min_delta 1e-4, cooldown 0: reduce when wait >= patience)
 */
export interface Schedule {
  /** The learning rate for epoch `epoch` (0-based), given the metric of the previous epochs. */
  lr(epoch: number): number;
  /** Reports the epoch's monitored value (used by reduceOnPlateau). */
  report?(value: number): void;
  /** State to save in a checkpoint, and restore. */
  state(): Record<string, number>;
  load(state: Record<string, number>): void;
}

export function constantSchedule(lr: number): Schedule {
  return { lr: () => lr, state: () => ({}), load: () => {} };
}

export function oneCycleSchedule(maxLr: number, epochs: number, pctStart = 0.3, divFactor = 25, finalDivFactor = 1e4): Schedule {
  const initial = maxLr / divFactor;
  const min = initial / finalDivFactor;
  const total = Math.max(1, epochs);
  const up = pctStart * total - 1;
  const down = total - 1;
  const cos = (start: number, end: number, pct: number): number => end + ((start - end) / 2) * (Math.cos(Math.PI * pct) + 1);
  return {
    lr(epoch: number): number {
      if (!(epoch >= 0 && epoch <= total - 1)) {
        throw new RangeError(`oneCycle: epoch ${epoch} is outside the schedule's ${total} epochs (0 to ${total - 1}); make the schedule for as many epochs as you train`);
      }
      if (epoch <= up) return cos(initial, maxLr, up <= 0 ? 1 : epoch / up);
      return cos(maxLr, min, down - up <= 0 ? 1 : (epoch - up) / (down - up));
    },
    state: () => ({}),
    load: () => {},
  };
}

export function reduceOnPlateauSchedule(lr: number, factor = 0.5, patience = 30, minLr = 0, minDelta = 1e-4): Schedule {
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

/** The one-cycle schedule of `epochs * stepsPerEpoch` steps, stepped once per epoch (lr(epoch) = step `epoch`). */
export function oneCycleStepsSchedule(maxLr: number, epochs: number, stepsPerEpoch: number): Schedule {
  if (!Number.isInteger(stepsPerEpoch) || stepsPerEpoch < 1) throw new Error(`oneCycleSteps: stepsPerEpoch must be a positive integer, got ${stepsPerEpoch}`);
  const cycle = oneCycleSchedule(maxLr, Math.max(1, epochs) * stepsPerEpoch);
  return {
    lr(epoch: number): number {
      if (!(epoch >= 0 && epoch <= Math.max(1, epochs) - 1)) {
        throw new RangeError(`oneCycleSteps: epoch ${epoch} is outside the schedule's ${Math.max(1, epochs)} epochs`);
      }
      return cycle.lr(epoch);
    },
    state: () => ({}),
    load: () => {},
  };
}

export type ScheduleName = 'constant' | 'onecycle' | 'onecycle-steps' | 'plateau';
export const SCHEDULE_NAMES: readonly ScheduleName[] = ['constant', 'onecycle', 'onecycle-steps', 'plateau'];

/** The schedule called `name`; onecycle-steps needs the steps per epoch (default 1, which makes it onecycle). */
export function makeSchedule(name: ScheduleName, lr: number, epochs: number, stepsPerEpoch = 1): Schedule {
  if (name === 'constant') return constantSchedule(lr);
  if (name === 'onecycle') return oneCycleSchedule(lr, epochs);
  if (name === 'onecycle-steps') return oneCycleStepsSchedule(lr, epochs, stepsPerEpoch);
  if (name === 'plateau') return reduceOnPlateauSchedule(lr);
  throw new Error(`unknown learning-rate schedule '${name as string}' (expected ${SCHEDULE_NAMES.join(', ')})`);
}
