// silu_mul: out = silu(gate) * up, elementwise, where silu(g) = g / (1 + exp(-g))
// (the gated MLP of Llama: down_proj(act_fn(gate_proj(x)) * up_proj(x))).
//
// Bindings (the same for both entry points):
//   0 gate    storage, read        f32 [n]
//   1 up      storage, read        f32 [n]
//   2 out     storage, read_write  f32 [n]
//   3 params  uniform              { n }
// Entry points:
//   main   one invocation per element, 64 per workgroup; the 1-D grid is
//          folded into (x, y)
//   vec4s  the same with one vec4 of 4 elements per invocation (n % 4 == 0;
//          gate4/up4/out4 alias bindings 0-2, no entry point uses both views)
// Why vec4s: on llvmpipe every storage access is a loop over the 8 SIMD lanes,
// and a vec4 costs about what a scalar does, so 4 elements per invocation
// cut the loads and stores 4x. Measured there, ms per call (wall / CPU over
// both cores): [4096, 172] 2.3-3.6 / 3.4 -> 1.4-2.2 / 1.6; [256, 2048]
// 2.3-2.8 / 2.6 -> 1.2-1.4 / 1.3 (8 elements per invocation: no better).
// Elementwise, so coalesced on real GPUs either way.

struct Params {
  n: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<storage, read> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@group(0) @binding(0) var<storage, read> gate4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> up4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out4: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = (wid.y * nwg.x + wid.x) * 64u + lid;
  if (i >= params.n) {
    return;
  }
  let g = gate[i];
  // For g far below zero exp(-g) overflows to +inf and g / inf is -0, which is
  // silu's limit, so no clamp is needed.
  out[i] = g / (1.0 + exp(-g)) * up[i];
}

@compute @workgroup_size(64)
fn vec4s(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = (wid.y * nwg.x + wid.x) * 64u + lid;
  if (i >= params.n / 4u) {
    return;
  }
  let g = gate4[i];
  out4[i] = g / (1.0 + exp(-g)) * up4[i];
}
