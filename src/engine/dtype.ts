/** Element types. Tensors are float32 everywhere; the CPU backend also runs float64 so gradients can be checked by finite differences. */
export type DType = 'float32' | 'float64';
export type FloatArray = Float32Array | Float64Array;
export type Shape = readonly number[];

export function bytesPerElement(dtype: DType): number {
  return dtype === 'float64' ? 8 : 4;
}

/** A typed array of `dtype` with `size` elements. With `shared`, backed by a SharedArrayBuffer so worker threads can read and write it in place. */
export function allocArray(dtype: DType, size: number, shared = false): FloatArray {
  const bytes = size * bytesPerElement(dtype);
  const buffer = shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
  return dtype === 'float64' ? new Float64Array(buffer) : new Float32Array(buffer);
}

export function dtypeOf(a: FloatArray): DType {
  return a instanceof Float64Array ? 'float64' : 'float32';
}

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeStr(shape: Shape): string {
  return `[${shape.join(',')}]`;
}
