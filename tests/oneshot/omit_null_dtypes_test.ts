/**
 * The option for older vLLM builds: config.json without null scale_dtype /
 * zp_dtype keys (compressed-tensors <= 0.12 rejects unknown keys), through
 * oneshot, model-free PTQ and the CLI.
 */

import assert from "node:assert/strict";
import { command as modelFreeCommand } from "../../src/cli/model_free_ptq.ts";
import { modelFreePtq } from "../../src/model_free/model_free_ptq.ts";
import { oneshot } from "../../src/oneshot.ts";
import { STORIES, withTempDir } from "./_helpers.ts";

type Json = Record<string, unknown>;

async function weightsArgs(dir: string): Promise<Json> {
  const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  const groups = config.quantization_config.config_groups as Record<string, Json>;
  return Object.values(groups)[0].weights as Json;
}

Deno.test("oneshot writes null dtypes by default and omits them when asked", async () => {
  await withTempDir(async (dir) => {
    await oneshot({
      model: STORIES,
      scheme: "W8A16",
      ignore: ["lm_head"],
      outputDir: `${dir}/default`,
    });
    const full = await weightsArgs(`${dir}/default`);
    assert.ok("scale_dtype" in full && full.scale_dtype === null);
    assert.ok("zp_dtype" in full && full.zp_dtype === null);

    await oneshot({
      model: STORIES,
      scheme: "W8A16",
      ignore: ["lm_head"],
      outputDir: `${dir}/legacy`,
      omitNullDtypes: true,
    });
    const legacy = await weightsArgs(`${dir}/legacy`);
    assert.ok(!("scale_dtype" in legacy), "null scale_dtype is omitted");
    assert.ok(!("zp_dtype" in legacy), "null zp_dtype is omitted");
    assert.equal(legacy.num_bits, 8);
    // Only config.json differs; the tensors are the same bytes.
    assert.deepEqual(
      await Deno.readFile(`${dir}/legacy/model.safetensors`),
      await Deno.readFile(`${dir}/default/model.safetensors`),
    );
  });
});

Deno.test("a non-null scale_dtype is kept when null ones are omitted (NVFP4A16)", async () => {
  await withTempDir(async (dir) => {
    await modelFreePtq(STORIES, `${dir}/out`, "NVFP4A16", [
      "model.embed_tokens",
      "re:.*down_proj$",
    ], { omitNullDtypes: true });
    const args = await weightsArgs(`${dir}/out`);
    assert.equal(args.scale_dtype, "torch.float8_e4m3fn");
    assert.ok(!("zp_dtype" in args), "symmetric zp_dtype (null) is omitted");
  });
});

Deno.test("the model-free-ptq CLI takes --omit-null-dtypes", async () => {
  await withTempDir(async (dir) => {
    const code = await modelFreeCommand.run([
      "--model",
      STORIES,
      "--scheme",
      "FP8_DYNAMIC",
      "--ignore",
      "model.embed_tokens",
      "--output-dir",
      `${dir}/out`,
      "--omit-null-dtypes",
      "--quiet",
    ]);
    assert.equal(code, 0);
    const args = await weightsArgs(`${dir}/out`);
    assert.ok(!("scale_dtype" in args) && !("zp_dtype" in args));
  });
});
