/**
 * Crash injection: `llmc oneshot` killed (SIGKILL from inside, via
 * `LLMC_CRASH_AT`, see src/crash_points.ts) at every step of writing and
 * committing a checkpoint, including between the two renames that replace
 * an existing output. After each crash the output is absent or complete;
 * after a rerun (alternately with and without `--resume`) it is
 * byte-identical to an uninterrupted run and nothing of the dead run
 * (work folder, temporary output, moved-aside output, lock) remains.
 */

import assert from "node:assert/strict";
import { writeSyntheticModel } from "../../src/model/synthetic_model.ts";
import { besideOutput, folderDifference, spawnLlmc } from "./_cli_child.ts";
import { withTempDir } from "./_helpers.ts";

/** Points of a run onto a fresh output. */
const FRESH = [
  "layer-written:1",
  "layer-written:3",
  "shards-planned",
  "shard-header-written:2",
  "shards-written",
  "work-moved",
  "commit-start",
  "committed",
  "work-removed",
];
/** Points of a run that replaces an existing output (`--overwrite`). */
const REPLACE = ["before-commit", "commit-old-moved", "commit-renamed", "committed"];

Deno.test({
  name: "a run killed at any point leaves the output absent or complete, and a rerun cleans up",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      const model = await writeSyntheticModel({
        modelType: "llama",
        hidden: 32,
        layers: 3,
        heads: 4,
        kvHeads: 2,
        intermediate: 64,
        vocab: 64,
        tied: false,
      }, Deno.makeTempDirSync({ dir }));
      const args = (out: string, scheme = "W8A16") => [
        "oneshot",
        "--model",
        model.dir,
        "--scheme",
        scheme,
        "--ignore",
        "lm_head",
        "--max-shard-size",
        "8KB",
        "--output-dir",
        out,
      ];
      const ref = await spawnLlmc(args(`${dir}/ref`)).done();
      assert.equal(ref.code, 0, ref.stderr);
      const previous = await spawnLlmc(args(`${dir}/previous`, "FP8_DYNAMIC")).done();
      assert.equal(previous.code, 0, previous.stderr);

      const cases = [
        ...FRESH.map((point) => ({ point, replace: false })),
        ...REPLACE.map((point) => ({ point, replace: true })),
      ];
      for (const [i, { point, replace }] of cases.entries()) {
        const name = `out${i}`;
        const out = `${dir}/${name}`;
        if (replace) {
          await Deno.mkdir(out);
          for (const e of Deno.readDirSync(`${dir}/previous`)) {
            await Deno.copyFile(`${dir}/previous/${e.name}`, `${out}/${e.name}`);
          }
        }
        const flags = replace ? ["--overwrite"] : [];
        const crashed = await spawnLlmc([...args(out), ...flags], { LLMC_CRASH_AT: point }).done();
        assert.equal(
          crashed.signal,
          "SIGKILL",
          `${point}: the run reached the point\n${crashed.stderr}`,
        );

        // Absent, or complete: the new output or (when replacing) the previous one.
        const here = besideOutput(dir, name);
        if (here.includes(name)) {
          const asNew = await folderDifference(out, `${dir}/ref`);
          const asOld = await folderDifference(out, `${dir}/previous`);
          assert.ok(asNew === null || (replace && asOld === null), `${point}: ${name} is partial`);
        }

        const resume = i % 2 === 0;
        const rerun = await spawnLlmc([...args(out), ...flags, ...(resume ? ["--resume"] : [])])
          .done();
        const alreadyDone = !replace && rerun.code === 1 &&
          rerun.stderr.includes("already exists");
        assert.ok(rerun.code === 0 || alreadyDone, `${point}: rerun failed\n${rerun.stderr}`);
        assert.equal(await folderDifference(out, `${dir}/ref`), null, `${point}: rerun output`);
        assert.deepEqual(besideOutput(dir, name), [name], `${point}: leftovers after the rerun`);
      }
    });
  },
});
