// log_softmax_nll: the negative log-likelihood of each row's target token,
//   nll[r] = logsumexp(logits[r, :]) - logits[r, targets[r]]
// computed stably in f32 over the vocabulary in column blocks, so the logits
// (and lm_head) never need to exist whole: each dispatch folds one block of
// vocab columns v0 .. v0 + block - 1 into a running state per row,
//   m = max logit so far, s = sum of exp(logit - m) so far, t = target logit,
// merging the block's own max and sum by s = s * exp(m - m') + s_b * exp(m_b - m').
// The first block (flags bit 0) starts the state; the last (flags bit 1) also
// writes nll[r] = m + log(s) - t. A negative target marks a row without a
// prediction (the last token of a sequence): its nll is 0.
//
// Bindings:
//   0 logits  storage, read        f32 [rows, block]   columns v0 .. v0 + block - 1
//   1 targets storage, read        i32 [rows]
//   2 state   storage, read_write  f32 [rows, 3]       (m, s, t)
//   3 nll     storage, read_write  f32 [rows]
//   4 params  uniform              { rows, block, v0, flags }
// Layout: one workgroup of 256 invocations per row; the row index is
// wid.y * nwg.x + wid.x. Two tree reductions in workgroup memory give the
// block's max and its sum of exp(logit - max); invocation 0 merges them.

struct Params {
  rows: u32,
  block: u32,
  v0: u32,
  flags: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(0) @binding(2) var<storage, read_write> state: array<f32>;
@group(0) @binding(3) var<storage, read_write> nll: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

const WG: u32 = 256u;
const FIRST: u32 = 1u;
const LAST: u32 = 2u;
var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(256)
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= params.rows) {
    return;
  }
  let base = row * params.block;

  var block_max = -3.0e38;
  for (var c = lid; c < params.block; c += WG) {
    block_max = max(block_max, logits[base + c]);
  }
  partial[lid] = block_max;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) {
      partial[lid] = max(partial[lid], partial[lid + stride]);
    }
    workgroupBarrier();
  }
  block_max = partial[0];
  workgroupBarrier();

  var block_sum = 0.0;
  for (var c = lid; c < params.block; c += WG) {
    block_sum += exp(logits[base + c] - block_max);
  }
  partial[lid] = block_sum;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) {
      partial[lid] += partial[lid + stride];
    }
    workgroupBarrier();
  }

  if (lid == 0u) {
    block_sum = partial[0];
    var m = block_max;
    var s = block_sum;
    var t = 0.0;
    if ((params.flags & FIRST) == 0u) {
      let m_old = state[row * 3u];
      m = max(m_old, block_max);
      s = state[row * 3u + 1u] * exp(m_old - m) + block_sum * exp(block_max - m);
      t = state[row * 3u + 2u];
    }
    let target_id = targets[row];
    if (target_id >= i32(params.v0) && target_id < i32(params.v0 + params.block)) {
      t = logits[base + u32(target_id) - params.v0];
    }
    state[row * 3u] = m;
    state[row * 3u + 1u] = s;
    state[row * 3u + 2u] = t;
    if ((params.flags & LAST) != 0u) {
      nll[row] = select(m + log(s) - t, 0.0, target_id < 0);
    }
  }
}
