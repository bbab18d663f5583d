/** How the bench tables mark a measurement (bench/tfjs-run.ts fmtTime / fmtRatio, shared by the op and model benches). */
import { describe, expect, it } from 'vitest';
import { fmtRatio, fmtTime } from '../bench/tfjs-run.js';

describe('bench formatting', () => {
  it('marks lower bounds with >, warm-up-only times with * and short medians with ~, on times and on ratios alike', () => {
    expect(fmtTime(12.345, 'median')).toBe('12 ms');
    expect(fmtTime(12.345, 'partial-median', 1)).toBe('~12.3 ms');
    expect(fmtRatio(2.5, 'partial-median', 1)).toBe('~2.5x');
    expect(fmtTime(4000, 'lower-bound')).toBe('>4.00 s');
    expect(fmtTime(2830, 'warm-up')).toBe('2.83 s*');
    expect(fmtTime(null, 'failed')).toBe('n/a');
    expect(fmtRatio(9.24, 'lower-bound', 1)).toBe('>9.2x');
    expect(fmtRatio(4.0, 'warm-up', 1)).toBe('4.0x*');
    expect(fmtRatio(1.5)).toBe('1.50x');
    expect(fmtRatio(null)).toBe('');
    expect(fmtRatio(Infinity)).toBe('');
  });
});
