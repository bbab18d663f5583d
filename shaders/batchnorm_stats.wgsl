// batchnorm_stats: per-channel partial statistics of x for training-mode BatchNorm2d (first level of a
// two-level reduction; batchnorm_stats_merge.wgsl is the second).
// Channel c of x [N, C, H, W] holds the M = N*H*W values v_j = x[(n*C + c)*HW + i], j = n*HW + i. They are cut
// into S chunks of L values; chunk k of channel c is j in [k*L, min((k+1)*L, M)) and its workgroup writes
//   partial[c*S + k] = (count, mean, m2),  mean = sum(v_j)/count,  m2 = sum((v_j - mean)^2)
// computed without E[x^2]-E[x]^2 cancellation: each thread runs Welford's update over the values
// j = k*L + t, k*L + t + WG, ...; the WG per-thread triples are then merged pairwise in a tree in workgroup
// memory with Chan et al.'s formula  n = na+nb, d = mb-ma, mean = ma + d*nb/n, m2 = m2a + m2b + d*d*na*nb/n.
//
// Params: channels = C, hw = H*W, m = M, chunks = S, chunkLen = L (all u32)
// Bindings:
//   0  Params (uniform)
//   1  x        [N*C*H*W]            var<storage, read>
//   2  partial  [C*S] vec4 (n, mean, m2, 0)   var<storage, read_write>
// Launch: grid1d(C*S*WG, WG): one workgroup of WG threads (a power of two) per (channel, chunk);
//   workgroup g = wid.x + wid.y * nwg.x, c = g / S, k = g % S. Workgroup memory: 3*WG floats.

override WG: u32 = 256u;

struct Params {
  channels: u32,
  hw: u32,
  m: u32,
  chunks: u32,
  chunkLen: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<vec4<f32>>;

var<workgroup> wn: array<f32, WG>;
var<workgroup> wmean: array<f32, WG>;
var<workgroup> wm2: array<f32, WG>;

// Chan et al.: the (count, mean, m2) of the union of two disjoint sets.
fn merge(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
  if (b.x == 0.0) {
    return a;
  }
  if (a.x == 0.0) {
    return b;
  }
  let n = a.x + b.x;
  let d = b.y - a.y;
  let f = b.x / n;
  return vec3<f32>(n, a.y + d * f, a.z + b.z + d * d * a.x * f);
}

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

  // Welford over this thread's values: acc = (count, mean, m2).
  var acc = vec3<f32>(0.0, 0.0, 0.0);
  for (var j = start + lid.x; j < end; j += WG) {
    let n = j / P.hw;
    let v = x[(n * P.channels + c) * P.hw + (j - n * P.hw)];
    acc.x += 1.0;
    let d = v - acc.y;
    acc.y += d / acc.x;
    acc.z += d * (v - acc.y);
  }
  wn[lid.x] = acc.x;
  wmean[lid.x] = acc.y;
  wm2[lid.x] = acc.z;
  workgroupBarrier();

  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid.x < s) {
      let r = merge(vec3<f32>(wn[lid.x], wmean[lid.x], wm2[lid.x]),
                    vec3<f32>(wn[lid.x + s], wmean[lid.x + s], wm2[lid.x + s]));
      wn[lid.x] = r.x;
      wmean[lid.x] = r.y;
      wm2[lid.x] = r.z;
    }
    workgroupBarrier();
  }

  if (lid.x == 0u) {
    partial[g] = vec4<f32>(wn[0], wmean[0], wm2[0], 0.0);
  }
}
