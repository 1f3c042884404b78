/**
 * Helpers shared by the oneshot, modifier and model-free tests: paths of the
 * shared data, temporary folders, reading checkpoints, counting code flips.
 *
 * @module
 */

import { SafetensorsFile } from "../../src/io/safetensors_read.ts";
import { writeSafetensors } from "../../src/io/safetensors_write.ts";
import type { DType } from "../../src/io/dtype.ts";
import { bytesToF32, f32ToBytes } from "../../src/io/tensor_bytes.ts";
import type { CompressedTensor } from "../../src/compress/compressed_tensor.ts";
import { SHARED_DIR, tempDirRunner, type WithTempDir } from "../_shared.ts";

/** The tiny real Llama every test runs on. */
export const STORIES = `${SHARED_DIR}models/stories260K`;

/** The llm-compressor 0.9 reference checkpoints. */
export const REFERENCES = [
  "a_rtn_w4a16_channel",
  "a2_rtn_w4a16_asym_channel",
  "k_w8a16",
  "e_fp8_dynamic",
  "g1b_nvfp4a16_skipdown",
] as const;

/** Runs `fn` with a fresh temporary folder (`llmc-oneshot-test-*`), removed afterwards. */
export const withTempDir: WithTempDir = tempDirRunner("llmc-oneshot-test-");

/**
 * Every tensor of a safetensors file, in file order.
 *
 * @param path the file
 * @returns the tensors
 */
export async function readAll(path: string): Promise<CompressedTensor[]> {
  const f = await SafetensorsFile.open(path);
  try {
    const out: CompressedTensor[] = [];
    for (const name of f.names()) {
      const info = f.info(name);
      out.push({ name, dtype: info.dtype, shape: info.shape, data: await f.readRaw(name) });
    }
    return out;
  } finally {
    f.close();
  }
}

/**
 * Copies stories260K into `dir` with every tensor converted to `dtype`
 * (F32 → BF16/F16 rounding as PyTorch does).
 *
 * @param dir an existing empty folder
 * @param dtype the new dtype
 */
export async function storiesAs(dir: string, dtype: DType): Promise<void> {
  for (const e of Deno.readDirSync(STORIES)) {
    if (e.name !== "model.safetensors") {
      await Deno.copyFile(`${STORIES}/${e.name}`, `${dir}/${e.name}`);
    }
  }
  const tensors = (await readAll(`${STORIES}/model.safetensors`)).map((t) => ({
    name: t.name,
    dtype,
    shape: [...t.shape],
    data: f32ToBytes(dtype, bytesToF32(t.dtype, t.data)),
  }));
  await writeSafetensors(`${dir}/model.safetensors`, tensors);
}

/**
 * Lists a folder's entry names, sorted.
 *
 * @param dir the folder
 * @returns the names
 */
export function listDir(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}
