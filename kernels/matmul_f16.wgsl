// matmul_f16: y[m, col0 + n] = sum_k x[m, k] * w[n, k] (+ bias[col0 + n]),
// with w stored as f16 and everything else f32 (f32 accumulation).
//
// Needs the `shader-f16` feature; llmc only builds it where the device has it.
// Same Linear layout, tiling and parameters as matmul_f32.wgsl ("main"), with
// w read as vec4<f16> (8 bytes) and widened to f32 before the dot product, so
// only the weight's storage precision changes, not the arithmetic.
//
// Bindings (group 0):
//   0  x     storage read        vec4<f32>[M * K/4]
//   1  w     storage read        vec4<f16>[N * K/4]  (u32 pairs of f16 on the host side)
//   2  y     storage read_write  f32[M * ldy]
//   3  bias  storage read        f32[>= col0 + N] (a dummy when has_bias = 0)
//   4  p     uniform             { M, N, K, ldy, col0, has_bias }
//
// Workgroup layout: WG_X x WG_Y invocations, each an 8 x 8 block of y (8 rows
// of x against 8 rows of w). Dispatch [ceil(N / (8 WG_X)), ceil(M / (8 WG_Y))].
// Requires K % 4 == 0. Rows past M or N are clamped for loading and skipped
// for storing.

enable f16;

struct Params {
  M: u32,
  N: u32,
  K: u32,
  ldy: u32,
  col0: u32,
  has_bias: u32,
}

override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;
const TM: u32 = 8u;
const TN: u32 = 8u;

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<f16>>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n0 = gid.x * TN;
  let m0 = gid.y * TM;
  if (n0 >= p.N || m0 >= p.M) {
    return;
  }
  let k4 = p.K / 4u;
  var xrow: array<u32, TM>;
  var wrow: array<u32, TN>;
  for (var i = 0u; i < TM; i++) {
    xrow[i] = min(m0 + i, p.M - 1u) * k4;
  }
  for (var j = 0u; j < TN; j++) {
    wrow[j] = min(n0 + j, p.N - 1u) * k4;
  }
  var acc: array<f32, 64>;
  for (var k = 0u; k < k4; k++) {
    var xv: array<vec4<f32>, TM>;
    var wv: array<vec4<f32>, TN>;
    for (var i = 0u; i < TM; i++) {
      xv[i] = x[xrow[i] + k];
    }
    for (var j = 0u; j < TN; j++) {
      wv[j] = vec4<f32>(w[wrow[j] + k]);
    }
    for (var i = 0u; i < TM; i++) {
      for (var j = 0u; j < TN; j++) {
        acc[i * TN + j] += dot(xv[i], wv[j]);
      }
    }
  }
  for (var i = 0u; i < TM; i++) {
    let m = m0 + i;
    if (m >= p.M) {
      break;
    }
    for (var j = 0u; j < TN; j++) {
      let n = n0 + j;
      if (n >= p.N) {
        break;
      }
      var v = acc[i * TN + j];
      if (p.has_bias != 0u) {
        v += bias[p.col0 + n];
      }
      y[m * p.ldy + p.col0 + n] = v;
    }
  }
}
