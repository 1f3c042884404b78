/**
 * Two real `llmc oneshot` processes on one output: the second is refused at
 * once, naming the first; the first finishes with the bytes of a lone run.
 * A run killed with SIGKILL leaves its lock behind; `--resume` detects it as
 * stale, takes the work folder over and finishes byte-identically.
 */

import assert from "node:assert/strict";
import { writeSyntheticModel } from "../../src/model/synthetic_model.ts";
import { besideOutput, folderDifference, spawnLlmc } from "./_cli_child.ts";
import { withTempDir } from "./_helpers.ts";

const SPEC = {
  modelType: "llama",
  hidden: 32,
  layers: 3,
  heads: 4,
  kvHeads: 2,
  intermediate: 64,
  vocab: 64,
  tied: false,
} as const;

Deno.test({
  name: "a second run on the same output is refused at once; a crashed run's lock is stale",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      const model = await writeSyntheticModel(SPEC, Deno.makeTempDirSync({ dir }));
      const args = (out: string) => [
        "oneshot",
        "--model",
        model.dir,
        "--scheme",
        "W8A16",
        "--ignore",
        "lm_head",
        "--output-dir",
        out,
        "--progress",
        "json",
      ];
      const lone = await spawnLlmc(args(`${dir}/lone`)).done();
      assert.equal(lone.code, 0, lone.stderr);

      // A holds the output, paused right after its first layer is on disk.
      const a = spawnLlmc(args(`${dir}/out`), { LLMC_PAUSE_AT: "layer-written" });
      assert.ok(await a.waitForLine(/"type":"paused"/), "the first run reached layer 1");
      const t0 = performance.now();
      const b = await spawnLlmc(args(`${dir}/out`)).done();
      const refusedMs = performance.now() - t0;
      assert.equal(b.code, 1, b.stderr);
      assert.match(
        b.stderr,
        new RegExp(
          `llmc oneshot: ${dir}/out: is being written by another llmc run: pid ${a.pid} on host ` +
            `${Deno.hostname()}, started \\d{4}-`,
        ),
      );
      assert.ok(!b.stderr.includes("discarding"), "the second run touched nothing");
      console.log(`second run refused after ${refusedMs.toFixed(0)} ms (process start included)`);
      a.kill("SIGUSR1");
      const aDone = await a.done();
      assert.equal(aDone.code, 0, aDone.stderr);
      assert.equal(await folderDifference(`${dir}/out`, `${dir}/lone`), null);
      assert.deepEqual(besideOutput(dir, "out"), ["out"], "no lock or work folder remains");

      // Two runs started at the same moment: exactly one wins the lock.
      const [x, y] = await Promise.all([
        spawnLlmc(args(`${dir}/race`)).done(),
        spawnLlmc(args(`${dir}/race`)).done(),
      ]);
      assert.deepEqual([x.code, y.code].sort(), [0, 1], `${x.stderr}\n---\n${y.stderr}`);
      // The loser met the winner's lock, or (when it started late) the finished output.
      assert.match(
        x.code === 1 ? x.stderr : y.stderr,
        /is being written by another llmc run|already exists/,
      );
      assert.equal(await folderDifference(`${dir}/race`, `${dir}/lone`), null);
      assert.deepEqual(besideOutput(dir, "race"), ["race"]);

      // A run that dies holding the lock (SIGKILL after its second layer).
      const crashing = spawnLlmc(args(`${dir}/crash`), { LLMC_CRASH_AT: "layer-written:2" });
      const c = await crashing.done();
      assert.equal(c.signal, "SIGKILL", c.stderr);
      assert.deepEqual(besideOutput(dir, "crash"), ["crash.llmc-lock", "crash.tmp-llmc"]);
      const resumed = await spawnLlmc([...args(`${dir}/crash`), "--resume"]).done();
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.match(
        resumed.stderr,
        new RegExp(`took over the lock of a run that is gone \\(pid ${crashing.pid}`),
      );
      const skipped = resumed.stderr.split("\n").filter((l) => /"skipped":true/.test(l));
      assert.ok(skipped.length >= 2, `the finished layers were resumed:\n${resumed.stderr}`);
      assert.equal(await folderDifference(`${dir}/crash`, `${dir}/lone`), null);
      assert.deepEqual(besideOutput(dir, "crash"), ["crash"]);
    });
  },
});
