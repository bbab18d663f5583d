// conv2d: 2-D convolution (NCHW, weight [O, C, KH, KW]) as an implicit GEMM.
//
//   out[b,o,oy,ox] = bias[o] + sum_{c,ky,kx} w[o,c,ky,kx] * x[b, c, oy*SH - PT + ky, ox*SW - PL + kx]
//   (x = 0 outside the image; outHeight/outWidth are given, so bottom/right padding is implied.)
//
// As a matrix product C[m][n] = sum_k A[m][k] * B[k][n] with
//   m = o                     (M = O)
//   n = (b, oy, ox)           (N = batch * OH * OW)
//   k = (c, ky, kx)           (K = C * KH * KW)
//   A[m][k] = w[m * K + k]    (the weight, row-major already)
//   B[k][n] = x[b, c, oy*SH - PT + ky, ox*SW - PL + kx]   (the im2col matrix, never materialised:
//             each tile of it is gathered from x straight into workgroup memory, 0 outside the image)
//
// Tiling: a workgroup computes a BM x BN tile of C, walking K in steps of BK. Each step, the threads
// load A[m0.., k0..k0+BK) and B[k0..k0+BK, n0..) into workgroup memory (4 values per vec4 slot),
// then each thread accumulates a TM x TN block of C in registers (outer products of a column of the
// A tile and a row of the B tile). Thread (ty, tx) owns rows m0 + ty*TM + r (r < TM) and columns
// n0 + tx + j*(BN/TN) (j < TN): columns strided by BN/TN so that a warp's global loads and stores
// touch consecutive n. In workgroup memory, As packs 4 consecutive m in a vec4; Bs packs 4 of a
// thread's columns in a vec4: slot h*(BN/TN) + tx holds columns tx + (4h + q)*(BN/TN), q < 4
// (bCol). TN = 8 gives a thread 8 x 8 outputs for 4 vec4 reads of workgroup memory per k, twice
// the multiply-adds per read of TN = 4, and with 256 threads a 128 x 128 tile.
//
// The loads of A: thread t loads row k0 + t % BK of the A tile, in vec4 slots of 4 rows m, so the
// threads of a warp read BK consecutive k of each row (adjacent in w: coalesced), not 32 rows K apart.
//
// The gather of B: a thread loads one vec4 slot of each B row it loads, whose 4 columns are fixed for
// the whole kernel, so (b, oy, ox) is decomposed once; the rows it loads advance by BK per step, and
// (c, ky, kx) is advanced by a mixed-radix addition (no integer division in the loop).
//
// Split-K: a launch with few tiles (deep layers: few output pixels, many channels) would leave most
// of a large GPU idle, so K may be split into chunks of kChunk (a multiple of BK): workgroup z = s
// sums k in [s*kChunk, min(K, (s+1)*kChunk)) and writes its partial output to out[s*M*N + ...]
// (out is then a scratch buffer of splits x the output, hasBias = 0), which split_k_reduce.wgsl sums
// over s, adding the bias. With one chunk (kChunk >= K) out is the output itself.
//
// Bindings: 0 uniform Params, 1 x (read), 2 w (read), 3 bias (read; a dummy when hasBias = 0),
//           4 out (read_write).
// Launch: WG = (BM / TM) * (BN / TN) threads; workgroups (x, y, splits): one per tile and K chunk,
//         tiles numbered m-tile fastest (tile = mt + tilesM * nt) and folded into x/y by grid1d:
//         tile = wid.x + wid.y * nwg.x; z is the K chunk; workgroups past the last tile return at once.
// Constraints (checked on the host, tilesValid): TM and TN in {4, 8}; BM % TM == 0; BN % TN == 0;
// 1 <= WG <= 256; BK, BM/4 and BN/4 divide WG; BK*BM/4 and BK*BN/4 at most 4*WG; BK*(BM+BN)*4 bytes <= 16 KiB.

