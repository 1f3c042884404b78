/**
 * A full disk mid-run: the CLI fails with an error that says where the
 * finished layers are and how to resume or discard them, and leaves no
 * output. The disk is a 384 KiB tmpfs, so this needs root (mount); elsewhere
 * the test is reported as ignored.
 */

import assert from "node:assert/strict";
import { writeSyntheticModel } from "../../src/model/synthetic_model.ts";
import { besideOutput, spawnLlmc } from "./_cli_child.ts";
import { withTempDir } from "./_helpers.ts";

const canMount = Deno.uid() === 0 &&
  (await new Deno.Command("sh", { args: ["-c", "command -v mount umount"], stdout: "null" })
    .output()).success;

Deno.test({
  name: "a full disk says how to resume or clean up, and leaves no output",
  ignore: !canMount,
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      const model = await writeSyntheticModel({
        modelType: "llama",
        hidden: 64,
        layers: 4,
        heads: 4,
        kvHeads: 2,
        intermediate: 128,
        vocab: 512,
        tied: false,
      }, Deno.makeTempDirSync({ dir }));
      const disk = `${dir}/disk`;
      await Deno.mkdir(disk);
      const mount = await new Deno.Command("mount", {
        args: ["-t", "tmpfs", "-o", "size=384k", "tmpfs", disk],
      }).output();
      assert.ok(mount.success, new TextDecoder().decode(mount.stderr));
      try {
        const out = `${disk}/out`;
        const r = await spawnLlmc([
          "oneshot",
          "--model",
          model.dir,
          "--scheme",
          "W8A16",
          "--ignore",
          "lm_head",
          "--output-dir",
          out,
        ]).done();
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /No space left on device/);
        assert.match(
          r.stderr,
          new RegExp(
            `the disk is full\\. Free some space; the finished layers are kept in ${out}\\.tmp-llmc: ` +
              `rerun the same command with --resume .* or delete ${out}\\.tmp-llmc to start over`,
          ),
        );
        const left = besideOutput(disk, "out");
        assert.ok(!left.includes("out"), "no output");
        assert.ok(!left.includes("out.llmc-lock"), "the lock is released");
      } finally {
        await new Deno.Command("umount", { args: [disk] }).output();
      }
    });
  },
});
