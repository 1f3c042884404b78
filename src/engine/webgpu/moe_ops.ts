/**
 * The GPU operations of a mixture-of-experts block (`kernels/moe_route.wgsl`,
 * `kernels/moe_combine.wgsl`): the router's top-k weights as a dense
 * [rows, experts] matrix, the weighted sum of expert outputs, and the rows
 * routed to one expert. Each function only records a dispatch into the
 * caller's {@link CommandBatch}. The WebGPU engine's `routeTopK`,
 * `accumulateWeighted` and `maskRows` are these.
 *
 * @module
 */

import type { AccumulateOptions } from "../engine.ts";
import type { CommandBatch } from "../../gpu/batch.ts";
import { kernelSync } from "../../gpu/kernel.ts";
import { GpuTensor } from "../../gpu/tensor.ts";
import { foldWorkgroups, workgroupsFor } from "../../gpu/workgroups.ts";
import { EngineError } from "../engine_error.ts";

/**
 * The routing weights of every token: softmax over the router logits, the
 * `topK` largest kept (renormalized to sum 1 when `normalize`), every other
 * entry 0.
 *
 * @param batch the batch to record into
 * @param logits the router Linear's output, [rows, experts]
 * @param topK experts per token
 * @param normalize divide the kept weights by their sum (mixtral; `norm_topk_prob`)
 * @returns a new [rows, experts] tensor
 * @example
 * ```ts ignore
 * import { routeTopK } from "./moe_ops.ts";
 * const w = routeTopK(batch, routerLogits, 2, true);
 * ```
 */
export function routeTopK(
  batch: CommandBatch,
  logits: GpuTensor,
  topK: number,
  normalize: boolean,
): GpuTensor {
  const [rows, experts] = logits.shape;
  if (logits.shape.length !== 2 || topK < 1 || topK > experts) {
    throw new EngineError(
      `routeTopK: expected logits [rows, experts] and 1 ≤ topK ≤ experts, got [${logits.shape}], ${topK}`,
    );
  }
  const w = GpuTensor.allocate(batch.gpu, [rows, experts]);
  batch.dispatch(
    kernelSync(batch.gpu, "moe_route.wgsl"),
    [logits, w, { uniform: new Uint32Array([rows, experts, topK, normalize ? 1 : 0]) }],
    foldWorkgroups(batch.gpu, workgroupsFor(rows, 64)),
    "moe_route",
  );
  return w;
}

/**
 * `acc[r, :] += g(weights[r, col]) · y[r, :]` for every row.
 *
 * @param batch the batch to record into
 * @param acc the sum, [rows, cols]; modified
 * @param y the expert output, [rows, cols]
 * @param weights [rows, stride]
 * @param col the column of `weights` to use
 * @param options overwrite instead of add; sigmoid of the weight
 * @example
 * ```ts ignore
 * import { accumulateWeighted } from "./moe_ops.ts";
 * accumulateWeighted(batch, out, expertOut, routing, e, { overwrite: e === 0 });
 * ```
 */
export function accumulateWeighted(
  batch: CommandBatch,
  acc: GpuTensor,
  y: GpuTensor,
  weights: GpuTensor,
  col: number,
  options: AccumulateOptions = {},
): void {
  combine(batch, "accumulate", y, weights, acc, col, options);
}

/**
 * The rows of `x` whose weight in column `col` is non-zero, the others zeroed:
 * an expert's routed tokens, in place in the full [rows, cols] layout.
 *
 * @param batch the batch to record into
 * @param x [rows, cols]
 * @param weights [rows, stride]
 * @param col the column (expert) to mask by
 * @returns a new [rows, cols] tensor
 * @example
 * ```ts ignore
 * import { maskRows } from "./moe_ops.ts";
 * const routedInput = maskRows(batch, hn, routing, e);
 * ```
 */
export function maskRows(
  batch: CommandBatch,
  x: GpuTensor,
  weights: GpuTensor,
  col: number,
): GpuTensor {
  const out = GpuTensor.allocate(batch.gpu, [...x.shape]);
  combine(batch, "mask_rows", x, weights, out, col, {});
  return out;
}

function combine(
  batch: CommandBatch,
  entryPoint: "accumulate" | "mask_rows",
  y: GpuTensor,
  weights: GpuTensor,
  out: GpuTensor,
  col: number,
  options: AccumulateOptions,
): void {
  const cols = y.shape[y.shape.length - 1];
  const rows = y.numel / cols;
  const stride = weights.shape[weights.shape.length - 1];
  if (out.numel !== y.numel || weights.numel !== rows * stride || col >= stride) {
    throw new EngineError(
      `moe ${entryPoint}: y [${y.shape}], out [${out.shape}] and weights [${weights.shape}] ` +
        `(column ${col}) do not fit`,
    );
  }
  batch.dispatch(
    kernelSync(batch.gpu, "moe_combine.wgsl", { entryPoint }),
    [y, weights, out, {
      uniform: new Uint32Array([
        rows,
        cols,
        stride,
        col,
        options.overwrite ? 1 : 0,
        options.sigmoid ? 1 : 0,
        0,
        0,
      ]),
    }],
    foldWorkgroups(batch.gpu, workgroupsFor(rows * cols, 64)),
    `moe_combine:${entryPoint}`,
  );
}
