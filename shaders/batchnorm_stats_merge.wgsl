// batchnorm_stats_merge: per-channel BatchNorm2d statistics (second level of the training reduction, or the
// eval-mode statistics), and the running-statistics update.
// training: (M, mean, m2) = Chan-merge of partial[c*S + k], k < S (from batchnorm_stats.wgsl); var = m2 / M (biased)
//   saveMean[c]   = mean
//   saveInvStd[c] = 1 / sqrt(var + eps)
//   if hasRunning: runningMean[c] = (1 - momentum) * runningMean[c] + momentum * mean
//                  runningVar[c]  = (1 - momentum) * runningVar[c]  + momentum * (M > 1 ? m2 / (M - 1) : var)  (unbiased)
// eval:
//   saveMean[c]   = runningMean[c]
//   saveInvStd[c] = 1 / sqrt(runningVar[c] + eps)
// Each thread merges partials k = t, t + WG, ... in order, then the WG triples are merged in a tree.
//
// Params: channels = C, chunks = S, m = M, training (0/1), hasRunning (0/1) (u32); eps, momentum (f32)
// Bindings:
//   0  Params (uniform)
//   1  partial      [C*S] vec4 (n, mean, m2, 0)   var<storage, read>   (a dummy in eval mode)
//   2  runningMean  [C]   var<storage, read_write>  (a dummy when absent: training with hasRunning = 0)
//   3  runningVar   [C]   var<storage, read_write>  (idem; must be a different buffer from binding 2)
//   4  saveMean     [C]   var<storage, read_write>
//   5  saveInvStd   [C]   var<storage, read_write>
// Launch: grid1d(C*WG, WG): one workgroup of WG threads (a power of two) per channel; c = wid.x + wid.y * nwg.x.
//   Workgroup memory: 3*WG floats.

override WG: u32 = 256u;

struct Params {
  channels: u32,
  chunks: u32,
  m: u32,
  training: u32,
  hasRunning: u32,
  eps: f32,
  momentum: f32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> partial: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> runningMean: array<f32>;
@group(0) @binding(3) var<storage, read_write> runningVar: array<f32>;
@group(0) @binding(4) var<storage, read_write> saveMean: array<f32>;
@group(0) @binding(5) var<storage, read_write> saveInvStd: array<f32>;

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
  let c = wid.x + wid.y * nwg.x;
  if (c >= P.channels) {
    return;
  }
  if (P.training == 0u) {
    if (lid.x == 0u) {
      saveMean[c] = runningMean[c];
      saveInvStd[c] = 1.0 / sqrt(runningVar[c] + P.eps);
    }
    return;
  }

  var acc = vec3<f32>(0.0, 0.0, 0.0);
  for (var k = lid.x; k < P.chunks; k += WG) {
    acc = merge(acc, partial[c * P.chunks + k].xyz);
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
    let mean = wmean[0];
    let m2 = wm2[0];
    let count = f32(P.m);
    let variance = m2 / count;
    saveMean[c] = mean;
    saveInvStd[c] = 1.0 / sqrt(variance + P.eps);
    if (P.hasRunning != 0u) {
      var unbiased = variance;
      if (P.m > 1u) {
        unbiased = m2 / (count - 1.0);
      }
      runningMean[c] = (1.0 - P.momentum) * runningMean[c] + P.momentum * mean;
      runningVar[c] = (1.0 - P.momentum) * runningVar[c] + P.momentum * unbiased;
    }
  }
}
