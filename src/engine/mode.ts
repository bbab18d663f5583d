/** Global autograd mode: whether ops record a graph, and which pass runs: forward, backward, or an optimizer update (for traces). */
export type Phase = 'forward' | 'backward' | 'update';

let gradEnabled = true;
let phase: Phase = 'forward';

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording the autograd graph (inference, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
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
