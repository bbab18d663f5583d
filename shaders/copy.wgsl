// copy: strided N-d copy (rank 0..8; the host first drops size-1 axes and merges axes that are
// contiguous in both operands, so the rank here is usually 1-3):
//   out[outOffset + sum_d idx_d * outStrides_d] = x[xOffset + sum_d idx_d * xStrides_d]
//   for every idx over `shape` (row-major linear index i < n = prod(shape)).
// Strides are signed and may be 0 (broadcast of x).
//
// Bindings:
//   0  uniform Params { shape: array<vec4<u32>,2>, xStrides: array<vec4<i32>,2>,
//                       outStrides: array<vec4<i32>,2>, n: u32, rank: u32, xOffset: u32, outOffset: u32 }
//   1  x:   array<f32>   (read)
//   2  out: array<f32>   (read_write)
// Launch: grid1d(n, WG) workgroups of WG threads, one thread per element;
//         i = gid.x + gid.y * num_workgroups.x * WG.

override WG: u32 = 256u;

struct Params {
  shape: array<vec4<u32>, 2>,
  xStrides: array<vec4<i32>, 2>,
  outStrides: array<vec4<i32>, 2>,
  n: u32,
  rank: u32,
  xOffset: u32,
  outOffset: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= params.n) {
    return;
  }
  var rem = i;
  var xo = i32(params.xOffset);
  var oo = i32(params.outOffset);
  for (var d = i32(params.rank) - 1; d >= 0; d--) {
    let q = u32(d) / 4u;
    let r = u32(d) % 4u;
    let size = params.shape[q][r];
    let k = i32(rem % size);
    rem = rem / size;
    xo += k * params.xStrides[q][r];
    oo += k * params.outStrides[q][r];
  }
  out[u32(oo)] = x[u32(xo)];
}
