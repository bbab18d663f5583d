/**
 * BatchNorm2d forward and backward kernels (NCHW), accumulating statistics in float64.
 *
 * Forward, per channel c over the M = N*H*W values of x:
 *   training: mean = sum(x)/M, var = sum((x-mean)^2)/M (biased), invStd = 1/sqrt(var + eps);
 *             running stats (if any): r = (1-momentum)*r + momentum*stat, with var*M/(M-1) (unbiased) for the variance
 *   eval:     mean = runningMean, invStd = 1/sqrt(runningVar + eps)
 *   y = gamma * (x - mean) * invStd + beta
 * Backward, with xhat = (x - mean) * invStd:
 *   dbeta = sum(dy), dgamma = sum(dy * xhat)
 *   training: dx = gamma * invStd / M * (M*dy - dbeta - xhat * dgamma)   (mean and var depend on x)
 *   eval:     dx = gamma * invStd * dy                                   (statistics are constants)
 */
import type { BatchNorm2dParams } from '../backend.js';
import type { FloatArray } from '../dtype.js';

export function batchNorm2dForward(x: FloatArray, gamma: FloatArray, beta: FloatArray, runningMean: FloatArray | null,
  runningVar: FloatArray | null, y: FloatArray, saveMean: FloatArray, saveInvStd: FloatArray, p: BatchNorm2dParams): void {
  const { batch, channels, height, width, eps, momentum, training } = p;
  const hw = height * width;
  const m = batch * hw;
  for (let c = 0; c < channels; c++) {
    let mean: number;
    let invStd: number;
    if (training) {
      let s = 0;
      for (let n = 0; n < batch; n++) {
        const base = (n * channels + c) * hw;
        for (let i = 0; i < hw; i++) s += x[base + i];
      }
      mean = s / m;
      let v = 0;
      for (let n = 0; n < batch; n++) {
        const base = (n * channels + c) * hw;
        for (let i = 0; i < hw; i++) {
          const d = x[base + i] - mean;
          v += d * d;
        }
      }
      const variance = v / m;
      invStd = 1 / Math.sqrt(variance + eps);
      if (runningMean && runningVar) {
        runningMean[c] = (1 - momentum) * runningMean[c] + momentum * mean;
        runningVar[c] = (1 - momentum) * runningVar[c] + momentum * (m > 1 ? variance * m / (m - 1) : variance);
      }
    } else {
      if (!runningMean || !runningVar) throw new Error('batchNorm2d: eval mode needs running mean and variance');
      mean = runningMean[c];
      invStd = 1 / Math.sqrt(runningVar[c] + eps);
    }
    saveMean[c] = mean;
    saveInvStd[c] = invStd;
    const scale = gamma[c] * invStd;
    const shift = beta[c] - mean * scale;
    for (let n = 0; n < batch; n++) {
      const base = (n * channels + c) * hw;
      for (let i = 0; i < hw; i++) y[base + i] = x[base + i] * scale + shift;
    }
  }
}

export function batchNorm2dBackward(dy: FloatArray, x: FloatArray, gamma: FloatArray, saveMean: FloatArray, saveInvStd: FloatArray,
  dx: FloatArray, dgamma: FloatArray, dbeta: FloatArray, p: BatchNorm2dParams): void {
  const { batch, channels, height, width, training } = p;
  const hw = height * width;
  const m = batch * hw;
  for (let c = 0; c < channels; c++) {
    const mean = saveMean[c];
    const invStd = saveInvStd[c];
    let sumDy = 0;
    let sumDyXhat = 0;
    for (let n = 0; n < batch; n++) {
      const base = (n * channels + c) * hw;
      for (let i = 0; i < hw; i++) {
        const g = dy[base + i];
        sumDy += g;
        sumDyXhat += g * (x[base + i] - mean) * invStd;
      }
    }
    dbeta[c] = sumDy;
    dgamma[c] = sumDyXhat;
    const k = gamma[c] * invStd;
    for (let n = 0; n < batch; n++) {
      const base = (n * channels + c) * hw;
      if (training) {
        for (let i = 0; i < hw; i++) {
          const xhat = (x[base + i] - mean) * invStd;
          dx[base + i] = (k / m) * (m * dy[base + i] - sumDy - xhat * sumDyXhat);
        }
      } else {
        for (let i = 0; i < hw; i++) dx[base + i] = k * dy[base + i];
      }
    }
  }
}
