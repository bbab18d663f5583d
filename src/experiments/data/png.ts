/**
 * PNG input/output for the data sets, on top of pngjs.
 *
 * Reading (`readGrayPng`, `decodeGrayPng`) turns any PNG that the PNG specification allows into a gray
 * image in [0, 1]:
 * - every colour type (gray, gray+alpha, RGB, RGBA, palette) and bit depth (1, 2, 4, 8, 16);
 * - samples are read at their full precision (pngjs `skipRescale`), then divided by the largest sample
 *   value of the bit depth (255 for palette entries, 2^depth - 1 otherwise), so 16-bit images keep their
 *   16-bit precision;
 * - colour is reduced to luminance L = 0.299 R + 0.587 G + 0.114 B, the ITU-R BT.601 weights that OpenCV
 *   (`cv2.cvtColor(..., COLOR_BGR2GRAY)`, used by the authors' PyTorch code) and PIL (`convert('L')`) use;
 *   a pixel with R = G = B is taken as is, so gray images are read exactly. Unlike OpenCV and PIL the result
 *   is not rounded to 8 bits (the difference is at most 0.5/255);
 * - alpha is ignored, and so is a tRNS chunk (pngjs would otherwise zero the pixels of the transparent
 *   colour of a gray or RGB image); gAMA is ignored as OpenCV and PIL do.
 *
 * Resizing (`resizeBilinear`) follows OpenCV's `cv2.resize(..., interpolation=INTER_LINEAR)`, which the
 * authors' code uses (through albumentations): see its documentation comment.
 *
 * Writing (`writeGrayPng`, `writeRgbPng`) makes 8-bit PNGs, atomically (a temporary file in the same folder,
 * then a rename), so a reader never sees a half-written file. The bytes depend only on the pixels.
 *
 * Every error names the file.
 */
import * as fs from 'node:fs';
import { PNG } from 'pngjs';
import { writeFileAtomic } from '../../engine/io/atomic.js';

/** A gray image, row-major, values in [0, 1]. */
export interface GrayImage {
  data: Float32Array;
  width: number;
  height: number;
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The largest side decodeGrayPng accepts (MVTec AD images are at most 1024; the paper resizes them to 256). */
const MAX_PNG_SIDE = 16384;

/** Whether the buffer starts with the 8-byte PNG signature. */
export function isPngSignature(buf: Uint8Array): boolean {
  if (buf.length < SIGNATURE.length) return false;
  for (let i = 0; i < SIGNATURE.length; i++) if (buf[i] !== SIGNATURE[i]) return false;
  return true;
}

function readFileNamed(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new Error(`${file}: no such file`);
    if (err.code === 'EISDIR') throw new Error(`${file}: is a folder, not a PNG file`);
    throw new Error(`${file}: cannot be read (${err.message})`);
  }
}

/**
 * The bytes pngjs is given: the chunks with tRNS removed for colour types other than palette (for which tRNS only
 * sets the alpha of palette entries), and nothing after IEND (trailing bytes, which pngjs rejects and most
 * decoders ignore). Returns the buffer unchanged when there is nothing to remove or when the chunk structure
 * cannot be walked (pngjs then reports the damage).
 */
function forDecoder(buf: Buffer): Buffer {
  if (buf.length < 33) return buf;
  const dropTrns = buf[25] !== 3;
  const keep: Buffer[] = [buf.subarray(0, 8)];
  let pos = 8;
  let changed = false;
  while (pos + 12 <= buf.length) {
    const len = buf.readUInt32BE(pos);
    const end = pos + 12 + len;
    if (end > buf.length) return buf;
    const type = buf.toString('latin1', pos + 4, pos + 8);
    if (type === 'tRNS' && dropTrns) changed = true;
    else keep.push(buf.subarray(pos, end));
    pos = end;
    if (type === 'IEND') {
      changed ||= pos < buf.length;
      return changed ? Buffer.concat(keep) : buf;
    }
  }
  return buf; // no IEND: truncated, for pngjs to report
}

