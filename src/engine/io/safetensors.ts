/**
 * The safetensors format (https://github.com/huggingface/safetensors), read and written from scratch:
 *   8 bytes: N, the header length, little-endian u64
 *   N bytes: a JSON header { "<name>": { "dtype": "F32" | "F64", "shape": [...], "data_offsets": [begin, end] }, "__metadata__": { ... } }
 *   then the raw little-endian tensor bytes; offsets are relative to the end of the header.
 * Files are written atomically (temp file in the same folder, then rename), so a crash never leaves a
 * half-written checkpoint in place of a good one. The reader validates everything and names what is wrong.
 */
import fs from 'node:fs';
import { writeFileAtomic } from './atomic.js';

export interface StoredTensor {
  dtype: 'float32' | 'float64';
  shape: number[];
  data: Float32Array | Float64Array;
}

const MAX_HEADER = 100 * 1024 * 1024;

/** Writes tensors (and string metadata) to `file` atomically; throws, naming the entry, before writing anything it could not read back. */
export function writeSafetensors(file: string, tensors: Map<string, StoredTensor>, metadata: Record<string, string> = {}): void {
  // No prototype: a tensor named '__proto__' is then an ordinary key, not a change of the header's prototype.
  const header: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new Error(`writeSafetensors: metadata '${k}' is ${typeof v}; safetensors metadata maps strings to strings`);
  }
  if (Object.keys(metadata).length) header.__metadata__ = { ...metadata };
  let offset = 0;
  const names = [...tensors.keys()].sort();
  for (const name of names) {
    const t = tensors.get(name)!;
    if (name === '__metadata__') throw new Error(`writeSafetensors: '__metadata__' is reserved for the metadata and cannot name a tensor`);
    if (t.dtype !== 'float32' && t.dtype !== 'float64') throw new Error(`writeSafetensors: '${name}' has dtype ${JSON.stringify(t.dtype)}; expected float32 or float64`);
    if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isInteger(d) || d < 0)) {
      throw new Error(`writeSafetensors: '${name}' has shape ${JSON.stringify(t.shape)}; expected a list of non-negative integers`);
    }
    const n = t.shape.reduce((p, d) => p * d, 1);
    if (n !== t.data.length) throw new Error(`writeSafetensors: '${name}' has ${t.data.length} values for shape [${t.shape.join(',')}]`);
    // The stored bytes follow the declared dtype (the data is converted below), not the array the values came in.
    const bytes = n * (t.dtype === 'float64' ? 8 : 4);
    header[name] = { dtype: t.dtype === 'float64' ? 'F64' : 'F32', shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned (as the reference implementation does).
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let pos = 8 + headerBytes.length;
  for (const name of names) {
    const t = tensors.get(name)!;
    const view = t.dtype === 'float64' ? Float64Array.from(t.data) : Float32Array.from(t.data);
    Buffer.from(view.buffer, view.byteOffset, view.byteLength).copy(out, pos);
    pos += view.byteLength;
  }
  writeFileAtomic(file, out);
}

/** Reads a safetensors file; throws `<file>: <what is wrong>` on any malformed header or data. */
export function readSafetensors(file: string): { tensors: Map<string, StoredTensor>; metadata: Record<string, string> } {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`${file}: cannot read checkpoint (${(e as Error).message})`);
  }
  const bad = (why: string): Error => new Error(`${file}: not a valid safetensors file (${why})`);
  if (buf.length < 8) throw bad(`${buf.length} bytes, shorter than the 8-byte header length`);
  const n = buf.readBigUInt64LE(0);
  if (n > BigInt(Math.min(MAX_HEADER, buf.length - 8))) throw bad(`header length ${n} exceeds the file (${buf.length} bytes) or ${MAX_HEADER}`);
  const headerLen = Number(n);
  let header: unknown;
  try {
    header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8'));
  } catch (e) {
    throw bad(`header is not JSON: ${(e as Error).message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw bad('header is not a JSON object');
  const dataStart = 8 + headerLen;
  const dataLen = buf.length - dataStart;
  const tensors = new Map<string, StoredTensor>();
  let metadata: Record<string, string> = {};
  const ranges: Array<[number, number, string]> = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (entry === null || typeof entry !== 'object' || Object.values(entry).some((v) => typeof v !== 'string')) throw bad('__metadata__ must map strings to strings');
      metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (e === null || typeof e !== 'object') throw bad(`entry '${name}' is not an object`);
    if (e.dtype !== 'F32' && e.dtype !== 'F64') throw bad(`'${name}' has dtype ${JSON.stringify(e.dtype)}; expected F32 or F64`);
    if (!Array.isArray(e.shape) || e.shape.some((d) => !Number.isInteger(d) || d < 0)) throw bad(`'${name}' has shape ${JSON.stringify(e.shape)}; expected a list of non-negative integers`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isInteger(o) && o >= 0) || offs[0] > offs[1] || offs[1] > dataLen) {
      throw bad(`'${name}' has data_offsets ${JSON.stringify(offs)}; expected [begin, end] within the ${dataLen} data bytes`);
    }
    const bytesPer = e.dtype === 'F64' ? 8 : 4;
    const count = (e.shape as number[]).reduce((p, d) => p * d, 1);
    if (offs[1] - offs[0] !== count * bytesPer) throw bad(`'${name}' spans ${offs[1] - offs[0]} bytes, but shape [${(e.shape as number[]).join(',')}] of ${e.dtype} needs ${count * bytesPer}`);
    ranges.push([offs[0], offs[1], name]);
    const bytes = buf.subarray(dataStart + offs[0], dataStart + offs[1]);
    const copy = new Uint8Array(bytes); // aligned copy
    tensors.set(name, {
      dtype: e.dtype === 'F64' ? 'float64' : 'float32',
      shape: e.shape as number[],
      data: e.dtype === 'F64' ? new Float64Array(copy.buffer) : new Float32Array(copy.buffer),
    });
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i][0] < ranges[i - 1][1]) throw bad(`'${ranges[i][2]}' overlaps '${ranges[i - 1][2]}'`);
  }
  return { tensors, metadata };
}
