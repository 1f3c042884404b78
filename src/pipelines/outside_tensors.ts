/**
 * The tensors outside the decoder layers (embeddings, final norm, lm_head):
 * copied unchanged, except a quantized lm_head, which is compressed (and
 * written untied when the model ties it to the embeddings).
 *
 * @module
 */

import { compressModule } from "../compress/compress_module.ts";
import type { HfModel } from "../io/hf_model.ts";
import { computeDTypeOf } from "../modifiers/quantization/linear_plan.ts";
import type { PlannedLinear } from "../modifiers/quantization/linear_plan.ts";
import type { CheckpointSink } from "../sink/checkpoint_sink.ts";
import type { LinearResult } from "../graph/modifier.ts";

const LAYER_TENSOR = /^model\.layers\.\d+\./;

/** The sink group key of lm_head when it is quantized. */
export const LM_HEAD_GROUP = "lm_head";

function groupKey(name: string): string {
  return name.replace(/[^A-Za-z0-9_-]/g, "_");
}

/**
 * Copies every non-layer tensor the sink does not have yet, leaving out
 * lm_head's weight when lm_head is quantized (see {@link writeLmHead}).
 *
 * @param source the checkpoint
 * @param lmHead lm_head's plan
 * @param sink the open sink
 * @returns bytes read
 * @example
 * ```ts ignore
 * await copyOutsideTensors(hf, lmHeadPlan, sink);
 * ```
 */
export async function copyOutsideTensors(
  source: HfModel,
  lmHead: PlannedLinear,
  sink: CheckpointSink,
): Promise<number> {
  const quantized = lmHead.scheme !== null && lmHead.format !== null;
  let bytes = 0;
  for (const name of source.tensorNames()) {
    if (LAYER_TENSOR.test(name)) continue;
    if (quantized && name === "lm_head.weight") continue;
    const key = groupKey(name);
    if (sink.isGroupDone(key)) continue;
    const info = source.info(name);
    bytes += info.byteLength;
    await sink.writeTensors(key, [{
      name,
      dtype: info.dtype,
      shape: info.shape,
      data: await source.readRaw(name),
    }]);
  }
  return bytes;
}

/**
 * Compresses and persists a quantized lm_head.
 *
 * @param source the checkpoint (the weight's stored dtype)
 * @param lmHead lm_head's plan
 * @param result its quantization
 * @param sink the open sink
 * @example
 * ```ts ignore
 * await writeLmHead(hf, lmHeadPlan, await quantizeLmHead(...), sink);
 * ```
 */
export async function writeLmHead(
  source: HfModel,
  lmHead: PlannedLinear,
  result: LinearResult,
  sink: CheckpointSink,
): Promise<void> {
  const dtype = computeDTypeOf(source.info(lmHead.weightTensor).dtype, lmHead.weightTensor);
  await sink.writeTensors(
    LM_HEAD_GROUP,
    compressModule(
      result.module,
      result.weight,
      result.shape,
      result.scheme,
      { weight: result.weightQParams, input: result.input },
      dtype,
      result.format,
    ),
  );
}
