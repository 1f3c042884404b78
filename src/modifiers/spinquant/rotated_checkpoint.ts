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
import { ShardedSafetensorsWriter } from "../../io/safetensors_write.ts";
import { f32ToBytes } from "../../io/tensor_bytes.ts";
import { EMBED_TOKENS, LM_HEAD } from "../../model/module_names.ts";
import { type FusedRotations, RotatedWeightSource } from "../../transform/rotated_source.ts";

/**
 * Writes the rotated model (untied lm_head, folded norms) into `dir`, with
 * config.json (`tie_word_embeddings: false`) and the tokenizer files.
 *
 * @param source the original model
 * @param rotations R1 and R2
 * @param dir an existing empty folder
 * @returns the rotated model, opened
 * @example
 * ```ts ignore
 * const rotated = await writeRotatedCheckpoint(hf, spinQuantRotations(hf.config, plan), tmp);
 * ```
 */
export async function writeRotatedCheckpoint(
  source: HfModel,
  rotations: FusedRotations,
  dir: string,
): Promise<HfModel> {
  const rotated = new RotatedWeightSource(source, rotations);
  const writer = new ShardedSafetensorsWriter(dir);
  try {
    const names = source.tensorNames();
    if (!source.has(LM_HEAD)) names.push(LM_HEAD);
    for (const name of names) {
      const info = source.info(source.has(name) ? name : EMBED_TOKENS);
      const values = await rotated.readF32(name);
      await writer.add(name, info.dtype, [...info.shape], f32ToBytes(info.dtype, values));
    }
    await writer.finish();
  } catch (e) {
    await writer.abort();
    throw e;
  }
  const config = JSON.parse(await Deno.readTextFile(`${source.dir}/config.json`));
  config.tie_word_embeddings = false;
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config, null, 2) + "\n");
  for (const f of auxiliaryFiles(source.dir)) {
    await Deno.copyFile(f, `${dir}/${f.slice(f.lastIndexOf("/") + 1)}`);
  }
  return await HfModel.open(dir);
}
