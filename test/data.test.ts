/**
 * Data sets: PNG decoding (every colour type and bit depth) and resizing, the MVTec AD loader, and the
 * synthetic generator that writes the same layout, read back through the real loader.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import fc from 'fast-check';
import { PNG, type ColorType } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkWritable, makeDirs, writeFileAtomic } from '../src/engine/io/atomic.js';
import { Rng } from '../src/engine/random.js';
import { listCategories, loadCategory, splitTrainValidation } from '../src/experiments/data/mvtec.js';
import {
  decodeGrayPng,
  encodeGrayPng,
  readGrayPng,
  readMask,
  resizeBilinear,
  writeGrayPng,
  writeRgbPng,
} from '../src/experiments/data/png.js';
import { DEFECT_KINDS, SYNTHETIC_CATEGORIES, generateDataset, renderSample, syntheticCategoryServes } from '../src/experiments/data/synthetic.js';
import { DEFAULTS, generateSynthetic, loadData } from '../src/experiments/pipeline.js';

let tmp = '';
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'skipgrad-data-'));
});
afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** A fresh folder under the test's temporary folder. */
let dirCount = 0;
function freshDir(name: string): string {
  const d = path.join(tmp, `${name}-${dirCount++}`);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

/** All files under dir (relative paths, sorted). */
function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name), path.join(rel, e.name));
      else out.push(path.join(rel, e.name));
    }
  };
  walk(dir, '');
  return out.sort();
}

const lum = (r: number, g: number, b: number): number => 0.299 * r + 0.587 * g + 0.114 * b;

// ---------------------------------------------------------------------------------------------------------
// PNG builders for the tests