struct Params {
  batch: u32,
  inChannels: u32,
  inHeight: u32,
  inWidth: u32,
  outChannels: u32,
  kernelH: u32,
  kernelW: u32,
  outHeight: u32,
  outWidth: u32,
  strideH: u32,
  strideW: u32,
  padTop: i32,
  padLeft: i32,
  hasBias: u32,
  tilesM: u32,   // ceil(M / BM)
  tiles: u32,    // tilesM * ceil(N / BN)
  kChunk: u32,   // K per split (a multiple of BK)
  bk: u32,       // BK, A_SLOTS and B_SLOTS again, read at run time (see ROLLED)
  aSlots: u32,
  bSlots: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

override BM: u32 = 64u;   // tile rows (output channels)
override BN: u32 = 64u;   // tile columns (output pixels)
override BK: u32 = 16u;   // tile depth
override TM: u32 = 4u;    // rows per thread (4 or 8)
override TN: u32 = 4u;    // columns per thread (4 or 8)
override WG: u32 = 256u;  // threads = (BM / TM) * (BN / TN)
// ROLLED: the tile loops run to P.bk, P.aSlots and P.bSlots (the values of BK, A_SLOTS and B_SLOTS,
// read at run time), so the shader compiler keeps them rolled. Set on CPU-emulated adapters
// (lavapipe), which take seconds to compile the fully unrolled kernel; a GPU gets the constants.
override ROLLED: bool = false;
// PREFETCH: load the next step's tiles (global memory -> registers) before multiplying the current step's, so the
// loads are in flight during the multiply-adds, at the cost of one register per loaded value (see the main loop).
override PREFETCH: bool = false;
// vec4 slots of the A and B tiles each thread loads per step (at most MAX_SLOTS = 4).
override A_SLOTS: u32 = (BK * BM / 4u + WG - 1u) / WG;
override B_SLOTS: u32 = (BK * BN / 4u + WG - 1u) / WG;

const MAX_TM: u32 = 8u;     // accumulator rows allocated
const MAX_TN: u32 = 8u;     // accumulator columns allocated
const MAX_SLOTS: u32 = 4u;  // vec4 tile slots a thread loads per step, at most
const FAR: i32 = -1073741824; // a coordinate that fails every bounds check

var<workgroup> As: array<vec4<f32>, BK * BM / 4u>;  // As[k * BM/4 + m/4][m % 4] = A[m0 + m][k0 + k]
var<workgroup> Bs: array<vec4<f32>, BK * BN / 4u>;  // Bs[k * BN/4 + s][q] = B[k0 + k][n0 + bCol(s, q)]

// The column (from n0) of component q of B-tile slot s: slot h*(BN/TN) + t holds the columns t + (4h + q)*(BN/TN)
// of the thread with tx = t (for TN = 4, the columns s + q*BN/4).
fn bCol(s: u32, q: u32) -> u32 {
  return s % (BN / TN) + (4u * (s / (BN / TN)) + q) * (BN / TN);
}

// A position along K = (c, ky, kx): the kernel offsets and the matching offset in one x image,
// c*H*W + ky*W + kx.
struct KPos {
  ky: u32,
  kx: u32,
  off: i32,
}

fn kAt(k: u32) -> KPos {
  let kw = P.kernelW;
  let khw = P.kernelH * kw;
  let c = k / khw;
  let r = k - c * khw;
  let ky = r / kw;
  let kx = r - ky * kw;
  let W = i32(P.inWidth);
  return KPos(ky, kx, i32(c) * i32(P.inHeight) * W + i32(ky) * W + i32(kx));
}

// p + BK along K, by mixed-radix addition of BK = (dc, dky, dkx) with one carry per digit.
fn kAdvance(p: KPos, dky: u32, dkx: u32, dOff: i32) -> KPos {
  let W = i32(P.inWidth);
  let H = i32(P.inHeight);
  var q = KPos(p.ky + dky, p.kx + dkx, p.off + dOff);
  if (q.kx >= P.kernelW) {
    q.kx -= P.kernelW;
    q.ky += 1u;
    q.off += W - i32(P.kernelW);
  }
  if (q.ky >= P.kernelH) {
    q.ky -= P.kernelH;
    q.off += H * W - i32(P.kernelH) * W;
  }
  return q;
}

// Stores a step's tiles from registers (aReg, bReg) into workgroup memory: A slot j at As[ka * BM/4 + ma] with
// ma = tid/BK + j*WG/BK, B slot j at Bs[row * BN/4 + bs], for the rows the thread loaded (see the main loop).
fn storeTiles(tid: u32, ka: u32, bs: u32, aSlots: u32, bSlots: u32,
              aReg: ptr<function, array<vec4<f32>, MAX_SLOTS>>, bReg: ptr<function, array<vec4<f32>, MAX_SLOTS>>) {
  for (var j = 0u; j < aSlots; j++) {
    let ma = tid / BK + j * (WG / BK);
    if (ma < BM / 4u) {
      As[ka * (BM / 4u) + ma] = (*aReg)[j];
    }
  }
  for (var j = 0u; j < bSlots; j++) {
    let row = tid / (BN / 4u) + j * (WG / (BN / 4u));
    if (row < BK) {
      Bs[row * (BN / 4u) + bs] = (*bReg)[j];
    }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let tile = wid.x + wid.y * nwg.x;
  if (tile >= P.tiles) {
    return;
  }
  let m0 = (tile % P.tilesM) * BM;
  let n0 = (tile / P.tilesM) * BN;

  let H = P.inHeight;
  let W = P.inWidth;
  let OHW = P.outHeight * P.outWidth;
  let M = P.outChannels;
  let N = P.batch * OHW;
  let K = P.inChannels * P.kernelH * P.kernelW;
  let kBegin = wid.z * P.kChunk;
  let kEnd = min(K, kBegin + P.kChunk);

  let tx = tid % (BN / TN);  // this thread's columns: n0 + tx + j * BN/TN
  let ty = tid / (BN / TN);  // this thread's rows:    m0 + ty * TM + r
  // The A-tile row this thread loads, k0 + ka, in vec4 slots of 4 rows m (slot j: m0 + 4*ma .. +3, ma = tid/BK +
  // j*WG/BK): consecutive threads read consecutive k of the same rows, which lie side by side in memory (coalesced).
  let ka = tid % BK;
  let bs = tid % (BN / 4u);  // the B-tile vec4 slot this thread loads (columns n0 + bCol(bs, q))
  // Trip counts of the tile loops (see ROLLED).
  let kSteps = select(BK, P.bk, ROLLED);
  let aSlots = select(A_SLOTS, P.aSlots, ROLLED);
  let bSlots = select(B_SLOTS, P.bSlots, ROLLED);

  // The 4 columns n = (b, oy, ox) of the thread's B slot, decomposed once: the top-left input corner of
  // the window (iy0, ix0) and its offset in x. Columns past N get a corner that fails every check.
  var colY: array<i32, 4>;
  var colX: array<i32, 4>;
  var colOff: array<i32, 4>;
  for (var q = 0u; q < 4u; q++) {
    let n = n0 + bCol(bs, q);
    colY[q] = FAR;
    colX[q] = FAR;
    colOff[q] = 0;
    if (n < N) {
      let b = n / OHW;
      let p = n - b * OHW;
      let oy = p / P.outWidth;
      let ox = p - oy * P.outWidth;
      colY[q] = i32(oy * P.strideH) - P.padTop;
      colX[q] = i32(ox * P.strideW) - P.padLeft;
      colOff[q] = i32(b * P.inChannels * H * W) + colY[q] * i32(W) + colX[q];
    }
  }

  // The K positions of the B-tile rows this thread loads (slot j: row tid/(BN/4) + j*WG/(BN/4)).
  var bPos: array<KPos, MAX_SLOTS>;
  for (var j = 0u; j < bSlots; j++) {
    bPos[j] = kAt(kBegin + tid / (BN / 4u) + j * (WG / (BN / 4u)));
  }
  // BK as a mixed-radix step (dc, dky, dkx) and its offset in x.
  let dkx = BK % P.kernelW;
  let dky = (BK / P.kernelW) % P.kernelH;
  let dc = BK / (P.kernelW * P.kernelH);
  let dOff = i32(dc * H * W + dky * W + dkx);

  // acc[h * MAX_TM + r][q] = C[row m0 + ty*TM + r][column n0 + tx + (4h + q)*(BN/TN)].
  var acc: array<vec4<f32>, MAX_TM * MAX_TN / 4u>;
  for (var r = 0u; r < MAX_TM * MAX_TN / 4u; r++) {
    acc[r] = vec4<f32>(0.0);
  }

  // Without PREFETCH, iteration it loads step it's tiles into workgroup memory and multiplies them. With it, the
  // tiles are loaded into registers (aReg, bReg) instead, and iteration it stores step it-1's (storeTiles), loads
  // step it's, and multiplies step it-1's, so the loads of step it are in flight during that multiply.
  var aReg: array<vec4<f32>, MAX_SLOTS>;
  var bReg: array<vec4<f32>, MAX_SLOTS>;
  let steps = (max(kEnd, kBegin) - kBegin + BK - 1u) / BK;
  let iterations = select(steps, steps + 1u, PREFETCH && steps > 0u);
  for (var it = 0u; it < iterations; it++) {
    if (PREFETCH && it > 0u) {
      storeTiles(tid, ka, bs, aSlots, bSlots, &aReg, &bReg);
      workgroupBarrier();
    }
    if (it < steps) {
      let k0 = kBegin + it * BK;
      // A tile: slot j holds A[m0 + 4*ma .. +3][k0 + ka] = w[m * K + k] (0 past M or the chunk).
      let k = k0 + ka;
      for (var j = 0u; j < aSlots; j++) {
        let ma = tid / BK + j * (WG / BK);
        if (ma < BM / 4u) {
          var v = vec4<f32>(0.0);
          for (var q = 0u; q < 4u; q++) {
            let m = m0 + 4u * ma + q;
            let ok = m < M && k < kEnd;
            v[q] = select(0.0, w[select(0u, m * K + k, ok)], ok);
          }
          if (PREFETCH) {
            aReg[j] = v;
          } else {
            As[ka * (BM / 4u) + ma] = v;
          }
        }
      }
      // B tile: slot j holds B[k0 + row][the 4 columns of slot bs], gathered from x.
      for (var j = 0u; j < bSlots; j++) {
        let row = tid / (BN / 4u) + j * (WG / (BN / 4u));
        if (row < BK) {
          let kp = bPos[j];
          let kOk = k0 + row < kEnd;
          var v = vec4<f32>(0.0);
          for (var q = 0u; q < 4u; q++) {
            let iy = colY[q] + i32(kp.ky);
            let ix = colX[q] + i32(kp.kx);
            let ok = kOk && u32(iy) < H && u32(ix) < W;
            v[q] = select(0.0, x[select(0u, u32(colOff[q] + kp.off), ok)], ok);
          }
          if (PREFETCH) {
            bReg[j] = v;
          } else {
            Bs[row * (BN / 4u) + bs] = v;
          }
          bPos[j] = kAdvance(kp, dky, dkx, dOff);
        }
      }
    }
    if (!PREFETCH) {
      workgroupBarrier();
    }
    if (!PREFETCH || it > 0u) {
      // acc += A[the thread's rows][kk] * B[kk][its columns], as outer products of vec4s.
      for (var kk = 0u; kk < kSteps; kk++) {
        var bv: array<vec4<f32>, MAX_TN / 4u>;
        for (var h = 0u; h < TN / 4u; h++) {
          bv[h] = Bs[kk * (BN / 4u) + h * (BN / TN) + tx];
        }
        for (var i = 0u; i < TM / 4u; i++) {
          let a = As[kk * (BM / 4u) + ty * (TM / 4u) + i];
          for (var h = 0u; h < TN / 4u; h++) {
            let r = h * MAX_TM + 4u * i;
            acc[r + 0u] = fma(vec4<f32>(a.x), bv[h], acc[r + 0u]);
            acc[r + 1u] = fma(vec4<f32>(a.y), bv[h], acc[r + 1u]);
            acc[r + 2u] = fma(vec4<f32>(a.z), bv[h], acc[r + 2u]);
            acc[r + 3u] = fma(vec4<f32>(a.w), bv[h], acc[r + 3u]);
          }
        }
      }
      workgroupBarrier();
    }
  }

  // out[b, m, oy, ox] = acc + bias[m]: column n = (b, p) is at b*M*OHW + p, row m adds m*OHW
  // (in split s's part of the scratch buffer: s*M*N further; every element, zeros for an empty chunk).
  for (var col = 0u; col < TN; col++) {
    let n = n0 + tx + col * (BN / TN);
    if (n < N) {
      let b = n / OHW;
      let base = wid.z * M * N + n + b * (M - 1u) * OHW;
      for (var r = 0u; r < TM; r++) {
        let m = m0 + ty * TM + r;
        if (m < M) {
          var v = acc[(col / 4u) * MAX_TM + r][col % 4u];
          if (P.hasBias != 0u) {
            v += bias[m];
          }
          out[base + m * OHW] = v;
        }
      }
    }
  }
}