/** Decode PNG bytes into a gray image in [0, 1] (see the module comment). `file` names the source in errors. */
export function decodeGrayPng(buf: Buffer, file = '<buffer>'): GrayImage {
  if (!isPngSignature(buf)) {
    throw new Error(`${file}: not a PNG file (the PNG signature is missing${buf.length === 0 ? '; the file is empty' : ''})`);
  }
  // The size from the IHDR chunk (bytes 16-23, right after the signature and the chunk's length and type), checked
  // before decoding: the decoder would allocate width x height x 4 bytes for whatever a corrupt header claims.
  if (buf.length >= 24 && buf.toString('latin1', 12, 16) === 'IHDR') {
    const w = buf.readUInt32BE(16), h = buf.readUInt32BE(20);
    if (w > MAX_PNG_SIDE || h > MAX_PNG_SIDE) throw new Error(`${file}: a ${w}x${h} PNG is larger than this reader takes (${MAX_PNG_SIDE} pixels a side)`);
  }
  let png: ReturnType<typeof PNG.sync.read>;
  try {
    png = PNG.sync.read(forDecoder(buf), { skipRescale: true, checkCRC: true });
  } catch (e) {
    const why = (e as Error).message;
    // pngjs says this when the compressed image data ends early.
    throw new Error(`${file}: not a valid PNG (${/read requests waitng|unexpected end/i.test(why) ? 'the image data ends early: the file is truncated' : why})`);
  }
  const { width, height, depth } = png;
  const colorType = png.colorType as number; // 3 (palette) is missing from @types/pngjs's ColorType
  const data = png.data as unknown as ArrayLike<number>;
  const n = width * height;
  if (!(width > 0 && height > 0) || data.length < 4 * n) {
    throw new Error(`${file}: not a valid PNG (decoded ${data.length} samples for a ${width}x${height} image)`);
  }
  const max = colorType === 3 ? 255 : 2 ** depth - 1;
  const out = new Float32Array(n);
  for (let i = 0, p = 0; i < n; i++, p += 4) {
    const r = data[p];
    const g = data[p + 1];
    const b = data[p + 2];
    const v = r === g && g === b ? r : 0.299 * r + 0.587 * g + 0.114 * b;
    out[i] = Math.min(1, v / max);
  }
  return { data: out, width, height };
}

/** Read a PNG file as a gray image in [0, 1] (see the module comment). Errors name the file. */
export function readGrayPng(file: string): GrayImage {
  return decodeGrayPng(readFileNamed(file), file);
}

/**
 * Bilinear resize of a row-major h x w image to outH x outW, with the convention of OpenCV's
 * `cv2.resize(..., interpolation=cv2.INTER_LINEAR)`: pixel centres at half-integers, so output pixel x samples
 * the input at sx = (x + 0.5) * w / outW - 0.5, clamped to [0, w - 1] (edge pixels are replicated), and the
 * same for rows. Downscaling takes the same two taps per axis, without the antialiasing filter that PIL's
 * BILINEAR applies when shrinking (OpenCV's fixed-point rounding of 8-bit images is not reproduced either:
 * the arithmetic here is in float64). A resize to the same size returns a copy.
 */
export function resizeBilinear(img: ArrayLike<number>, h: number, w: number, outH: number, outW: number): Float32Array {
  checkDims('resizeBilinear', img, h, w, outH, outW);
  const out = new Float32Array(outH * outW);
  if (outH === h && outW === w) {
    for (let i = 0; i < out.length; i++) out[i] = img[i];
    return out;
  }
  const axis = (n: number, outN: number): { i0: Int32Array; i1: Int32Array; f: Float64Array } => {
    const i0 = new Int32Array(outN);
    const i1 = new Int32Array(outN);
    const f = new Float64Array(outN);
    const scale = n / outN;
    for (let d = 0; d < outN; d++) {
      let s = (d + 0.5) * scale - 0.5;
      if (s < 0) s = 0;
      if (s > n - 1) s = n - 1;
      const lo = Math.floor(s);
      i0[d] = lo;
      i1[d] = Math.min(lo + 1, n - 1);
      f[d] = s - lo;
    }
    return { i0, i1, f };
  };
  const ax = axis(w, outW);
  const ay = axis(h, outH);
  for (let y = 0; y < outH; y++) {
    const r0 = ay.i0[y] * w;
    const r1 = ay.i1[y] * w;
    const fy = ay.f[y];
    for (let x = 0; x < outW; x++) {
      const x0 = ax.i0[x];
      const x1 = ax.i1[x];
      const fx = ax.f[x];
      const top = img[r0 + x0] + (img[r0 + x1] - img[r0 + x0]) * fx;
      const bot = img[r1 + x0] + (img[r1 + x1] - img[r1 + x0]) * fx;
      out[y * outW + x] = top + (bot - top) * fy;
    }
  }
  return out;
}

