// rope: rotary position embedding in place, in Hugging Face's rotate_half
// convention: with half = head_dim / 2 and i < half,
//   x'[i]        = x[i] * cos[t, i] - x[i + half] * sin[t, i]
//   x'[i + half] = x[i + half] * cos[t, i] + x[i] * sin[t, i]
// where t = row % seq_len is the token's position in its sequence. The host
// computes the cos/sin tables (inv_freq of every rope_scaling type, times the
// attention scaling) exactly as transformers does, so this kernel only rotates.
//
// Bindings (the same for both entry points):
//   0 x       storage, read_write  f32 [batch * seq_len, heads * head_dim]
//   1 cos     storage, read        f32 [seq_len, head_dim / 2]
//   2 sin     storage, read        f32 [seq_len, head_dim / 2]
//   3 params  uniform              { rows, seq_len, heads, head_dim }
// Entry points:
//   main   one invocation per (row, head, i < half), 64 per workgroup; the
//          1-D grid is folded into (x, y)
//   vec4s  one invocation per (row, head, 4 pairs i .. i + 3), for half % 4 == 0
//          (head_dim % 8 == 0); x4/cos4/sin4 alias bindings 0-2, which WGSL
//          allows because no entry point uses both views
// Each invocation reads and writes only its own pairs, so the update in
// place is race-free.
// Why vec4s: on llvmpipe every storage access is a loop over the 8 SIMD lanes
// and a vec4 costs about what a scalar does, so 4 pairs per invocation cut
// the accesses 4x. Measured there, ms per call (wall / CPU over both cores):
// [4096, 8 heads of 8] 1.4-1.7 / 1.7 -> 0.9-1.4 / 0.7; [256, 12 heads of 64]
// 1.2-1.8 / 1.3 -> 0.85-1.0 / 0.55.

struct Params {
  rows: u32,
  seq_len: u32,
  heads: u32,
  head_dim: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> cos_table: array<f32>;
@group(0) @binding(2) var<storage, read> sin_table: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@group(0) @binding(0) var<storage, read_write> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> cos4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> sin4: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let half = params.head_dim / 2u;
  let i = (wid.y * nwg.x + wid.x) * 64u + lid;
  if (i >= params.rows * params.heads * half) {
    return;
  }
  let pair = i % half;
  let head = (i / half) % params.heads;
  let row = i / (half * params.heads);
  let pos = row % params.seq_len;

  let base = row * params.heads * params.head_dim + head * params.head_dim;
  let x1 = x[base + pair];
  let x2 = x[base + pair + half];
  let c = cos_table[pos * half + pair];
  let s = sin_table[pos * half + pair];
  x[base + pair] = x1 * c - x2 * s;
  x[base + pair + half] = x2 * c + x1 * s;
}

@compute @workgroup_size(64)
fn vec4s(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  // Everything below counts vec4s: half4 of them per half head.
  let half4 = params.head_dim / 8u;
  let i = (wid.y * nwg.x + wid.x) * 64u + lid;
  if (i >= params.rows * params.heads * half4) {
    return;
  }
  let quad = i % half4;
  let head = (i / half4) % params.heads;
  let row = i / (half4 * params.heads);
  let pos = row % params.seq_len;

  let base = (row * params.heads + head) * 2u * half4;
  let x1 = x4[base + quad];
  let x2 = x4[base + quad + half4];
  let c = cos4[pos * half4 + quad];
  let s = sin4[pos * half4 + quad];
  x4[base + quad] = x1 * c - x2 * s;
  x4[base + quad + half4] = x2 * c + x1 * s;
}
