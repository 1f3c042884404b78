// rmsnorm: y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight[:]
// (HF LlamaRMSNorm in float32: the mean of squares, then rsqrt, then the weight).
//
// Also used per attention head for Qwen3's q_norm / k_norm, by viewing
// [tokens, heads * head_dim] as [tokens * heads, head_dim].
//
// Bindings:
//   0 x       storage, read        f32 [rows, cols]
//   1 weight  storage, read        f32 [cols]
//   2 y       storage, read_write  f32 [rows, cols]
//   3 params  uniform              { rows, cols, eps }
// Layout: one workgroup of 64 invocations per row; the row index is
// wid.y * nwg.x + wid.x so more than 65535 rows fit in a 2-D grid. Each
// invocation sums the squares of a strided slice of the row, then a tree
// reduction in workgroup memory gives the row's sum.

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
