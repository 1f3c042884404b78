/**
 * The README's four-line script, run from a temporary folder outside the
 * repository: it imports the package by its JSR name (`jsr:@llmc/llmc`),
 * which a `deno.json` `links` entry resolves to this checkout, as a user's
 * project does with `deno link`. Nothing is fetched from JSR; the npm
 * dependencies resolve through the package's own `deno.json` imports.
 *
 * @module
 */

import assert from "node:assert/strict";
import { CompressedCheckpoint } from "../../mod.ts";
import { SHARED_DIR, tempDirRunner } from "../_shared.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);
const withTempDir = tempDirRunner("llmc-outside-test-");

/** The code block after the `<!-- outside-script -->` marker in README.md. */
async function readmeScript(): Promise<string> {
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  const m = /<!-- outside-script -->\s*```ts\n([\s\S]*?)```/.exec(readme);
  if (!m) throw new Error("README.md has no ```ts block after <!-- outside-script -->");
  return m[1];
}

Deno.test("the README's script imports jsr:@llmc/llmc from outside the checkout and runs oneshot", async () => {
  const script = await readmeScript();
  assert.match(script, /^import \{ oneshot \} from "jsr:@llmc\/llmc";$/m);
  assert.ok(
    script.trim().split("\n").length <= 4,
    `the script has more than four lines:\n${script}`,
  );
  await withTempDir(async (dir) => {
    assert.ok(!dir.startsWith(ROOT), `${dir} is inside the repository`);
    await Deno.writeTextFile(`${dir}/compress.ts`, script);
    await Deno.writeTextFile(
      `${dir}/deno.json`,
      JSON.stringify({ links: [ROOT.replace(/\/$/, "")], unstable: ["webgpu"] }, null, 2),
    );
    const out = `${dir}/out`;
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "compress.ts", `${SHARED_DIR}models/stories260K`, out],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const dec = new TextDecoder();
    const output = dec.decode(stdout) + dec.decode(stderr);
    // The known WebGPU teardown abort (rc 134) may follow a completed run; the checks below
    // judge the run by its output folder, which is committed only when complete.
    assert.ok(code === 0 || code === 134, `the script failed (rc ${code}):\n${output}`);
    const ckpt = await CompressedCheckpoint.open(out);
    try {
      const config = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
      assert.equal(config.quantization_config?.format, "pack-quantized");
      assert.equal(config.quantization_config.config_groups.group_0.weights.num_bits, 8);
      const q = await ckpt.readF32("model.layers.0.self_attn.q_proj.weight");
      assert.equal(q.length, 64 * 64);
      assert.ok(q.some((v) => v !== 0));
    } finally {
      ckpt.close();
    }
  });
});
