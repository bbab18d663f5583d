// batchnorm_grad_sums: per-channel partial sums for the BatchNorm2d backward pass (first level of a two-level
// reduction; batchnorm_grad_merge.wgsl is the second).
// With channel c's M = N*H*W values indexed j = n*HW + i at (n*C + c)*HW + i, cut into S chunks of L values,
// chunk k of channel c (j in [k*L, min((k+1)*L, M))) writes
//   partial[c*S + k] = ( sum_j dy_j,  sum_j dy_j * (x_j - mean[c]) )
// (the second sum times invStd[c] is sum(dy * xhat); the merge kernel applies invStd).
// Each thread sums the values j = k*L + t, k*L + t + WG, ... then the WG pairs are summed in a tree in
// workgroup memory.
//
// Params: channels = C, hw = H*W, m = M, chunks = S, chunkLen = L (all u32)
// Bindings:
//   0  Params (uniform)
//   1  dy       [N*C*H*W]    var<storage, read>
//   2  x        [N*C*H*W]    var<storage, read>
//   3  mean     [C]          var<storage, read>   (saveMean)
//   4  partial  [C*S] vec2   var<storage, read_write>
// Launch: grid1d(C*S*WG, WG): one workgroup of WG threads (a power of two) per (channel, chunk);
//   workgroup g = wid.x + wid.y * nwg.x, c = g / S, k = g % S. Workgroup memory: 2*WG floats.

override WG: u32 = 256u;

struct Params {
  channels: u32,
  hw: u32,
  m: u32,
  chunks: u32,
  chunkLen: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read_write> partial: array<vec2<f32>>;

var<workgroup> wsum: array<vec2<f32>, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let g = wid.x + wid.y * nwg.x;
  if (g >= P.channels * P.chunks) {
    return;
  }
  let c = g / P.chunks;
  let k = g % P.chunks;
  let start = k * P.chunkLen;
  let end = min(start + P.chunkLen, P.m);
  let mu = mean[c];

  var acc = vec2<f32>(0.0, 0.0);
  for (var j = start + lid.x; j < end; j += WG) {
    let n = j / P.hw;
    let idx = (n * P.channels + c) * P.hw + (j - n * P.hw);
    let gy = dy[idx];
    acc += vec2<f32>(gy, gy * (x[idx] - mu));
  }
  wsum[lid.x] = acc;
  workgroupBarrier();

  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid.x < s) {
      wsum[lid.x] += wsum[lid.x + s];
    }
    workgroupBarrier();
  }

  if (lid.x == 0u) {
    partial[g] = wsum[0];
  }
}
