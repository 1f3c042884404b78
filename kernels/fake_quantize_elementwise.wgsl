// fake_quantize_elementwise: the element loop of the fake-quantize kernels,
//   y = (code(clamp(x / s_eff + zp, q_min, q_max)) − zp) · s_eff,
// spliced into fake_quantize_int.wgsl, fake_quantize_fp8.wgsl and
// fake_quantize_fp4.wgsl, which differ only in the rounding onto their grid:
// each defines `fn quantize_code(t: f32) -> f32` before including this file.
//
// Bindings (group 0):
//   0  x           storage read        f32[rows·cols]   the tensor, row-major
//   1  scale       storage read        f32[slots]       one scale per qparam slot
//   2  zero_point  storage read        f32[slots]       used only when p.has_zp
//   3  row_slot    storage read        u32[rows]        slot offset of each row
//   4  col_slot    storage read        u32[cols]        slot offset of each column
//   5  y           storage read_write  f32[rows·cols]   fake-quantized output
//   6  p           uniform  { n, cols, has_zp, has_global: u32; q_min, q_max, global_scale: f32; pad }
//
// Element (r, c) uses slot row_slot[r] + col_slot[c], which covers the tensor,
// channel, token, group / tensor_group (g_idx included) and block strategies.
// s_eff = scale / global_scale when p.has_global (NVFP4's tensor_group), else
// scale.
//
// Workgroup layout: 256 invocations in x, one element each; a 1-D count of
// ceil(n / 256) workgroups, folded into 2-D by the host when it exceeds
// maxComputeWorkgroupsPerDimension (linear index wid.x + wid.y * nwg.x).
//
// Bit-exact with src/quant/quantize.ts (float32): x / s is divided with
// correct rounding (div_rn), every other op is a single correctly rounded
// f32 op, and the clamp lets NaN through as the reference does.

struct Params {
  n: u32,
  cols: u32,
  has_zp: u32,
  has_global: u32,
  q_min: f32,
  q_max: f32,
  global_scale: f32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read> zero_point: array<f32>;
@group(0) @binding(3) var<storage, read> row_slot: array<u32>;
@group(0) @binding(4) var<storage, read> col_slot: array<u32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

// div_rn, clamp_keep_nan (quantize_common.wgsl):
//! include "quantize_common.wgsl"

@compute @workgroup_size(256)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = (wid.x + wid.y * nwg.x) * 256u + lid;
  if (i >= p.n) {
    return;
  }
  let r = i / p.cols;
  let c = i - r * p.cols;
  let slot = row_slot[r] + col_slot[c];
  var s = scale[slot];
  if (p.has_global != 0u) {
    // NVFP4: the effective scale is the FP8 local scale over the global scale.
    s = div_rn(s, p.global_scale);
  }
  var t = div_rn(x[i], s);
  if (p.has_zp != 0u) {
    t = t + zero_point[slot];
  }
  let q = quantize_code(clamp_keep_nan(t, p.q_min, p.q_max));
  var v = q;
  if (p.has_zp != 0u) {
    v = q - zero_point[slot];
  }
  y[i] = v * s;
}
