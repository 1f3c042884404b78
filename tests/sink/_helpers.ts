/**
 * Helpers shared by the sink tests: a tiny synthetic source model folder and
 * tensor builders.
 *
 * @module
 */

import { HfModel } from "../../src/io/hf_model.ts";
import { writeSafetensors } from "../../src/io/safetensors_write.ts";
import type { CheckpointTensor } from "../../src/sink/mod.ts";
import { tempDirRunner, type WithTempDir } from "../_shared.ts";

/**
 * An F32 tensor with the given values.
 *
 * @param name tensor name
 * @param shape its shape
 * @param fill value of element i
 * @returns the tensor
 */
export function f32Tensor(
  name: string,
  shape: number[],
  fill: (i: number) => number = (i) => i,
): CheckpointTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = fill(i);
  return { name, dtype: "F32", shape, data: new Uint8Array(v.buffer) };
}

/**
 * Writes a two-layer llama config (with a Python-float rope_theta) and a
 * one-tensor weights file, plus a tokenizer file, into `dir`; opens it.
 *
 * @param dir an empty folder
 * @returns the open model
 */
export async function tinySource(dir: string): Promise<HfModel> {
  await Deno.writeTextFile(
    `${dir}/config.json`,
    `{"model_type": "llama", "hidden_size": 4, "intermediate_size": 8, "num_hidden_layers": 2,
      "num_attention_heads": 2, "vocab_size": 3, "rope_theta": 10000.0, "rms_norm_eps": 1e-05,
      "torch_dtype": "float32"}`,
  );
  await Deno.writeTextFile(`${dir}/tokenizer.json`, '{"model": {}}');
  const norm = f32Tensor("model.norm.weight", [4]);
  await writeSafetensors(`${dir}/model.safetensors`, [{ ...norm, shape: [...norm.shape] }]);
  return await HfModel.open(dir);
}

/** Runs `fn` with a fresh temporary folder (`llmc-sink-test-*`), removed afterwards. */
export const withTempDir: WithTempDir = tempDirRunner("llmc-sink-test-");
