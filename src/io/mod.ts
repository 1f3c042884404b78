/**
 * Tensor and model I/O: safetensors reading (validated) and writing
 * (atomic, sharded), Hugging Face model folders and configs, tokenizers,
 * and bit-exact narrow-float conversions.
 *
 * @example
 * ```ts
 * import { f32ToF8E4M3Bits, SafetensorsFile, writeSafetensors } from "./mod.ts";
 * const dir = await Deno.makeTempDir();
 * const data = new Uint8Array([f32ToF8E4M3Bits(1.0), f32ToF8E4M3Bits(-224)]);
 * await writeSafetensors(`${dir}/w.safetensors`, [{ name: "w", dtype: "F8_E4M3", shape: [2], data }]);
 * const f = await SafetensorsFile.open(`${dir}/w.safetensors`);
 * await f.readF32("w"); // Float32Array [1, -224]
 * f.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

export * from "./dtype.ts";
export * from "./floats.ts";
export * from "./tensor_bytes.ts";
export * from "./safetensors_header.ts";
export * from "./safetensors_read.ts";
export * from "./safetensors_write.ts";
export * from "./atomic_dir.ts";
export * from "./output_lock.ts";
export * from "./json_limits.ts";
export * from "./model_config.ts";
export * from "./hf_model.ts";
export * from "./tokenizer.ts";
