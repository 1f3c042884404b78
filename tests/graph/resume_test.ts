/**
 * Interruption and resume of a calibrated run, with real processes: a
 * `llmc oneshot` child is killed (SIGKILL, SIGTERM) right after a layer is
 * persisted — seen in its JSON progress lines — which must leave no output
 * folder; `--resume` then continues from the last finished layer and writes
 * the same bytes as an uninterrupted run.
 */

import assert from "node:assert/strict";
import { exists } from "../_shared.ts";
import { CALIB, REPO_ROOT, STORIES, withTempDir } from "./_helpers.ts";

const RECIPE = `quant_stage:
  quant_modifiers:
    QuantizationModifier:
      ignore: ["lm_head"]
      config_groups:
        group_0:
          weights: {num_bits: 8, type: float, strategy: tensor, dynamic: false, symmetric: true}
          input_activations: {num_bits: 8, type: int, strategy: tensor, dynamic: false, symmetric: false}
          targets: ["Linear"]
      kv_cache_scheme: {num_bits: 8, type: float, strategy: attn_head, dynamic: false, symmetric: true}
`;

interface ChildRun {
  code: number;
  signal: Deno.Signal | null;
  events: Record<string, unknown>[];
  stderr: string;
}

/**
 * Runs `llmc oneshot` in a child; `killAt` pauses the child right after layer
 * `layer` is persisted (`LLMC_PAUSE_AT`, see src/crash_points.ts) and sends
 * the signal there, so the kill is certain to land before the run ends.
 */
async function llmcOneshot(
  args: string[],
  killAt?: { layer: number; signal: Deno.Signal },
): Promise<ChildRun & { paused: boolean }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "src/cli/main.ts", "oneshot", ...args, "--progress", "json"],
    cwd: REPO_ROOT,
    env: killAt ? { LLMC_PAUSE_AT: `layer-written:${killAt.layer + 1}` } : {},
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const events: Record<string, unknown>[] = [];
  let text = "";
  let pending = "";
  let killed = false;
  const decoder = new TextDecoder();
  for await (const chunk of child.stderr) {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop()!;
    for (const line of lines) {
      text += line + "\n";
      if (!line.startsWith("{")) continue;
      const e = JSON.parse(line);
      events.push(e);
      if (killAt && !killed && e.type === "paused") {
        child.kill(killAt.signal);
        killed = true;
      }
    }
  }
  const status = await child.status;
  return { code: status.code, signal: status.signal, events, stderr: text, paused: killed };
}

async function sameFiles(a: string, b: string): Promise<void> {
  const names = (d: string) => [...Deno.readDirSync(d)].map((e) => e.name).sort();
  assert.deepEqual(names(a), names(b));
  for (const n of names(a)) {
    const x = await Deno.readFile(`${a}/${n}`);
    const y = await Deno.readFile(`${b}/${n}`);
    assert.ok(x.length === y.length && x.every((v, i) => v === y[i]), `${n} differs`);
  }
}

Deno.test({
  name: "killed runs leave no output; --resume continues from the last layer, byte-identical",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      const recipe = `${dir}/recipe.yaml`;
      await Deno.writeTextFile(recipe, RECIPE);
      const base = (out: string) => [
        "--model",
        STORIES,
        "--recipe",
        recipe,
        "--dataset",
        CALIB,
        "--num-calibration-samples",
        "12",
        "--max-seq-length",
        "128",
        "--tokens-per-forward",
        "512",
        "--output-dir",
        out,
      ];

      const whole = await llmcOneshot(base(`${dir}/whole`));
      assert.equal(whole.code, 0, whole.stderr);

      // SIGTERM after layer 0: nothing that looks like a checkpoint.
      const term = await llmcOneshot(base(`${dir}/term`), { layer: 0, signal: "SIGTERM" });
      assert.ok(term.paused, "the signal was sent while the run was paused after layer 0");
      assert.equal(term.signal, "SIGTERM", term.stderr);
      assert.ok(!(await exists(`${dir}/term`)), "no output folder after SIGTERM");

      // SIGKILL after layer 2 is persisted, then resume.
      const killed = await llmcOneshot(base(`${dir}/out`), { layer: 2, signal: "SIGKILL" });
      assert.ok(killed.paused, "the kill landed while the run was paused after layer 2");
      assert.equal(killed.signal, "SIGKILL", killed.stderr);
      assert.ok(!(await exists(`${dir}/out`)), "no output folder after SIGKILL");
      assert.ok(await exists(`${dir}/out.tmp-llmc/progress.json`), "the work folder stays");

      const resumed = await llmcOneshot([...base(`${dir}/out`), "--resume"]);
      assert.equal(resumed.code, 0, resumed.stderr);
      const layers = resumed.events.filter((e) => e.type === "layer_done" && e.layer !== null);
      // The kill landed right after layer 2 was persisted: layers 0-2 are skipped, 3-4 redone.
      assert.deepEqual(layers.map((e) => e.layer), [0, 1, 2, 3, 4]);
      const skipped = layers.filter((e) => e.skipped).length;
      assert.equal(skipped, 3, `skipped ${skipped} layers`);
      assert.ok(layers.every((e, i) => e.skipped === i < skipped), "skipped layers are a prefix");
      assert.ok(
        !resumed.events.some((e) => e.type === "progress" && e.layer === 1),
        "no calibration work for finished layers",
      );
      await sameFiles(`${dir}/out`, `${dir}/whole`);
      assert.ok(!(await exists(`${dir}/out.tmp-llmc`)), "the work folder is removed");
    });
  },
});
