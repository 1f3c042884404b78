// elementwise_scale: y[i] = x[i] * s
//
// Bindings (group 0):
//   0  x  storage read        f32[n]
//   1  y  storage read_write  f32[n]
//   2  p  uniform             { n: u32, s: f32 }
//
// Workgroup layout: 256 invocations in x, one element each; a 1-D count of
// ceil(n / 256) workgroups, folded into 2-D by the host when it exceeds
// maxComputeWorkgroupsPerDimension (linear index wid.x + wid.y * nwg.x).

struct Params {
  n: u32,
  s: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

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
  y[i] = x[i] * p.s;
}