function checkDims(what: string, img: ArrayLike<number>, h: number, w: number, outH: number, outW: number): void {
  for (const [name, v] of [['h', h], ['w', w], ['outH', outH], ['outW', outW]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${what}: ${name} must be a positive integer, got ${v}`);
  }
  if (img.length !== h * w) throw new Error(`${what}: image has ${img.length} values, expected h*w = ${h}*${w} = ${h * w}`);
}

/**
 * Read a mask PNG as 0/1 bytes: a pixel is 1 where its gray level (on the 0..255 scale) rounds to 1 or more, i.e.
 * where an 8-bit mask is above 0, as the authors binarise. With outH and outW the mask is first resized as the authors' code resizes it, like an image (bilinear, resizeBilinear), and a pixel is 1 when
 * its interpolated 8-bit level rounds to 1 or more: the border of a defect, where the interpolation blends it with
 * the background, counts as defect. Without them it keeps its own size (length width*height of the file).
 * `of`: the image the mask belongs to, whose size it must have (MVTec AD's masks always do; one of another size
 * would be stretched onto the image, marking the wrong pixels).
 */
export function readMask(file: string, outH?: number, outW?: number, of?: { file: string; width: number; height: number }): Uint8Array {
  if ((outH === undefined) !== (outW === undefined)) throw new Error(`readMask(${file}): give both outH and outW, or neither`);
  const img = readGrayPng(file);
  if (of && (img.width !== of.width || img.height !== of.height)) {
    throw new Error(`${file}: the mask is ${img.width}x${img.height}, but its image ${of.file} is ${of.width}x${of.height}; a mask must be the size of its image`);
  }
  // As the authors' code: the 8-bit mask resized like an image (bilinear), then > 0. Their resize gives 8-bit
  // levels, rounded: a pixel is set when its interpolated level rounds to 1 or more.
  const levels = outH === undefined || outW === undefined ? img.data : resizeBilinear(img.data, img.height, img.width, outH, outW);
  const bin = new Uint8Array(levels.length);
  for (let i = 0; i < bin.length; i++) bin[i] = levels[i] * 255 >= 0.5 ? 1 : 0;
  return bin;
}

/** 8-bit samples from [0, 1] floats (rounded, clamped) or from bytes (as they are). */
function toBytes(img: Float32Array | Uint8Array | ArrayLike<number>, n: number, what: string): Buffer {
  if (img.length !== n) throw new Error(`${what}: image has ${img.length} values, expected ${n}`);
  const out = Buffer.alloc(n);
  if (img instanceof Uint8Array) {
    out.set(img);
    return out;
  }
  for (let i = 0; i < n; i++) {
    const v = img[i];
    out[i] = Number.isNaN(v) ? 0 : Math.round(Math.min(1, Math.max(0, v)) * 255);
  }
  return out;
}

function encode(samples: Buffer, h: number, w: number, colorType: 0 | 2): Buffer {
  // PNG.sync.write reads only width, height, data and gamma; a plain object avoids allocating an RGBA buffer.
  const meta = { width: w, height: h, data: samples, gamma: 0 } as unknown as PNG;
  // Paeth filter on every row: files within 1% of pngjs's adaptive choice, at half its cost.
  return PNG.sync.write(meta, { colorType, inputColorType: colorType, inputHasAlpha: false, bitDepth: 8, filterType: 4 });
}

/** Encode an h x w gray image as an 8-bit gray PNG: floats in [0, 1] are scaled by 255 and rounded; bytes as they are. */
export function encodeGrayPng(img: Float32Array | Uint8Array | ArrayLike<number>, h: number, w: number): Buffer {
  return encode(toBytes(img, h * w, 'encodeGrayPng'), h, w, 0);
}

/** Write an h x w gray image as an 8-bit gray PNG (see encodeGrayPng), atomically. */
export function writeGrayPng(file: string, img: Float32Array | Uint8Array | ArrayLike<number>, h: number, w: number): void {
  writeFileAtomic(file, encodeGrayPng(img, h, w));
}

/** Write an h x w RGB image (interleaved R, G, B; floats in [0, 1] or bytes) as an 8-bit RGB PNG, atomically. */
export function writeRgbPng(file: string, rgb: Float32Array | Uint8Array | ArrayLike<number>, h: number, w: number): void {
  writeFileAtomic(file, encode(toBytes(rgb, 3 * h * w, 'writeRgbPng'), h, w, 2));
}
