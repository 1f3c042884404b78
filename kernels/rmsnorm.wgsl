// rmsnorm: y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight[:]
// (HF LlamaRMSNorm in float32: the mean of squares, then rsqrt, then the weight).
//
// Also used per attention head for Qwen3's q_norm / k_norm, by viewing
// [tokens, heads * head_dim] as [tokens * heads, head_dim].
//
// Bindings (the same for every entry point):
//   0 x       storage, read        f32 [rows, cols]
//   1 weight  storage, read        f32 [cols]
//   2 y       storage, read_write  f32 [rows, cols]
//   3 params  uniform              { rows, cols, eps }
//
// Entry points, one layout each:
//   main                     one workgroup of 64 invocations per row; the row
//                            index is wid.y * nwg.x + wid.x so more than 65535
//                            rows fit in a 2-D grid. Each invocation sums the
//                            squares of a strided slice of the row, then a tree
//                            reduction in workgroup memory gives the row's sum.
//                            Neighbouring invocations read neighbouring columns
//                            (coalesced): the layout for wide rows on real GPUs.
//   row_per_invocation       one invocation per row, 64 rows per workgroup, the
//                            1-D grid of workgroups folded into (x, y): a loop
//                            sums the squares, a second writes the row. No
//                            workgroup memory and no barrier.
//   row_per_invocation_vec4  the same reading and writing vec4s (cols % 4 == 0;
//                            x4/weight4/y4 alias bindings 0-2, which WGSL allows
//                            because no entry point uses both views).
//
// Why two layouts: on llvmpipe (the software adapter, 8 f32 lanes per core)
// every workgroupBarrier serializes the lanes, and `main` has 7 per row, while
// each storage load or store is a loop over the 8 lanes, so a vec4 access
// costs little more than a scalar one. Measured there, wall ms per call
// (contended 2-core machine, ±30%):
//                          main   row_per_invocation(_vec4 where cols % 4 == 0)
//   [4096, 64]             9-17   0.9-1.5 (vec4; scalar 1.2)
//   [32768, 8] (per head)  62     1.0-1.7 (vec4; scalar 1.2)
//   [256, 768]             1.5-3  0.8-1.5 (vec4; scalar 1.0)
//   [4096, 172]            10.6   2.3 (vec4)
//   [4096, 171]            10.7   2.9 (scalar)
//   [4096, 4096]           75-80  18-20 (vec4; scalar 40)
// so ModelOps picks row_per_invocation(_vec4) for every shape on a software
// adapter and keeps `main` on real GPUs, where one invocation per row would
// read with a stride of a whole row between neighbouring invocations.

struct Params {
  rows: u32,
  cols: u32,
  eps: f32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> weight4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y4: array<vec4<f32>>;

const WG: u32 = 64u;
var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= params.rows) {
    return;
  }
  let base = row * params.cols;

  var sum_sq = 0.0;
  for (var c = lid; c < params.cols; c += WG) {
    let v = x[base + c];
    sum_sq += v * v;
  }
  partial[lid] = sum_sq;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) {
      partial[lid] += partial[lid + stride];
    }
    workgroupBarrier();
  }

  let inv_rms = inverseSqrt(partial[0] / f32(params.cols) + params.eps);
  for (var c = lid; c < params.cols; c += WG) {
    y[base + c] = weight[c] * (x[base + c] * inv_rms);
  }
}

@compute @workgroup_size(64)
fn row_per_invocation(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = (wid.y * nwg.x + wid.x) * WG + lid;
  if (row >= params.rows) {
    return;
  }
  let cols = params.cols;
  let base = row * cols;

  var sum_sq = 0.0;
  for (var c = 0u; c < cols; c++) {
    let v = x[base + c];
    sum_sq += v * v;
  }
  let inv_rms = inverseSqrt(sum_sq / f32(cols) + params.eps);
  for (var c = 0u; c < cols; c++) {
    y[base + c] = weight[c] * (x[base + c] * inv_rms);
  }
}

@compute @workgroup_size(64)
fn row_per_invocation_vec4(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = (wid.y * nwg.x + wid.x) * WG + lid;
  if (row >= params.rows) {
    return;
  }
  let n4 = params.cols / 4u;
  let base = row * n4;

  var sum_sq = vec4<f32>(0.0);
  for (var c = 0u; c < n4; c++) {
    let v = x4[base + c];
    sum_sq += v * v;
  }
  let inv_rms = inverseSqrt(
    (sum_sq.x + sum_sq.y + sum_sq.z + sum_sq.w) / f32(params.cols) + params.eps,
  );
  for (var c = 0u; c < n4; c++) {
    y4[base + c] = weight4[c] * (x4[base + c] * inv_rms);
  }
}
