/**
 * Synthetic MoE checkpoints for the quantization tests: transformers' tensor
 * names, stories260K's tokenizer (vocab 512) so calibration text tokenizes.
 *
 * @module
 */

import { type SyntheticSpec, writeSyntheticModel } from "../../src/model/synthetic_model.ts";
import { SHARED_DIR } from "../_shared.ts";

/** stories260K (its tokenizer). */
export const STORIES = `${SHARED_DIR}models/stories260K`;
/** Calibration text. */
export const CALIB = `${SHARED_DIR}data/tinystories_calib.txt`;

const BASE = {
  hidden: 128,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  intermediate: 128,
  vocab: 512,
  tied: false,
  maxPositions: 128,
} as const;

/** 2 layers, 4–8 experts, top-2; every Linear's width a multiple of 128 (W4A16's group). */
export const MOE_QUANT_SPECS: Record<string, SyntheticSpec> = {
  mixtral: { ...BASE, modelType: "mixtral", moe: { experts: 4, topK: 2 } },
  qwen2_moe: {
    ...BASE,
    modelType: "qwen2_moe",
    moe: { experts: 4, topK: 2, expertIntermediate: 128, sharedIntermediate: 256 },
  },
  qwen3_moe: {
    ...BASE,
    modelType: "qwen3_moe",
    moe: { experts: 8, topK: 2, expertIntermediate: 128, normTopkProb: true },
  },
};

/**
 * Writes a synthetic MoE model with stories260K's tokenizer into `dir`.
 *
 * @param spec the model
 * @param dir a folder that does not exist yet
 * @returns dir
 */
export async function writeMoeModel(spec: SyntheticSpec, dir: string): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  await writeSyntheticModel(spec, dir);
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(`${STORIES}/${f}`, `${dir}/${f}`);
  }
  return dir;
}
