/**
 * The whole-model pre-pass of SpinQuant: the source checkpoint is streamed
 * tensor by tensor through {@link RotatedWeightSource} (float64 rotations)
 * into a float checkpoint of the same dtypes, which the modifiers after
 * SpinQuant (RTN, GPTQ…) then read like any model. Embeddings, the final norm
 * and lm_head live outside decoder layers, which is why this runs before the
 * layer pipelines rather than as a layer session; at most one tensor is held.
 *
 * @module
 */

import { auxiliaryFiles, HfModel } from "../../io/hf_model.ts";
import type { DType } from "../../io/dtype.ts";
import { type PlannedTensor, writePlannedSafetensors } from "../../io/safetensors_write.ts";
import { f32ToBytes } from "../../io/tensor_bytes.ts";
import { EMBED_TOKENS, LM_HEAD } from "../../model/module_names.ts";
import type { WeightSource } from "../../model/weight_source.ts";
import type { JsonValue } from "../../quant/python_json.ts";
import type { ExtraTensor } from "../../transform/online_source.ts";
import { type FusedRotations, RotatedWeightSource } from "../../transform/rotated_source.ts";
import type { BlockTransformOps } from "../../engine/engine.ts";

/**
 * Writes the rotated model (untied lm_head, folded norms) into `dir`, with
 * config.json (`tie_word_embeddings: false`) and the tokenizer files.
 *
 * @param source the original model
 * @param rotations R1 and R2
 * @param dir an existing empty folder
 * @param ops the engine whose float64 `blockTransform` runs the rotations
 * @returns the rotated model, opened
 * @example
 * ```ts ignore
 * const rotated = await writeRotatedCheckpoint(hf, spinQuantRotations(hf.config, plan), tmp, engine);
 * ```
 */
export function writeRotatedCheckpoint(
  source: HfModel,
  rotations: FusedRotations,
  dir: string,
  ops: BlockTransformOps,
): Promise<HfModel> {
  return writeTransformedCheckpoint(source, new RotatedWeightSource(source, rotations, ops), dir);
}

/**
 * Writes a transformed view of `source` into `dir`: every tensor of the
 * source (and lm_head, untied) read through `transformed`, then its extra
 * tensors (online transform matrices), with config.json
 * (`tie_word_embeddings: false`, and `groups` added to
 * `quantization_config.transform_config`, so llmc's forward applies their
 * online halves while the next modifiers calibrate) and the tokenizer files.
 *
 * @param source the original model (dtypes, config.json, tokenizer files)
 * @param transformed the transformed view of it
 * @param dir an existing empty folder
 * @param groups transform_config groups with online halves, if any
 * @returns the written model, opened
 * @example
 * ```ts ignore
 * const out = await writeTransformedCheckpoint(hf, new OnlineTransformSource(hf, groups, seeds, engine), tmp, groups);
 * ```
 */
export async function writeTransformedCheckpoint(
  source: HfModel,
  transformed: WeightSource & { extraTensors?(): ExtraTensor[] },
  dir: string,
  groups: { [group: string]: JsonValue } = {},
): Promise<HfModel> {
  const names = source.tensorNames();
  if (!source.has(LM_HEAD) && !transformed.config.tieWordEmbeddings) names.push(LM_HEAD);
  const tensor = (name: string, dtype: DType, shape: readonly number[]): PlannedTensor => ({
    name,
    dtype,
    shape,
    read: async () => f32ToBytes(dtype, await transformed.readF32(name)),
  });
  // Every tensor's dtype and shape are known up front: written once, straight into the
  // shards, each computed at its turn. A scratch folder of this run: no flush to the disk.
  await writePlannedSafetensors(dir, [
    ...names.map((name) => {
      const info = source.info(source.has(name) ? name : EMBED_TOKENS);
      return tensor(name, info.dtype, info.shape);
    }),
    ...(transformed.extraTensors?.() ?? []).map((e) => tensor(e.name, e.dtype, e.shape)),
  ], { durable: false });
  const config = JSON.parse(await Deno.readTextFile(`${source.dir}/config.json`));
  if (!transformed.config.tieWordEmbeddings) config.tie_word_embeddings = false;
  if (Object.keys(groups).length > 0) {
    const qc = config.quantization_config ?? {};
    const tc = qc.transform_config ?? {};
    config.quantization_config = {
      ...qc,
      transform_config: { ...tc, config_groups: { ...(tc.config_groups ?? {}), ...groups } },
    };
  }
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config, null, 2) + "\n");
  for (const f of auxiliaryFiles(source.dir)) {
    await Deno.copyFile(f, `${dir}/${f.slice(f.lastIndexOf("/") + 1)}`);
  }
  return await HfModel.open(dir);
}
