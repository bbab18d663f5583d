/**
 * The command line end to end: a tiny `skipgrad reproduce` writes the report, the JSON next to every figure,
 * and valid PNG and SVG files; bad arguments get clear errors; `trace` writes Perfetto JSON.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'skipgrad-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { env: { ...process.env, SKIPGRAD_BACKEND: 'cpu' }, maxBuffer: 1 << 26 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

function expectPng(file: string): void {
  const png = PNG.sync.read(fs.readFileSync(file));
  expect(png.width).toBeGreaterThan(100);
  expect(png.height).toBeGreaterThan(100);
}

function expectSvg(file: string): void {
  const s = fs.readFileSync(file, 'utf8');
  expect(s).toMatch(/^(<\?xml[^>]*>\s*)?<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  expect(s.trim().endsWith('</svg>')).toBe(true);
  expect((s.match(/<svg\b/g) ?? []).length).toBe((s.match(/<\/svg>/g) ?? []).length);
}

describe('skipgrad CLI', () => {
  it('reproduce (tiny) writes the report, JSON beside every figure, valid PNG and SVG', async () => {
    const out = path.join(tmp, 'run');
    const r = await cli(['reproduce', '--backend', 'cpu', '--out', out, '--size', '64', '--channels', '4', '--epochs', '1',
      '--train-limit', '6', '--test-limit', '2', '--analysis-images', '3', '--category', 'woven', '--no-progress']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/report: .*report\.html/);
    const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(html).toContain('woven');
    expect(html).toMatch(/trend (appears|does not appear)|paper's (claimed )?trend/i);
    expect(html).toContain('data:image/png;base64,');
    expect(html).not.toMatch(/<script/);
    const dir = path.join(out, 'woven');
    for (const f of ['cosine.json', 'fig2.json', 'evaluation.json', 'aesc/history.json', 'ae/history.json']) {
      expect(() => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')), f).not.toThrow();
    }
    expectPng(path.join(dir, 'fig2.png'));
    expectPng(path.join(dir, 'fig3.png'));
    expectSvg(path.join(dir, 'fig3.svg'));
    expectSvg(path.join(dir, 'aesc', 'curves.svg'));
    const cos = JSON.parse(fs.readFileSync(path.join(dir, 'cosine.json'), 'utf8')) as { layers: string[]; aesc: Record<string, { values: number[] }> };
    expect(cos.layers).toEqual(['l1', 'l2', 'l3', 'l4', 'l5', 'l6', 'l7', 'l8', 'l9']);
    expect(cos.aesc.l1.values).toHaveLength(3);
    const ev = JSON.parse(fs.readFileSync(path.join(dir, 'evaluation.json'), 'utf8')) as { headlineNorm: string; aesc: { image: Record<string, Record<string, { all: number }>> } };
    expect(ev.headlineNorm).toBe('l2');
    const a = ev.aesc.image.residual.l2.all;
    expect(a).toBeGreaterThanOrEqual(0);
    expect(a).toBeLessThanOrEqual(1);
    expect(fs.existsSync(path.join(dir, 'aesc', 'best.safetensors'))).toBe(true);
  });

  it('trace writes Chrome trace JSON of one training step', async () => {
    const out = path.join(tmp, 'trace');
    const r = await cli(['trace', '--backend', 'cpu', '--out', out, '--size', '64', '--channels', '2', '--batch', '2']);
    expect(r.code, r.stderr).toBe(0);
    const t = JSON.parse(fs.readFileSync(path.join(out, 'trace.json'), 'utf8')) as { traceEvents: Array<{ ph: string; name: string; cat: string; tid: number }> };
    const ops = t.traceEvents.filter((e) => e.ph === 'X');
    expect(ops.some((e) => e.name === 'conv2d' && e.cat === 'forward')).toBe(true);
    expect(ops.some((e) => e.name === 'conv2dGradWeight' && e.cat === 'backward')).toBe(true);
    // The optimizer update is its own phase, on its own row of the trace viewer.
    const adam = ops.filter((e) => e.name === 'adam');
    expect(adam.length).toBeGreaterThan(0);
    expect(adam.every((e) => e.cat === 'update' && e.tid === 3)).toBe(true);
    expect(r.stdout).toMatch(/op calls, [\d.]+ GFLOP/);
  });

  it('bad arguments get clear errors and a non-zero exit', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['frobnicate'], /unknown command 'frobnicate'/],
      [['train', '--size', 'big'], /--size expects an integer >= 8, got 'big'/],
      [['train', '--preset', 'vgg'], /--preset must be one of esann, icpr, got 'vgg'/],
      [['train', '--backend', 'tpu'], /--backend must be one of auto, cpu, webgpu, got 'tpu'/],
      [['train', '--whatever'], /Unknown option '--whatever'/],
      [['analyze', '--out', path.join(tmp, 'empty'), '--category', 'woven', '--backend', 'cpu'], /best\.safetensors not found: train it first/],
      [['evaluate', '--out', path.join(tmp, 'empty'), '--category', 'woven', '--backend', 'cpu'], /aesc.best\.safetensors not found: train it first/],
      [['train', '--data', path.join(tmp, 'nowhere'), '--backend', 'cpu'], /--data .*nowhere: no such folder/],
      [['train', '--category', 'marble', '--out', path.join(tmp, 'm'), '--backend', 'cpu'], /no built-in synthetic category marble/],
      [['train', '--size', '32', '--out', path.join(tmp, 'small'), '--backend', 'cpu'], /--size 32 does not fit the esann network: .*the least size that fits is 61/],
      [['reproduce', '--preset', 'icpr', '--size', '96', '--out', path.join(tmp, 'small')], /--size 96 does not fit the icpr network: .*divisible by 2\^6/],
    ];
    for (const [args, msg] of cases) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(msg);
    }
    // A missing model is found before any data is generated.
    expect(fs.existsSync(path.join(tmp, 'empty', 'data'))).toBe(false);
    // So is a size the network cannot take: nothing is written.
    expect(fs.existsSync(path.join(tmp, 'small'))).toBe(false);
    const help = await cli(['help']);
    expect(help.stdout).toContain('reproduce');
    expect(help.stdout).toContain('--backend auto|cpu|webgpu');
  });
});