/** Encode with pngjs: `samples` are the input samples (bytes for 8-bit, 16-bit values for 16-bit). */
function pngjsEncode(w: number, h: number, samples: number[], colorType: ColorType, bitDepth: 8 | 16): Buffer {
  const data = bitDepth === 8 ? Buffer.from(samples) : Buffer.from(new Uint16Array(samples).buffer);
  const meta = { width: w, height: h, data, gamma: 0 } as unknown as PNG;
  return PNG.sync.write(meta, { colorType, inputColorType: colorType, bitDepth, inputHasAlpha: colorType === 4 || colorType === 6 });
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/**
 * Hand-built PNG (filter 0 on every row), for what pngjs cannot write: palettes, 1/2/4-bit gray, tRNS.
 * `rows` are the rows' samples (palette indices or gray levels), packed MSB-first at `depth` bits.
 */
function handPng(w: number, h: number, depth: 1 | 2 | 4 | 8, colorType: 0 | 3, rows: number[][], extra: Buffer[] = []): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = depth;
  ihdr[9] = colorType;
  const rowBytes = Math.ceil((w * depth) / 8);
  const raw = Buffer.alloc(h * (rowBytes + 1));
  for (let y = 0; y < h; y++) {
    const base = y * (rowBytes + 1) + 1;
    for (let x = 0; x < w; x++) {
      const bit = x * depth;
      raw[base + (bit >> 3)] |= rows[y][x] << (8 - depth - (bit & 7));
    }
  }
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([sig, chunk('IHDR', ihdr), ...extra, chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

function expectClose(actual: Float32Array, expected: number[], tol = 1e-6): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(Math.abs(actual[i] - expected[i]), `index ${i}: ${actual[i]} vs ${expected[i]}`).toBeLessThanOrEqual(tol);
}

// ---------------------------------------------------------------------------------------------------------

describe('PNG decoding to gray', () => {
  const w = 4;
  const h = 2;

  it('reads 8- and 16-bit gray exactly (16-bit keeps its precision)', () => {
    const g8 = [0, 1, 2, 127, 128, 200, 254, 255];
    expectClose(decodeGrayPng(pngjsEncode(w, h, g8, 0, 8)).data, g8.map((v) => v / 255));
    const g16 = [0, 1, 255, 256, 32768, 40000, 65534, 65535];
    const img = decodeGrayPng(pngjsEncode(w, h, g16, 0, 16));
    expect([img.width, img.height]).toEqual([w, h]);
    expectClose(img.data, g16.map((v) => v / 65535), 1e-7);
    expect(img.data[1]).toBeGreaterThan(0); // 1/65535 would be lost by a rescale to 8 bits
  });

  it('ignores alpha (gray+alpha and RGBA, 8 and 16 bits)', () => {
    const gray = [0, 30, 60, 90, 120, 150, 200, 255];
    const alpha = [255, 0, 128, 0, 1, 255, 0, 77];
    const ga8 = gray.flatMap((g, i) => [g, alpha[i]]);
    expectClose(decodeGrayPng(pngjsEncode(w, h, ga8, 4, 8)).data, gray.map((v) => v / 255));
    const ga16 = gray.flatMap((g, i) => [g * 257, alpha[i] * 257]);
    expectClose(decodeGrayPng(pngjsEncode(w, h, ga16, 4, 16)).data, gray.map((v) => v / 255), 1e-6);
    const rgb = gray.map((g, i) => [g, (g * 3 + 17) % 256, (255 - g + i) % 256]);
    const rgba8 = rgb.flatMap((c, i) => [...c, alpha[i]]);
    expectClose(decodeGrayPng(pngjsEncode(w, h, rgba8, 6, 8)).data, rgb.map(([r, g, b]) => lum(r, g, b) / 255));
    const rgba16 = rgb.flatMap((c, i) => [...c.map((v) => v * 256 + 3), alpha[i] * 257]);
    expectClose(decodeGrayPng(pngjsEncode(w, h, rgba16, 6, 16)).data, rgb.map(([r, g, b]) => lum(r * 256 + 3, g * 256 + 3, b * 256 + 3) / 65535));
  });

  it('converts RGB (8 and 16 bits) with the BT.601 luminance 0.299 R + 0.587 G + 0.114 B', () => {
    const rgb = [
      [255, 0, 0],
      [0, 255, 0],
      [0, 0, 255],
      [255, 255, 255],
      [0, 0, 0],
      [200, 100, 50],
      [10, 20, 30],
      [77, 77, 77],
    ];
    const expected = rgb.map(([r, g, b]) => lum(r, g, b) / 255);
    expectClose(decodeGrayPng(pngjsEncode(w, h, rgb.flat(), 2, 8)).data, expected);
    expect(decodeGrayPng(pngjsEncode(w, h, rgb.flat(), 2, 8)).data[0]).toBeCloseTo(0.299, 6);
    const rgb16 = rgb.map((c) => c.map((v) => v * 257));
    expectClose(decodeGrayPng(pngjsEncode(w, h, rgb16.flat(), 2, 16)).data, expected);
    const odd = [1000, 2000, 3000];
    const one = decodeGrayPng(pngjsEncode(1, 1, odd, 2, 16)).data[0];
    expect(one).toBeCloseTo(lum(1000, 2000, 3000) / 65535, 7);
  });

  it('reads palette images (8- and 4-bit indices, a colour and a gray palette, tRNS alpha ignored)', () => {
    const palette = [
      [0, 0, 0],
      [255, 255, 255],
      [255, 0, 0],
      [12, 34, 56],
      [128, 128, 128],
    ];
    const plte = chunk('PLTE', Buffer.from(palette.flat()));
    const trns = chunk('tRNS', Buffer.from([0, 0, 128, 255, 10]));
    const idx = [
      [0, 1, 2, 3],
      [4, 3, 2, 1],
    ];
    const expected = idx.flat().map((k) => {
      const [r, g, b] = palette[k];
      return r === g && g === b ? r / 255 : lum(r, g, b) / 255;
    });
    expectClose(decodeGrayPng(handPng(w, h, 8, 3, idx, [plte])).data, expected);
    expectClose(decodeGrayPng(handPng(w, h, 4, 3, idx, [plte, trns])).data, expected);
    expectClose(decodeGrayPng(handPng(w, h, 2, 3, idx.map((r) => r.map((k) => k % 4)), [plte])).data, idx.flat().map((k) => expected[idx.flat().indexOf(k % 4)]));
  });

  it('reads 1-, 2- and 4-bit gray, scaled by 2^depth - 1', () => {
    for (const depth of [1, 2, 4] as const) {
      const max = 2 ** depth - 1;
      const rows = [
        [0, max, 1 % (max + 1), max >> 1, 0],
        [max, 0, max, 1, max >> 1],
      ];
      expectClose(decodeGrayPng(handPng(5, 2, depth, 0, rows)).data, rows.flat().map((v) => v / max));
    }
  });

  it('ignores a tRNS transparent colour in a gray image (pngjs would zero those pixels)', () => {
    const trns = Buffer.alloc(2);
    trns.writeUInt16BE(100);
    const rows = [[100, 50, 100, 255]];
    expectClose(decodeGrayPng(handPng(4, 1, 8, 0, rows, [chunk('tRNS', trns)])).data, rows[0].map((v) => v / 255));
  });

  it('writeGrayPng round-trips bytes exactly and floats to the nearest 8-bit level, leaving no temporary file', () => {
    const dir = freshDir('write');
    const bytes = new Uint8Array(7 * 5);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 37 + 11) % 256;
    const f = path.join(dir, 'bytes.png');
    writeGrayPng(f, bytes, 5, 7);
    const back = readGrayPng(f);
    expect([back.width, back.height]).toEqual([7, 5]);
    expectClose(back.data, Array.from(bytes, (v) => v / 255));
    const floats = Float32Array.from([0, 0.5, 1, -0.2, 1.3, 0.001, 0.999, 0.25]);
    writeGrayPng(f, floats, 2, 4); // overwrites atomically
    expectClose(readGrayPng(f).data, Array.from(floats, (v) => Math.round(Math.min(1, Math.max(0, v)) * 255) / 255));
    const rgbFile = path.join(dir, 'rgb.png');
    writeRgbPng(rgbFile, Uint8Array.from([255, 0, 0, 10, 20, 30]), 1, 2);
    expectClose(readGrayPng(rgbFile).data, [lum(255, 0, 0) / 255, lum(10, 20, 30) / 255]);
    expect(fs.readdirSync(dir).sort()).toEqual(['bytes.png', 'rgb.png']);
    expect(encodeGrayPng(bytes, 5, 7).equals(encodeGrayPng(bytes, 5, 7))).toBe(true);
  });

  it('readMask binarises (> 0 -> 1), and resizes as the authors do: bilinear, then any level that rounds to 1 or more', () => {
    const dir = freshDir('mask');
    const f = path.join(dir, 'm_mask.png');
    // 2x4 mask: left half 0, right half 255, with one faint pixel (1) that must count as set.
    writeGrayPng(f, Uint8Array.from([0, 1, 255, 255, 0, 0, 255, 255]), 2, 4);
    expect(Array.from(readMask(f))).toEqual([0, 1, 1, 1, 0, 0, 1, 1]);
    // Up to 4x8: column x samples (x + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25, 1.75, ...; rows 0-1
    // blend input row 0 with weights 1 and 0.75, rows 2-3 with 0.25 and 0. Levels of rows 0 and 2:
    //   0, 0.25, 0.75, 64.5, 191.5, 255, 255, 255   and   0, 0.06, 0.19, 63.9, 191.3, 255, 255, 255
    // so the faint pixel's blends count where they reach half a level, and column 3 (a quarter of 255) always does
    // (nearest-neighbour gave 0 0 0 0 1 1 1 1 in rows 2-3).
    expect(Array.from(readMask(f, 4, 8))).toEqual([
      ...[0, 0, 1, 1, 1, 1, 1, 1],
      ...[0, 0, 1, 1, 1, 1, 1, 1],
      ...[0, 0, 0, 1, 1, 1, 1, 1],
      ...[0, 0, 0, 1, 1, 1, 1, 1],
    ]);
    // A defect pixel in the corner of a 4x4 mask shrunk to 2x2: bilinear blends it into output (0, 0) (a quarter of
    // 255), where nearest-neighbour (sampling input (1, 1)) would lose it.
    const g = path.join(dir, 'corner_mask.png');
    writeGrayPng(g, Uint8Array.from([255, ...new Array<number>(15).fill(0)]), 4, 4);
    expect(Array.from(readMask(g, 2, 2))).toEqual([1, 0, 0, 0]);
    // A faint level that blends below half a level is not set (the authors' 8-bit resize rounds it to 0).
    writeGrayPng(g, Uint8Array.from([1, ...new Array<number>(15).fill(0)]), 4, 4);
    expect(Array.from(readMask(g, 2, 2))).toEqual([0, 0, 0, 0]);
  });
});

describe('resizing', () => {
  it('bilinear 2x2 -> 4x4 with half-pixel centres (OpenCV INTER_LINEAR): edges replicated', () => {
    // Output pixel x samples sx = (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 -> clamped 0, 0.25, 0.75, 1.
    const a = [0, 0.25, 0.75, 1];
    const out = resizeBilinear([0, 1, 2, 3], 2, 2, 4, 4);
    const expected: number[] = [];
    for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) expected.push(a[x] + 2 * a[y]);
    expectClose(out, expected);
  });

  it('bilinear downscale of a ramp takes the two middle taps (no antialiasing)', () => {
    const ramp = Array.from({ length: 8 }, (_, i) => i);
    expectClose(resizeBilinear(ramp, 1, 8, 1, 4), [0.5, 2.5, 4.5, 6.5]);
    // 4x4 2-D ramp v = 10 y + x -> 2x2: samples at 0.5 and 2.5 on each axis.
    const r2 = Array.from({ length: 16 }, (_, i) => 10 * Math.floor(i / 4) + (i % 4));
    expectClose(resizeBilinear(r2, 4, 4, 2, 2), [5.5, 7.5, 25.5, 27.5], 1e-5);
    // A 1024 -> 256 shrink (as MVTec -> 256) of a ramp stays a ramp: output x = 4 x + 1.5.
    const big = Array.from({ length: 1024 }, (_, i) => i);
    const small = resizeBilinear(big, 1, 1024, 1, 256);
    for (let x = 0; x < 256; x++) expect(small[x]).toBeCloseTo(4 * x + 1.5, 3);
  });

  it('bilinear keeps constant images constant, is the identity at the same size, and stays within the input range', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 17 }), fc.integer({ min: 1, max: 17 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.nat(), (h, w, oh, ow, c, seed) => {
        const konst = new Array(h * w).fill(c);
        const out = resizeBilinear(konst, h, w, oh, ow);
        for (const v of out) expect(Math.abs(v - Math.fround(c))).toBeLessThanOrEqual(1e-6);
        const rng = new Rng(seed);
        const img = Array.from({ length: h * w }, () => rng.next());
        expectClose(resizeBilinear(img, h, w, h, w), img);
        const lo = Math.min(...img);
        const hi = Math.max(...img);
        for (const v of resizeBilinear(img, h, w, oh, ow)) expect(v >= lo - 1e-6 && v <= hi + 1e-6).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it('rejects sizes that do not match the data', () => {
    expect(() => resizeBilinear([1, 2, 3], 2, 2, 4, 4)).toThrow(/3 values, expected h\*w = 2\*2 = 4/);
    expect(() => resizeBilinear([1], 1, 1, 0, 4)).toThrow(/outH must be a positive integer/);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('synthetic data set through the MVTec AD loader', () => {
  const S = 64;
  const counts = { trainCount: 6, testGoodCount: 3, testDefectCount: 2 };
  let root = '';

  beforeAll(() => {
    root = freshDir('synth');
    generateDataset(root, { size: S, seed: 7, ...counts });
  });

  it('writes the MVTec AD layout for every category', () => {
    const names = SYNTHETIC_CATEGORIES.map((c) => c.name);
    expect(listCategories(root)).toEqual([...names].sort());
    expect(SYNTHETIC_CATEGORIES.filter((c) => c.kind === 'texture').length).toBeGreaterThanOrEqual(3);
    expect(SYNTHETIC_CATEGORIES.filter((c) => c.kind === 'object').length).toBeGreaterThanOrEqual(2);
    const files = listFiles(path.join(root, 'disc')).filter((f) => !path.basename(f).startsWith('.'));
    expect(files).toContain(path.join('train', 'good', '005.png'));
    expect(files).toContain(path.join('test', 'good', '002.png'));
    for (const k of DEFECT_KINDS) {
      expect(files).toContain(path.join('test', k, '001.png'));
      expect(files).toContain(path.join('ground_truth', k, '001_mask.png'));
    }
    expect(files.length).toBe(6 + 3 + DEFECT_KINDS.length * 4);
  });

  it("training takes the synthetic set as it is, whatever test counts it was made for; the other steps remake it for theirs", () => {
    const out = freshDir('train-only');
    const cfg = { ...DEFAULTS, out, categories: ['woven'], trainLimit: 4, testLimit: 10, progress: false };
    const marker = path.join(out, 'data', 'woven', '.skipgrad-synthetic.json');
    generateSynthetic(cfg, path.join(out, 'data'), ['woven']);
    const made = fs.readFileSync(marker, 'utf8');
    expect(JSON.parse(made)).toMatchObject({ testGoodCount: 10 });
    // train (which refuses --test-limit, so runs with the default) loads train/good from it without remaking it.
    expect(loadData({ ...cfg, testLimit: DEFAULTS.testLimit }, 'woven', true).train).toHaveLength(4);
    expect(fs.readFileSync(marker, 'utf8')).toBe(made);
    // evaluate with other test counts needs other test images: remade.
    loadData({ ...cfg, testLimit: DEFAULTS.testLimit }, 'woven');
    expect(JSON.parse(fs.readFileSync(marker, 'utf8'))).toMatchObject({ testGoodCount: Math.max(DEFAULTS.testLimit, 4) });
  });

  it('says complete in its marker only once every image is written, and serves only the request it was made for', () => {
    const cat = path.join(root, 'disc');
    const want = { size: S, seed: 7, ...counts };
    expect(syntheticCategoryServes(cat, want)).toBe(true);
    expect(syntheticCategoryServes(cat, { ...want, trainCount: 4 })).toBe(false); // exactly: a larger set would load more
    expect(syntheticCategoryServes(cat, { ...want, trainCount: 7 })).toBe(false);
    expect(syntheticCategoryServes(cat, { ...want, seed: 8 })).toBe(false);
    expect(syntheticCategoryServes(cat, { ...want, size: 128 })).toBe(false);
    expect(syntheticCategoryServes(cat, { ...want, testGoodCount: want.testGoodCount + 1 })).toBe(false);
    // Training asks without test counts (it reads train/good alone): any serve it.
    const { testGoodCount: _g, testDefectCount: _d, ...forTraining } = want;
    expect(syntheticCategoryServes(cat, forTraining)).toBe(true);
    expect(syntheticCategoryServes(cat, { ...forTraining, trainCount: 4 })).toBe(false);
    expect(syntheticCategoryServes(path.join(root, 'nope'), want)).toBe(false);
    // What a killed generator leaves: a hidden partial folder (not a category) with an incomplete marker.
    const partial = path.join(root, '.disc.partial');
    fs.cpSync(cat, partial, { recursive: true });
    const marker = path.join(partial, '.skipgrad-synthetic.json');
    fs.writeFileSync(marker, JSON.stringify({ ...JSON.parse(fs.readFileSync(marker, 'utf8')) as object, complete: false }));
    expect(syntheticCategoryServes(partial, want)).toBe(false);
    expect(listCategories(root)).not.toContain('.disc.partial');
    // The next generation removes it, and replaces the category in one rename.
    generateDataset(root, { size: S, seed: 7, categories: ['disc'], ...counts });
    expect(fs.existsSync(partial)).toBe(false);
    expect(syntheticCategoryServes(cat, want)).toBe(true);
  });

  it('loads back with the right counts, sizes, labels and masks', () => {
    for (const name of listCategories(root)) {
      const cat = loadCategory(root, name, S);
      expect(cat.name).toBe(name);
      expect(cat.size).toBe(S);
      expect(cat.train.length).toBe(counts.trainCount);
      expect(cat.test.length).toBe(counts.testGoodCount + DEFECT_KINDS.length * counts.testDefectCount);
      expect(new Set(cat.test.map((s) => s.label))).toEqual(new Set(['good', ...DEFECT_KINDS]));
      for (const s of [...cat.train, ...cat.test]) {
        expect(s.image.length).toBe(S * S);
        expect(s.image.every((v) => v >= 0 && v <= 1)).toBe(true);
        if (s.label === 'good') expect(s.mask).toBeNull();
        else {
          expect(s.mask!.length).toBe(S * S);
          const n = s.mask!.reduce((a, b) => a + b, 0);
          expect(n, `${s.file}: mask pixels`).toBeGreaterThan(0);
          expect(n, `${s.file}: mask pixels`).toBeLessThan(S * S * 0.2);
        }
      }
      // Files come in name order.
      const trainNames = cat.train.map((s) => path.basename(s.file));
      expect(trainNames).toEqual([...trainNames].sort());
      // Not all images are the same.
      expect(cat.train[0].image).not.toEqual(cat.train[1].image);
    }
  });

  it('the images on disk are the rendered ones, and a defect changes exactly the pixels of its mask', () => {
    for (const { name, rgb } of SYNTHETIC_CATEGORIES) {
      const cat = loadCategory(root, name, S);
      const tol = rgb ? 0.0065 + 1 / 255 : 1e-6;
      const good = renderSample(name, S, 7, 'train', 'good', 2).image;
      const loaded = cat.train[2].image;
      let worst = 0;
      for (let i = 0; i < S * S; i++) worst = Math.max(worst, Math.abs(loaded[i] - Math.round(good[i] * 255) / 255));
      expect(worst, name).toBeLessThanOrEqual(tol);
      for (const kind of DEFECT_KINDS) {
        const sample = cat.test.find((s) => s.label === kind && path.basename(s.file) === '001.png')!;
        const r = renderSample(name, S, 7, 'test', kind, 1);
        expect(Array.from(sample.mask!)).toEqual(Array.from(r.mask!));
        // The written defect image differs from the written clean image exactly on the mask.
        let changed = 0;
        let disagree = 0;
        for (let i = 0; i < S * S; i++) {
          const c8 = Math.round(Math.min(1, Math.max(0, r.clean[i])) * 255);
          const d8 = Math.round(Math.min(1, Math.max(0, r.image[i])) * 255);
          const diff = d8 !== c8 ? 1 : 0;
          changed += diff;
          if (diff !== r.mask![i]) disagree++;
          // And the loaded file is that defect image.
          if (!rgb && Math.abs(sample.image[i] - d8 / 255) > 1e-6) disagree++;
        }
        expect(disagree, `${name}/${kind}: pixels where the change and the mask disagree`).toBe(0);
        expect(changed, `${name}/${kind}: changed pixels`).toBeGreaterThan(0);
      }
    }
  });

  it('the tiles category is written as RGB PNGs, the others and all masks as gray', () => {
    const colorType = (f: string): number => fs.readFileSync(f)[25];
    expect(colorType(path.join(root, 'tiles', 'train', 'good', '000.png'))).toBe(2);
    expect(colorType(path.join(root, 'tiles', 'ground_truth', 'hole', '000_mask.png'))).toBe(0);
    expect(colorType(path.join(root, 'woven', 'test', 'scratch', '000.png'))).toBe(0);
  });

  it('resizes images and masks bilinearly on load (masks then binarised), and honours the limits', () => {
    const small = loadCategory(root, 'nut', 32, { limitTrain: 2, limitTest: 1 });
    expect(small.size).toBe(32);
    expect(small.train.length).toBe(2);
    expect(small.test.length).toBe(1 + DEFECT_KINDS.length);
    const full = loadCategory(root, 'nut', S, { limitTrain: 1, limitTest: 1 });
    expectClose(small.train[0].image, Array.from(resizeBilinear(full.train[0].image, S, S, 32, 32)), 1e-6);
    for (let k = 0; k < small.test.length; k++) {
      const m = full.test[k].mask;
      // The full-size mask is 0/1; its bilinear blend reaches half a level (of 255) wherever it is not 0.
      expect(small.test[k].mask).toEqual(m === null ? null : Uint8Array.from(resizeBilinear(m, S, S, 32, 32), (v) => (v > 0.5 / 255 ? 1 : 0)));
      if (m !== null) expect(small.test[k].mask!.some((v) => v === 1)).toBe(true);
    }
  });

  it('is deterministic: same seed -> byte-identical files, another seed -> different images', () => {
    const opts = { size: 32, categories: ['woven', 'tiles', 'disc'], trainCount: 3, testGoodCount: 1, testDefectCount: 1 };
    const a = generateDataset(freshDir('det-a'), { ...opts, seed: 3 }).root;
    const b = generateDataset(freshDir('det-b'), { ...opts, seed: 3 }).root;
    const c = generateDataset(freshDir('det-c'), { ...opts, seed: 4 }).root;
    const fa = listFiles(a);
    expect(listFiles(b)).toEqual(fa);
    expect(listFiles(c)).toEqual(fa);
    let differ = 0;
    let images = 0;
    for (const f of fa) {
      expect(fs.readFileSync(path.join(b, f)).equals(fs.readFileSync(path.join(a, f))), f).toBe(true);
      if (f.endsWith('.png') && !f.includes('ground_truth')) {
        images++;
        if (!fs.readFileSync(path.join(c, f)).equals(fs.readFileSync(path.join(a, f)))) differ++;
      }
    }
    expect(differ).toBe(images);
  });

  it('regenerates over its own output but refuses to overwrite a foreign folder', () => {
    const dir = freshDir('regen');
    const opts = { size: 16, categories: ['noise'], trainCount: 2, testGoodCount: 1, testDefectCount: 1 };
    generateDataset(dir, { ...opts, trainCount: 4 });
    generateDataset(dir, opts);
    expect(loadCategory(dir, 'noise', 16).train.length).toBe(2);
    fs.mkdirSync(path.join(dir, 'disc'));
    fs.writeFileSync(path.join(dir, 'disc', 'precious.txt'), 'x');
    expect(() => generateDataset(dir, { ...opts, categories: ['disc'] })).toThrow(/disc.*not written by this generator/);
    expect(() => generateDataset(dir, { ...opts, categories: ['carpet'] })).toThrow(/unknown category 'carpet'/);
  });
});

describe('splitTrainValidation', () => {
  it('holds out floor(fraction * n), deterministically from the Rng, keeping the order', () => {
    const items = Array.from({ length: 23 }, (_, i) => i);
    const s1 = splitTrainValidation(items, 0.2, new Rng(5));
    const s2 = splitTrainValidation(items, 0.2, new Rng(5));
    const s3 = splitTrainValidation(items, 0.2, new Rng(6));
    expect(s1).toEqual(s2);
    expect(s1.validation.length).toBe(4);
    expect(s1.train.length).toBe(19);
    expect([...s1.train, ...s1.validation].sort((a, b) => a - b)).toEqual(items);
    expect(s1.train).toEqual([...s1.train].sort((a, b) => a - b));
    expect(s3.validation).not.toEqual(s1.validation);
    expect(splitTrainValidation(items).validation).toEqual(splitTrainValidation(items).validation);
    expect(splitTrainValidation([1, 2, 3], 0.2, new Rng(1)).validation.length).toBe(1);
    expect(splitTrainValidation([1], 0.2, new Rng(1)).validation.length).toBe(0);
    expect(() => splitTrainValidation(items, 1)).toThrow(/fraction/);
  });
});

describe('errors name the file or folder', () => {
  let good = '';
  beforeAll(() => {
    good = freshDir('err-src');
    generateDataset(good, { size: 16, categories: ['disc'], trainCount: 2, testGoodCount: 1, testDefectCount: 1 });
  });
  const copy = (): string => {
    const d = freshDir('err');
    fs.cpSync(good, d, { recursive: true });
    return d;
  };
  const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

  it('folders that cannot be made: a file in the way, or a parent where mkdir fails (/proc), fail at once naming the folder', () => {
    const d = freshDir('mkdirs');
    makeDirs(path.join(d, 'a', 'b', 'c'));
    makeDirs(path.join(d, 'a', 'b')); // already there
    expect(fs.statSync(path.join(d, 'a', 'b', 'c')).isDirectory()).toBe(true);
    const file = path.join(d, 'a', 'f');
    fs.writeFileSync(file, 'x');
    expect(() => makeDirs(file)).toThrow(new RegExp(`${esc(file)}: is not a directory`));
    expect(() => makeDirs(path.join(file, 'x', 'y'))).toThrow(new RegExp(`${esc(path.join(file, 'x'))}: cannot make this directory \\(ENOTDIR`));
    expect(() => writeFileAtomic(path.join(file, 'x', 'out.json'), '{}')).toThrow(/out\.json: cannot be written .*ENOTDIR/);
    // Node 20's own recursive mkdir loops forever here (mkdir answers ENOENT under /proc, which exists).
    if (fs.existsSync('/proc/self')) {
      expect(() => makeDirs('/proc/skipgrad-test/x')).toThrow(/\/proc\/skipgrad-test: cannot make this directory \(ENOENT/);
      expect(() => generateDataset('/proc/skipgrad-test/data', { size: 16, categories: ['disc'], trainCount: 1, testGoodCount: 1, testDefectCount: 1 }))
        .toThrow(/\/proc\/skipgrad-test: cannot make this directory/);
    }
  });

  it('a checkpoint-sized write removes the temp files of writes whose process is gone, and nothing else', () => {
    const d = freshDir('stale');
    const dead = path.join(d, '.w.bin.999999999.0.tmp'); // no such pid
    const mine = path.join(d, `.w.bin.${process.pid}.77.tmp`);
    const other = path.join(d, '.v.bin.999999999.0.tmp'); // another file's
    for (const f of [dead, mine, other]) fs.writeFileSync(f, 'x');
    writeFileAtomic(path.join(d, 'w.bin'), new Uint8Array(100)); // small: no look
    expect(fs.existsSync(dead)).toBe(true);
    writeFileAtomic(path.join(d, 'w.bin'), new Uint8Array(1 << 20));
    expect(fs.existsSync(dead)).toBe(false);
    expect(fs.existsSync(mine)).toBe(true);
    expect(fs.existsSync(other)).toBe(true);
    expect(fs.statSync(path.join(d, 'w.bin')).size).toBe(1 << 20);
    checkWritable(path.join(d, 'made', 'here'));
    expect(fs.readdirSync(path.join(d, 'made', 'here'))).toEqual([]);
    const file = path.join(d, 'f');
    fs.writeFileSync(file, 'x');
    expect(() => checkWritable(path.join(file, 'sub'))).toThrow(/cannot make this directory/);
  });

  it('a PNG whose header claims a huge image is refused before decoding; bytes after IEND are ignored; a truncated one says so', () => {
    const d = copy();
    const f = path.join(d, 'disc', 'test', 'good', '000.png');
    const bytes = Buffer.from(fs.readFileSync(f));
    bytes.writeUInt32BE(60000, 16);
    bytes.writeUInt32BE(60000, 20);
    fs.writeFileSync(f, bytes);
    expect(() => readGrayPng(f)).toThrow(new RegExp(`^${esc(f)}: a 60000x60000 PNG is larger than this reader takes \\(16384 pixels a side\\)`));
    const good = fs.readFileSync(path.join(d, 'disc', 'train', 'good', '000.png'));
    const iend = good.length - 12;
    // Bytes after IEND (some tools append them) are ignored, as most decoders do.
    fs.writeFileSync(f, Buffer.concat([good, Buffer.from('trailing junk')]));
    expect(Array.from(readGrayPng(f).data)).toEqual(Array.from(readGrayPng(path.join(d, 'disc', 'train', 'good', '000.png')).data));
    fs.writeFileSync(f, good.subarray(0, iend - 8)); // cut inside the image data
    expect(() => readGrayPng(f)).toThrow(new RegExp(`^${esc(f)}: not a valid PNG \\(the image data ends early: the file is truncated\\)`));
  });

  it('missing folders', () => {
    const nowhere = path.join(tmp, 'no-such-root');
    expect(() => listCategories(nowhere)).toThrow(new RegExp(`missing folder ${esc(nowhere)}`));
    expect(() => loadCategory(good, 'carpet', 16)).toThrow(new RegExp(`missing folder ${esc(path.join(good, 'carpet'))}`));
    const d = copy();
    fs.rmSync(path.join(d, 'disc', 'train'), { recursive: true });
    expect(() => loadCategory(d, 'disc', 16)).toThrow(new RegExp(esc(path.join(d, 'disc', 'train', 'good'))));
    const e = copy();
    fs.rmSync(path.join(e, 'disc', 'test'), { recursive: true });
    expect(() => loadCategory(e, 'disc', 16)).toThrow(new RegExp(`missing folder ${esc(path.join(e, 'disc', 'test'))}`));
    // Training reads train/good only, so a folder without test/ (and ground_truth/) trains.
    const trainOnly = loadCategory(e, 'disc', 16, { trainOnly: true });
    expect(trainOnly.train.length).toBe(2);
    expect(trainOnly.test).toEqual([]);
  });

  it('a file that is not a PNG, or empty', () => {
    const d = copy();
    const f = path.join(d, 'disc', 'train', 'good', '001.png');
    fs.writeFileSync(f, 'GIF89a not a png at all');
    expect(() => loadCategory(d, 'disc', 16)).toThrow(new RegExp(`^${esc(f)}: not a PNG file`));
    fs.writeFileSync(f, '');
    expect(() => readGrayPng(f)).toThrow(new RegExp(`^${esc(f)}: not a PNG file .*empty`));
    // Files not named .png are ignored.
    fs.writeFileSync(f, fs.readFileSync(path.join(d, 'disc', 'train', 'good', '000.png')));
    fs.writeFileSync(path.join(d, 'disc', 'train', 'good', 'notes.txt'), 'hello');
    expect(loadCategory(d, 'disc', 16).train.length).toBe(2);
  });

  it('a truncated or corrupted PNG', () => {
    const d = copy();
    const f = path.join(d, 'disc', 'test', 'good', '000.png');
    const bytes = fs.readFileSync(f);
    fs.writeFileSync(f, bytes.subarray(0, Math.floor(bytes.length / 2)));
    expect(() => loadCategory(d, 'disc', 16)).toThrow(new RegExp(`^${esc(f)}: not a valid PNG \\(.+\\)`));
    const bad = Buffer.from(bytes);
    bad[bad.length - 20] ^= 0xff; // inside the IDAT data or its CRC
    fs.writeFileSync(f, bad);
    expect(() => readGrayPng(f)).toThrow(new RegExp(`^${esc(f)}: not a valid PNG \\(.+\\)`));
    const g = path.join(d, 'missing.png');
    expect(() => readGrayPng(g)).toThrow(new RegExp(`^${esc(g)}: no such file`));
  });

  it('a mask of another size than its image', () => {
    const d = copy();
    const mask = path.join(d, 'disc', 'ground_truth', 'hole', '000_mask.png');
    writeGrayPng(mask, new Uint8Array(20 * 10).fill(255), 20, 10); // 10 wide, 20 high; the image is 16x16
    const img = path.join(d, 'disc', 'test', 'hole', '000.png');
    expect(() => loadCategory(d, 'disc', 16)).toThrow(new RegExp(`^${esc(mask)}: the mask is 10x20, but its image ${esc(img)} is 16x16; a mask must be the size of its image`));
    // The same shape, and at any --size, loads.
    writeGrayPng(mask, new Uint8Array(16 * 16), 16, 16);
    expect(loadCategory(d, 'disc', 8).test.find((s) => s.file === img)?.mask).toHaveLength(64);
  });

  it('a defective test image without its mask', () => {
    const d = copy();
    const mask = path.join(d, 'disc', 'ground_truth', 'hole', '000_mask.png');
    fs.rmSync(mask);
    const img = path.join(d, 'disc', 'test', 'hole', '000.png');
    expect(() => loadCategory(d, 'disc', 16)).toThrow(new RegExp(`^${esc(img)}: defective test image \\('hole'\\) has no mask; expected ${esc(mask)}`));
  });
});
