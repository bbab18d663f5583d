// batchnorm_grad_merge: per-channel BatchNorm2d weight gradients and the coefficients of dx (second level of
// the backward reduction).
//   sumDy     = sum_k partial[c*S + k].x                      (= sum over N,H,W of dy)
//   sumDyXhat = invStd[c] * sum_k partial[c*S + k].y          (= sum of dy * xhat, xhat = (x - mean) * invStd)
//   dbeta[c]  = sumDy
//   dgamma[c] = sumDyXhat
//   coef[c]   = (kc, mean[c], B, D) with kc = gamma[c] * invStd[c] and
//     training: B = kc * invStd[c] * sumDyXhat / M,  D = kc * sumDy / M
//     eval:     B = 0, D = 0
//   so that batchnorm_backward.wgsl forms dx = kc*dy - D - (x - mean)*B
//     = gamma*invStd/M * (M*dy - sumDy - xhat*sumDyXhat) in training, gamma*invStd*dy in eval.
// Each thread sums partials k = t, t + WG, ... in order, then the WG pairs are summed in a tree.
//
// Params: channels = C, chunks = S, m = M, training (0/1) (all u32)
// Bindings:
//   0  Params (uniform)
//   1  partial  [C*S] vec2   var<storage, read>   (from batchnorm_grad_sums.wgsl)
//   2  gamma    [C]          var<storage, read>
//   3  mean     [C]          var<storage, read>   (saveMean)
//   4  invStd   [C]          var<storage, read>   (saveInvStd)
//   5  dgamma   [C]          var<storage, read_write>
//   6  dbeta    [C]          var<storage, read_write>
//   7  coef     [C] vec4     var<storage, read_write>
// Launch: grid1d(C*WG, WG): one workgroup of WG threads (a power of two) per channel; c = wid.x + wid.y * nwg.x.
//   Workgroup memory: 2*WG floats.

override WG: u32 = 256u;

struct Params {
  channels: u32,
  chunks: u32,
  m: u32,
  training: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> partial: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> invStd: array<f32>;
@group(0) @binding(5) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(7) var<storage, read_write> coef: array<vec4<f32>>;

var<workgroup> wsum: array<vec2<f32>, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = wid.x + wid.y * nwg.x;
  if (c >= P.channels) {
    return;
  }

  var acc = vec2<f32>(0.0, 0.0);
  for (var k = lid.x; k < P.chunks; k += WG) {
    acc += partial[c * P.chunks + k];
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
    let is = invStd[c];
    let sumDy = wsum[0].x;
    let sumDyXhat = wsum[0].y * is;
    dbeta[c] = sumDy;
    dgamma[c] = sumDyXhat;
    let kc = gamma[c] * is;
    var b = 0.0;
    var d = 0.0;
    if (P.training != 0u) {
      let count = f32(P.m);
      b = kc * is * sumDyXhat / count;
      d = kc * sumDy / count;
    }
    coef[c] = vec4<f32>(kc, mean[c], b, d);
  }
}
