// moe_combine: how a mixture-of-experts block mixes its experts, elementwise
// over [rows, cols] with one weight per row taken from column `col` of a
// [rows, stride] matrix (the router's dense routing weights, or the
// shared-expert gate's [rows, 1] logits):
//
//   accumulate  acc[r, c] = (overwrite ? 0 : acc[r, c]) + g(w[r, col]) · y[r, c]
//               g = sigmoid when `sigmoid` is set (qwen2_moe's shared expert
//               gate), the identity otherwise (a routed expert's weight)
//   mask_rows   acc[r, c] = w[r, col] != 0 ? y[r, c] : 0
//               (the rows of the tokens routed to expert `col`: what the
//               expert sees when only routed tokens are calibrated)
//
// Bindings (group 0, the same for both entry points):
//   0  y    storage read        f32 [rows, cols]
//   1  w    storage read        f32 [rows, stride]
//   2  acc  storage read_write  f32 [rows, cols]
//   3  p    uniform             { rows, cols, stride, col, overwrite, sigmoid }
//
// Workgroup layout: 64 invocations, one element each; the 1-D grid is folded
// into (x, y) by the host.

struct Params {
  rows: u32,
  cols: u32,
  stride: u32,
  col: u32,
  overwrite: u32,
  sigmoid: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> y: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> acc: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn index(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * 64u + lid;
}

@compute @workgroup_size(64)
fn accumulate(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = index(wid, nwg, lid);
  if (i >= p.rows * p.cols) {
    return;
  }
  var g = w[(i / p.cols) * p.stride + p.col];
  if (p.sigmoid != 0u) {
    g = 1.0 / (1.0 + exp(-g));
  }
  var before = 0.0;
  if (p.overwrite == 0u) {
    before = acc[i];
  }
  acc[i] = before + g * y[i];
}

@compute @workgroup_size(64)
fn mask_rows(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = index(wid, nwg, lid);
  if (i >= p.rows * p.cols) {
    return;
  }
  var v = 0.0;
  if (w[(i / p.cols) * p.stride + p.col] != 0.0) {
    v = y[i];
  }
  acc[i] = v;
}
