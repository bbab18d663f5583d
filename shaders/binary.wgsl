// binary: out[i] = f_OP(a[sum_d idx_d * aStrides_d], b[sum_d idx_d * bStrides_d], p) for every idx over
// outShape (rank 0..8, row-major linear index i < n = prod(outShape)); zero strides broadcast. The host
// drops size-1 axes and merges axes contiguous in all operands first. OP (override) selects f:
//   0 add: a+b   1 sub: a-b   2 mul: a*b   3 div: a/b
//   4 reluGrad: b<=0 ? 0 : a         5 leakyReluGrad: b>0 ? a : p*a
//   6 sigmoidGrad: a*b*(1-b)         7 tanhGrad: a*(1-b*b)
//
// Bindings:
//   0  uniform Params { shape: array<vec4<u32>,2>, aStrides: array<vec4<i32>,2>,
//                       bStrides: array<vec4<i32>,2>, n: u32, rank: u32, p: f32 }
//   1  a:   array<f32>   (read)
//   2  b:   array<f32>   (read)
//   3  out: array<f32>   (read_write)
// Launch: grid1d(n, WG) workgroups of WG threads, one thread per output element;
//         i = gid.x + gid.y * num_workgroups.x * WG.

override WG: u32 = 256u;
override OP: u32 = 0u;

struct Params {
  shape: array<vec4<u32>, 2>,
  aStrides: array<vec4<i32>, 2>,
  bStrides: array<vec4<i32>, 2>,
  n: u32,
  rank: u32,
  p: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn apply(u: f32, v: f32, p: f32) -> f32 {
  switch (OP) {
    case 0u: { return u + v; }
    case 1u: { return u - v; }
    case 2u: { return u * v; }
    case 3u: { return u / v; }
    case 4u: { return select(u, 0.0, v <= 0.0); }
    case 5u: { return select(p * u, u, v > 0.0); }
    case 6u: { return u * v * (1.0 - v); }
    case 7u: { return u * (1.0 - v * v); }
    default: { return u; }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= params.n) {
    return;
  }
  var rem = i;
  var ao = 0;
  var bo = 0;
  for (var d = i32(params.rank) - 1; d >= 0; d--) {
    let q = u32(d) / 4u;
    let r = u32(d) % 4u;
    let size = params.shape[q][r];
    let k = i32(rem % size);
    rem = rem / size;
    ao += k * params.aStrides[q][r];
    bo += k * params.bStrides[q][r];
  }
  out[i] = apply(a[u32(ao)], b[u32(bo)], params.p);
}
