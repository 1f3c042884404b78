// elementwise_mul: y[i] = a[i] * b[i % nb]
//
// b either matches a (nb = n) or broadcasts over a's leading dimensions
// (a: [..., C], b: [C], nb = C), which covers scaling every row by per-column factors.
//
// Bindings (group 0):
//   0  a  storage read        f32[n]
//   1  b  storage read        f32[nb]
//   2  y  storage read_write  f32[n]
//   3  p  uniform             { n, nb }
//
// Workgroup layout: 256 invocations in x, one element each. The host folds
// ceil(n / 256) workgroups into a 2-D grid when it exceeds
// maxComputeWorkgroupsPerDimension; the linear workgroup index is
// wid.x + wid.y * nwg.x and invocations past n do nothing.

struct Params {
  n: u32,
  nb: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

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
  y[i] = a[i] * b[i % p.nb];
}
