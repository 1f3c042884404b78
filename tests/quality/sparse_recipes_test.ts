/**
 * The 2:4 recipe scripts run end to end with their defaults (few samples):
 * recipes/sparse_2of4_fp8.ts on stories260K (float-quantized +
 * sparse-24-bitmask) and recipes/sparse_2of4_w4a16.ts, which falls back to
 * a synthetic model because stories260K does not fit marlin-24.
 */

import assert from "node:assert/strict";
import { HfModel } from "../../src/io/hf_model.ts";
import { REPO_ROOT, withTempDir } from "../graph/_helpers.ts";

async function runScript(script: string, args: string[]): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `recipes/${script}`, ...args],
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: r.code, out: text.decode(r.stdout) + text.decode(r.stderr) };
}

async function quantizationConfig(dir: string): Promise<Record<string, Record<string, unknown>>> {
  const m = await HfModel.open(dir);
  try {
    return m.config.raw.quantization_config as Record<string, Record<string, unknown>>;
  } finally {
    m.close();
  }
}

Deno.test({
  name: "recipes/sparse_2of4_{fp8,w4a16}.ts run with their defaults",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      const small = ["--num-calibration-samples", "8", "--max-seq-length", "64"];
      const fp8 = await runScript("sparse_2of4_fp8.ts", [...small, "--output-dir", `${dir}/fp8`]);
      assert.equal(fp8.code, 0, fp8.out);
      const a = await quantizationConfig(`${dir}/fp8`);
      assert.equal(a.format as unknown, "float-quantized");
      assert.equal(a.sparsity_config.format, "sparse-24-bitmask");

      const w4 = await runScript("sparse_2of4_w4a16.ts", [...small, "--output-dir", `${dir}/w4`]);
      assert.equal(w4.code, 0, w4.out);
      assert.match(w4.out, /do not fit marlin-24; compressing a synthetic llama/);
      const b = await quantizationConfig(`${dir}/w4`);
      assert.equal(b.format as unknown, "marlin-24");
      assert.equal(b.sparsity_config.format, "dense");
      assert.equal(b.sparsity_config.sparsity_structure, "2:4");
    });
  },
});
