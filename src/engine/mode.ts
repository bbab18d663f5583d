/** Global autograd mode: whether ops record a graph, and which pass runs: forward, backward, or an optimizer update (for traces). */
export type Phase = 'forward' | 'backward' | 'update';

let gradEnabled = true;
let phase: Phase = 'forward';

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording the autograd graph (inference, optimizer updates). fn must be synchronous. */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  let result: T;
  try {
    result = fn();
  } finally {
    gradEnabled = prev;
  }
  return refusePromise('noGrad', result);
}

/**
 * Throws if a mode-setting wrapper's fn returned a Promise: the mode is global and synchronous, so it would be off
 * again for everything after fn's first await. (The Promise's own failure, if any, is then not reported twice.)
 */
export function refusePromise<T>(wrapper: string, result: T): T {
  if (result instanceof Promise) {
    result.catch(() => undefined);
    throw new Error(`${wrapper}: fn returned a Promise, but ${wrapper} only covers synchronous code (it would end at fn's first await); make fn synchronous and await outside`);
  }
  return result;
}

export function currentPhase(): Phase {
  return phase;
}

export function withPhase<T>(p: Phase, fn: () => T): T {
  const prev = phase;
  phase = p;
  try {
    return fn();
  } finally {
    phase = prev;
  }
}
