/**
 * Loader for data sets in the MVTec AD layout (docs/reference-facts.md §6):
 *
 *   <root>/<category>/train/good/*.png
 *   <root>/<category>/test/good/*.png
 *   <root>/<category>/test/<defect>/NNN.png
 *   <root>/<category>/ground_truth/<defect>/NNN_mask.png   (binary 0/255; good images have no mask)
 *
 * Preprocessing as in the authors' code (docs/reference-facts.md §3): read, convert to gray (BT.601 luminance),
 * resize to size x size bilinearly (OpenCV INTER_LINEAR convention, see png.ts), values in [0, 1]. Masks are
 * resized the same way and then binarised (8-bit level > 0 -> 1), as the authors' code does (png.ts, readMask);
 * a mask must be the size of its image (an error otherwise, naming both files).
 *
 * Everything is deterministic: folders and files are taken in code-unit order of their names (not the
 * locale's), so the same tree always loads in the same order. Files not ending in .png are ignored (e.g.
 * .DS_Store); a file ending in .png that is not a valid PNG is an error that names it.
 *
 * The validation hold-out (20% of train/good) is made by pipeline.ts's trainStep, with splitTrainValidation.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Rng } from '../../engine/random.js';
import { readGrayPng, readMask, resizeBilinear, type GrayImage } from './png.js';

export interface Sample {
  /** The image file the sample was read from. */
  file: string;
  /** size x size gray values in [0, 1], row-major. */
  image: Float32Array;
  /** 'good', or the defect kind (the name of its test/ sub-folder). */
  label: 'good' | string;
  /** size x size 0/1 ground truth for a defective test image; null for good images. */
  mask: Uint8Array | null;
}

export interface Category {
  name: string;
  /** The side the images and masks were resized to. */
  size: number;
  train: Sample[];
  test: Sample[];
}

export interface LoadOptions {
  /** Keep only the first limitTrain training images (in file-name order). */
  limitTrain?: number;
  /**
   * Keep only the first limitTest images of EACH test sub-folder (good and every defect kind, in file-name
   * order), so that a limited test set still holds every label.
   */
  limitTest?: number;
  /** Load only train/good (training needs nothing else; test/ and ground_truth/ may then be missing). */
  trainOnly?: boolean;
}

/** Code-unit order (independent of the locale). */
function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function requireDir(p: string, what: string): void {
  if (!fs.existsSync(p)) throw new Error(`mvtec: missing folder ${p} (${what})`);
  if (!isDir(p)) throw new Error(`mvtec: ${p} is not a folder (${what})`);
}

function subfolders(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() || (e.isSymbolicLink() && isDir(path.join(dir, e.name))))
    .map((e) => e.name)
    .filter((n) => !n.startsWith('.'))
    .sort(byName);
}

function pngFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => !e.isDirectory() && /\.png$/i.test(e.name) && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort(byName);
}

/**
 * The categories under root: its sub-folders that hold a train/good folder, sorted by name. Other entries
 * (license.txt, readme.txt, unrelated folders) are skipped.
 */
export function listCategories(root: string): string[] {
  requireDir(root, 'the data set root');
  return subfolders(root).filter((name) => !name.startsWith('.') && isDir(path.join(root, name, 'train', 'good')));
}

function checkLimit(name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isInteger(v) && v >= 0)) {
    throw new Error(`mvtec: ${name} must be a non-negative integer, got ${v}`);
  }
}

/** A gray image resized to size x size (bilinear). */
function atSize(img: GrayImage, size: number): Float32Array {
  return resizeBilinear(img.data, img.height, img.width, size, size);
}

/**
 * Load one category: train/good and every test/<label> folder, images resized to size x size. Test samples
 * come folder by folder in name order ('good' among them, where its name sorts), files in name order.
 * A defective test image must have its mask at ground_truth/<defect>/<stem>_mask.png.
 */
export function loadCategory(root: string, name: string, size: number, opts: LoadOptions = {}): Category {
  if (!Number.isInteger(size) || size < 1) throw new Error(`mvtec: size must be a positive integer, got ${size}`);
  checkLimit('limitTrain', opts.limitTrain);
  checkLimit('limitTest', opts.limitTest);
  const catDir = path.join(root, name);
  requireDir(catDir, `category '${name}' under ${root}`);
  const trainDir = path.join(catDir, 'train', 'good');
  requireDir(trainDir, `the training images of '${name}', expected ${path.join(root, name, 'train', 'good')}/*.png`);
  const testDir = path.join(catDir, 'test');
  if (!opts.trainOnly) requireDir(testDir, `the test images of '${name}', expected ${path.join(root, name, 'test', '<label>')}/*.png`);
  const gtDir = path.join(catDir, 'ground_truth');

  let trainFiles = pngFiles(trainDir);
  if (opts.limitTrain !== undefined) trainFiles = trainFiles.slice(0, opts.limitTrain);
  const train: Sample[] = trainFiles.map((f) => {
    const file = path.join(trainDir, f);
    return { file, image: atSize(readGrayPng(file), size), label: 'good', mask: null };
  });

  const test: Sample[] = [];
  for (const label of opts.trainOnly ? [] : subfolders(testDir)) {
    const dir = path.join(testDir, label);
    let files = pngFiles(dir);
    if (opts.limitTest !== undefined) files = files.slice(0, opts.limitTest);
    for (const f of files) {
      const file = path.join(dir, f);
      const img = readGrayPng(file);
      let mask: Uint8Array | null = null;
      if (label !== 'good') {
        const maskFile = path.join(gtDir, label, `${f.replace(/\.png$/i, '')}_mask.png`);
        if (!fs.existsSync(maskFile)) {
          throw new Error(`${file}: defective test image ('${label}') has no mask; expected ${maskFile}`);
        }
        mask = readMask(maskFile, size, size, { file, width: img.width, height: img.height });
      }
      test.push({ file, image: atSize(img, size), label, mask });
    }
  }
  return { name, size, train, test };
}

/**
 * Split samples into training and validation parts, deterministically from rng: a Fisher-Yates shuffle of
 * the indices, the first floor(fraction * n) of them for validation (the authors' code holds out
 * floor(0.2 * n) after a seeded shuffle); at least one when fraction > 0 and n >= 2, so a tiny set still
 * validates. Each part keeps the samples' original order. The default rng is a fixed Rng(42).
 */
export function splitTrainValidation<T>(
  samples: readonly T[],
  fraction = 0.2,
  rng: Rng = new Rng(42),
): { train: T[]; validation: T[] } {
  if (!(fraction >= 0 && fraction < 1)) throw new Error(`splitTrainValidation: fraction must be in [0, 1), got ${fraction}`);
  const n = samples.length;
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i);
    const t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  }
  let nVal = Math.floor(fraction * n);
  if (nVal === 0 && fraction > 0 && n >= 2) nVal = 1;
  const isVal = new Uint8Array(n);
  for (let k = 0; k < nVal; k++) isVal[idx[k]] = 1;
  const train: T[] = [];
  const validation: T[] = [];
  for (let i = 0; i < n; i++) (isVal[i] ? validation : train).push(samples[i]);
  return { train, validation };
}
