/**
 * llmc never writes into or replaces its input: an output folder that is the
 * model folder, lies inside it, or contains it is refused before anything is
 * written, even with overwrite.
 */

import assert from "node:assert/strict";
import { AtomicDirError } from "../../src/io/atomic_dir.ts";
import { modelFreePtq } from "../../src/model_free/model_free_ptq.ts";
import { oneshot } from "../../src/oneshot.ts";
import { STORIES, withTempDir } from "./_helpers.ts";

async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    out.push(`${e.name}:${(await Deno.stat(`${dir}/${e.name}`)).size}`);
  }
  return out.sort();
}

Deno.test("an output folder overlapping the input model is refused, even with overwrite", async () => {
  await withTempDir(async (dir) => {
    const model = `${dir}/model`;
    await Deno.mkdir(model);
    for await (const e of Deno.readDir(STORIES)) {
      if (e.isFile) await Deno.copyFile(`${STORIES}/${e.name}`, `${model}/${e.name}`);
    }
    const before = await snapshot(model);
    for (
      const out of [
        model,
        `${model}/`,
        `${model}/inside`,
        dir,
        `${dir}/../${dir.split("/").pop()}/model`,
      ]
    ) {
      await assert.rejects(
        oneshot({ model, scheme: "W8A16", ignore: ["lm_head"], outputDir: out, overwrite: true }),
        AtomicDirError,
        `oneshot to ${out}`,
      );
      await assert.rejects(
        modelFreePtq(model, out, "FP8_DYNAMIC", ["model.embed_tokens"], { overwrite: true }),
        AtomicDirError,
        `model-free to ${out}`,
      );
    }
    assert.deepEqual(await snapshot(model), before, "the input folder is untouched");
    // A sibling is fine.
    await oneshot({ model, scheme: "W8A16", ignore: ["lm_head"], outputDir: `${dir}/out` });
    assert.deepEqual(await snapshot(model), before);
  });
});
